// SPDX-License-Identifier: Apache-2.0
// The parameter server as real processes started by `nodeccl-run --servers 2 -np 2`: sync
// training equal to all-reduce training, the async staleness bound, a worker that dies, a
// server that dies, and a checkpoint restore that continues bit for bit.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FIXTURES, ROOT } from '../helpers/world';

const RUN = path.join(ROOT, 'dist', 'cli', 'run.js');

interface Job {
  code: number | null;
  /** Every JSON line, by the launcher's prefix: '0', '1' (workers), 's0', 's1' (servers). */
  lines: Record<string, Record<string, unknown>[]>;
  stderr: string;
}

/** Runs test/fixtures/ps-train.js as 2 servers and 2 workers, with `env` for every process. */
function psJob(env: Record<string, string>): Promise<Job> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [RUN, '--servers', '2', '-np', '2', '--grace', '10',
      process.execPath, path.join(FIXTURES, 'ps-train.js')],
    { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      const lines: Job['lines'] = {};
      for (const m of stdout.matchAll(/^\[(s?\d+)\] (\{.*\})$/gm)) {
        (lines[m[1]] ??= []).push(JSON.parse(m[2]) as Record<string, unknown>);
      }
      resolve({ code, lines, stderr: `${stderr}\n${stdout}` });
    });
  });
}

const final = (job: Job, who: string) => {
  const found = (job.lines[who] ?? []).find((l) => 'digest' in l || 'summary' in l);
  expect(found, `no result from ${who}:\n${job.stderr}`).toBeDefined();
  return found as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
};

describe('parameter server, 2 servers × 2 workers', () => {
  it('sync mode gives bit for bit the parameters of all-reduce training', async () => {
    const job = await psJob({ ALLREDUCE: '1', STEPS: '4' });
    expect(job.code, job.stderr).toBe(0);
    for (const w of ['0', '1']) {
      const r = final(job, w);
      expect(r.maxDiff).toBe(0);
      expect(r.digest).toBe(r.refDigest);
      // Every shard's version is visible: 4 steps; 'w' is split over both servers.
      expect(r.shards.map((s: { version: number }) => s.version)).toEqual([4, 4, 4, 4]);
      expect(r.shards.filter((s: { key: string }) => s.key === 'w').length).toBe(2);
    }
    for (const s of ['s0', 's1']) {
      expect(final(job, s).summary).toMatchObject({ version: 4, workersLeft: [0, 1],
        workersLost: [] });
    }
  });

  for (const k of [0, 1]) {
    it(`async mode with staleness ${k} holds the fast worker back`, async () => {
      const job = await psJob({ PS_MODE: 'async', PS_K: String(k), STEPS: '5', SLOW_MS: '40' });
      expect(job.code, job.stderr).toBe(0);
      const fast = final(job, '0');
      // After its c-th push is acknowledged, worker 0 is at most k pushes ahead of worker 1,
      // so each server has applied at least c + (c - k) gradients.
      for (const { clock, pushed } of fast.log as { clock: number; pushed: number[] }[]) {
        for (const v of pushed) expect(v).toBeGreaterThanOrEqual(clock + Math.max(0, clock - k));
      }
      // Every gradient is applied once: 2 workers × 5 pushes on each server.
      for (const s of ['s0', 's1']) expect(final(job, s).summary.version).toBe(10);
    });
  }

  it('a worker that dies leaves the servers and the other worker going (sync)', async () => {
    const job = await psJob({ DIE_WORKER: '1', DIE_STEP: '2', STEPS: '4' });
    expect(job.code).toBe(128 + 9); // the launcher reports the killed worker
    expect(job.stderr).toMatch(/worker 1 was killed by SIGKILL; the parameter servers/);
    expect(final(job, '0').log.map((l: { min: number }) => l.min)).toEqual([1, 2, 3, 4]);
    for (const s of ['s0', 's1']) {
      expect(final(job, s).summary).toMatchObject({ version: 4, workersLeft: [0],
        workersLost: [1] });
    }
  });

  it('a server that dies fails every worker with ERR_NODECCL_PEER_LOST naming it', async () => {
    const job = await psJob({ DIE_SERVER: '1', DIE_MS: '300', SLOW_MS: '50', STEPS: '1000' });
    expect(job.code).not.toBe(0);
    const dying = job.lines.s1.find((l) => 'dying' in l)!.dying as number;
    for (const w of ['0', '1']) {
      const err = job.lines[w].find((l) => 'error' in l);
      expect(err, job.stderr).toBeDefined();
      expect(err!.error).toBe('ERR_NODECCL_PEER_LOST');
      expect(err!.message).toMatch(/parameter server 1 \(127\.0\.0\.1:\d+\)/);
      expect(err!.at as number - dying).toBeLessThan(10_000); // "within seconds"
    }
  });

  it('a restored checkpoint continues bit for bit', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nodeccl-ps-'));
    try {
      const ckpt = path.join(dir, 'run');
      const first = await psJob({ STEPS: '3', CKPT: ckpt });
      expect(first.code, first.stderr).toBe(0);
      expect(fs.existsSync(`${ckpt}-server0.ckpt`) && fs.existsSync(`${ckpt}-server1.ckpt`))
        .toBe(true);
      const resumed = await psJob({ STEPS: '2', CKPT: ckpt });
      expect(resumed.code, resumed.stderr).toBe(0);
      expect(resumed.lines['0'].find((l) => 'joined' in l)!.restored).toBe(true);
      const straight = await psJob({ STEPS: '5' });
      expect(final(resumed, '0').log.map((l: { min: number }) => l.min)).toEqual([4, 5]);
      expect(final(resumed, '0').digest).toBe(final(straight, '0').digest);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
