// SPDX-License-Identifier: Apache-2.0
// Parameter-server state without a job: the shard plan, and checkpoints that survive a crash
// in the middle of a write (a leftover partial temp file, and a writer killed at random).
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readCheckpoint, writeCheckpoint } from '../../lib/ps/checkpoint';
import { psRole } from '../../lib/ps/role';
import { PSServer } from '../../lib/ps/server';
import { fnv1a, planShards, SPLIT_MIN_ELEMENTS } from '../../lib/ps/shard';
import { FIXTURES, ROOT } from '../helpers/world';

describe('shard plan', () => {
  it('splits large keys into near-equal ranges and hashes small ones whole', () => {
    const big = 2 * SPLIT_MIN_ELEMENTS + 1; // 32,769 over 2 servers: 16,384 + 16,385
    const plan = planShards([{ key: 'w', length: big }, { key: 'b', length: 10 }], 2);
    expect(plan.shards.filter((s) => s.key === 'w').map((s) => [s.server, s.offset, s.length]))
      .toEqual([[0, 0, 16_384], [1, 16_384, 16_385]]);
    const b = plan.shards.find((s) => s.key === 'b')!;
    expect([b.server, b.offset, b.length]).toEqual([fnv1a('b') % 2, 0, 10]);
    expect(plan.byServer.flat().sort((x, y) => x - y)).toEqual([0, 1, 2]);
    // FNV-1a of "a": 0x811c9dc5 ^ 0x61 = 0x811c9da4, times 0x01000193 mod 2^32 = 0xe40c292c.
    expect(fnv1a('a')).toBe(0xe40c292c);
  });

  it('keeps a key below the split size whole, and one server holds everything', () => {
    const plan = planShards([{ key: 'w', length: 2 * SPLIT_MIN_ELEMENTS - 1 }], 2);
    expect(plan.shards).toHaveLength(1);
    expect(planShards([{ key: 'w', length: 1e6 }], 1).shards).toHaveLength(1);
  });
});

describe('checkpoint files', () => {
  let dir = '';
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));
  const fresh = () => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nodeccl-ckpt-')); };

  it('round-trips typed arrays bit for bit and returns null when there is none', () => {
    fresh();
    const file = path.join(dir, 'a.ckpt');
    expect(readCheckpoint(file)).toBeNull();
    const params = Float32Array.of(1.5, -0, NaN, 3e-39);
    writeCheckpoint(file, { version: 7, params });
    const back = readCheckpoint(file)!;
    expect(back.version).toBe(7);
    const got = back.params as Float32Array;
    expect(got).toBeInstanceOf(Float32Array);
    expect(Buffer.from(got.buffer, got.byteOffset, got.byteLength))
      .toEqual(Buffer.from(params.buffer));
  });

  it('ignores a partial temp file left by a crash, and the next write removes it', () => {
    fresh();
    const file = path.join(dir, 'a.ckpt');
    writeCheckpoint(file, { version: 1 });
    // A writer that died half-way: pid 2^22 + 1 is above Linux's default pid_max (2^22).
    const stale = `${file}.tmp-4194305`;
    fs.writeFileSync(stale, Buffer.from([0xff, 0x0f, 0x6f]));
    expect(readCheckpoint(file)!.version).toBe(1);
    writeCheckpoint(file, { version: 2 });
    expect(fs.existsSync(stale)).toBe(false);
    expect(readCheckpoint(file)!.version).toBe(2);
  });

  it('rejects a file that is not a checkpoint with ERR_NODECCL_IO', () => {
    fresh();
    const file = path.join(dir, 'a.ckpt');
    fs.writeFileSync(file, 'not a checkpoint');
    expect(() => readCheckpoint(file)).toThrow(expect.objectContaining({
      code: 'ERR_NODECCL_IO', message: expect.stringContaining(file) }));
  });

  it('a writer killed during a write leaves a complete checkpoint', async () => {
    fresh();
    const file = path.join(dir, 'a.ckpt');
    const child = spawn(process.execPath, [path.join(FIXTURES, 'ps-ckpt-writer.js')],
      { cwd: ROOT, env: { ...process.env, CKPT_FILE: file },
        stdio: ['ignore', 'pipe', 'inherit'] });
    // Kill it while the third version is being written (after the second is durable).
    let durable = 0;
    await new Promise<void>((resolve) => {
      child.stdout.on('data', (d: Buffer) => {
        durable = Math.max(durable, ...d.toString().trim().split('\n').map(Number));
        if (durable >= 2) {
          child.kill('SIGKILL');
          resolve();
        }
      });
    });
    await new Promise((r) => child.on('close', r));
    const state = readCheckpoint(file)!;
    const version = state.version as number;
    expect(version).toBeGreaterThanOrEqual(durable);
    const params = state.params as Float32Array;
    expect(params.length).toBe(4 << 20);
    expect(params.every((x) => x === version)).toBe(true);
  });
});

describe('roles and options', () => {
  it('reads the role from the environment, naming a bad variable', () => {
    const env = { NODECCL_ROLE: 'server', NODECCL_NUM_SERVERS: '2', NODECCL_SERVER_RANK: '1',
      NODECCL_NUM_WORKERS: '3', MASTER_PORT: '4000' };
    expect(psRole(env)).toMatchObject({ role: 'server', serverRank: 1, numServers: 2,
      numWorkers: 3, storePort: 4001, storeHost: '127.0.0.1' });
    expect(() => psRole({ ...env, NODECCL_SERVER_RANK: '2' })).toThrow(/server rank 2 of 2/);
    expect(() => psRole({ NODECCL_ROLE: 'boss' })).toThrow(expect.objectContaining({
      code: 'ERR_NODECCL_INVALID_ARGUMENT', message: expect.stringContaining('NODECCL_ROLE') }));
  });

  it('rejects a staleness bound outside async mode, and unknown options', async () => {
    const role = psRole({ NODECCL_ROLE: 'server', NODECCL_NUM_SERVERS: '1',
      NODECCL_SERVER_RANK: '0', NODECCL_NUM_WORKERS: '1' });
    await expect(PSServer.start({ role, staleness: 1 })).rejects.toThrow(/mode 'async'/);
    await expect(PSServer.start({ role, mdoe: 'async' } as never)).rejects
      .toThrow(/did you mean 'mode'/i);
  });
});
