// SPDX-License-Identifier: Apache-2.0
// Jobs over two "hosts" (network namespaces on a bridge, test/helpers/netns.ts), two ranks on
// each: ranks of a host talk through shared memory and hosts through TCP (transport
// 'shm+tcp'); every collective is checked with the hierarchical all-reduce (the default here)
// and with the flat ring, then with 1% of packets dropped on both links, and finally a host's
// link is cut and every rank must fail with a clear error within the operation timeout.
// Skipped, with the reason printed, where namespaces cannot be made (not root); in CI as root
// it must run.
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haveCommand, makeHosts, type NetHosts } from '../helpers/netns';
import { FIXTURES, ROOT } from '../helpers/world';

const OP_TIMEOUT_MS = 4000;
const RANKS_PER_HOST = 2;
let hosts: NetHosts | null = null;
let why: string | null = null;
let port = 31000 + (process.pid % 2000);

beforeAll(() => {
  const made = makeHosts(2, 't');
  if (typeof made === 'string') {
    why = made;
    console.log(`topology tests skipped: ${why}`);
    if (process.env.CI === 'true' && process.getuid?.() === 0) throw new Error(why);
  } else {
    hosts = made;
  }
});
afterAll(() => hosts?.remove());

interface Line { [k: string]: unknown }

interface Job {
  lines: Line[][];
  done: Promise<void>;
}

// Starts RANKS_PER_HOST ranks in each host; rank r runs on host floor(r / RANKS_PER_HOST).
function startJob(h: NetHosts, env: Record<string, string>): Job {
  const size = h.names.length * RANKS_PER_HOST;
  const lines: Line[][] = Array.from({ length: size }, () => []);
  port += 1;
  const exits = Array.from({ length: size }, (_, rank) => {
    const argv = h.exec(Math.floor(rank / RANKS_PER_HOST),
      [process.execPath, path.join(FIXTURES, 'topo-rank.js')]);
    const child = spawn(argv[0], argv.slice(1), {
      cwd: ROOT,
      env: { ...process.env, RANK: String(rank), WORLD_SIZE: String(size),
        MASTER_ADDR: h.addrs[0], MASTER_PORT: String(port), NODECCL_SOCKET_IFNAME: 'eth0',
        OP_TIMEOUT_MS: String(OP_TIMEOUT_MS), NODECCL_TOKEN: `topology-${process.pid}`, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let buf = '';
    let err = '';
    child.stdout!.on('data', (d) => {
      buf += d;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line.startsWith('{')) lines[rank].push(JSON.parse(line) as Line);
      }
    });
    child.stderr!.on('data', (d) => { err += d; });
    const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    return new Promise<void>((resolve) => child.on('close', (code) => {
      clearTimeout(killer);
      if (code !== 0) lines[rank].push({ fatal: `exit ${code}: ${err.slice(-2000)}` });
      else if (err.trim() !== '') lines[rank].push({ stderr: err.slice(-2000) });
      resolve();
    }));
  });
  return { lines, done: Promise.all(exits).then(() => undefined) };
}

function expectChecked(job: Job): void {
  job.lines.forEach((l, rank) => {
    expect(l.find((x) => x.fatal), `rank ${rank}: ${JSON.stringify(l)}`).toBeUndefined();
    const checked = l.find((x) => x.phase === 'checked');
    expect(checked, `rank ${rank}: ${JSON.stringify(l)}`).toBeDefined();
    expect(checked!.errors).toEqual([]);
    expect(checked!.transport).toBe('shm+tcp');
    expect(checked!.hostOf).toEqual([0, 0, 1, 1]);
  });
}

describe('a 2-host x 2-rank job over network namespaces', () => {
  for (const algo of ['auto', 'ring']) {
    it(`gives correct results for every collective (NODECCL_ALGO=${algo})`, async (ctx) => {
      if (!hosts) return ctx.skip();
      const job = startJob(hosts, { NODECCL_ALGO: algo });
      await job.done;
      expectChecked(job);
    }, 90_000);
  }

  it('stays correct with 1% of packets dropped on every link', async (ctx) => {
    if (!hosts) return ctx.skip();
    if (!haveCommand('iptables')) {
      const reason = 'iptables is missing (Debian package iptables), so no loss can be made';
      if (process.env.CI === 'true') throw new Error(reason);
      console.log(`loss test skipped: ${reason}`);
      return ctx.skip();
    }
    const h = hosts;
    h.loss(0, 1);
    h.loss(1, 1);
    const delay = h.delay(0, 5);
    if (delay !== null) console.log(`no added delay: ${delay}`);
    const job = startJob(h, {});
    await job.done;
    expectChecked(job);
    console.log(`1% loss: ${h.dropped(0)} + ${h.dropped(1)} packets dropped, results correct`);
  }, 90_000);

  it('fails on every rank within the timeout when a host link is cut', async (ctx) => {
    if (!hosts) return ctx.skip();
    const h = hosts;
    const job = startJob(h, { CUT: '1' });
    while (!job.lines.every((l) => l.some((x) => x.ready || x.fatal))) {
      await new Promise((r) => setTimeout(r, 50));
    }
    job.lines.forEach((l, rank) => {
      expect(l.find((x) => x.fatal), `rank ${rank}: ${JSON.stringify(job.lines)}`).toBeUndefined();
    });
    const cut = Date.now();
    h.cut(1);
    await job.done;
    job.lines.forEach((l, rank) => {
      const end = l.find((x) => x.outcome === 'error');
      expect(end, `rank ${rank}: ${JSON.stringify(l)}`).toBeDefined();
      expect(['ERR_NODECCL_TIMEOUT', 'ERR_NODECCL_PEER_LOST', 'ERR_NODECCL_ABORTED'])
        .toContain(end!.code);
      expect(String(end!.message)).toMatch(/rank \d/);
      // The operation timeout, plus the bounded publish of the failure (2 s), plus slack.
      expect(Number(end!.at) - cut).toBeLessThan(OP_TIMEOUT_MS + 6000);
      console.log(`rank ${rank} (host ${Math.floor(rank / RANKS_PER_HOST)}): ${end!.code} ` +
        `${Number(end!.at) - cut} ms after the cut: ${end!.message}`);
    });
  }, 90_000);
});
