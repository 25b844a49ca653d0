// SPDX-License-Identifier: Apache-2.0
// Real processes over loopback: every collective, dtype and op against a reference, for world
// sizes 1-4 (the C++ suite covers up to 8 ranks as threads), and a killed peer.
import { describe, expect, it } from 'vitest';
import { lastJson, type RankResult, runRanks } from '../helpers/world';

// Every rank printed no error and no failed check and exited 0; a collectives.js run also
// checked over 100 results (minChecks).
function expectAllChecked(results: RankResult[], minChecks = 101): void {
  for (const r of results) {
    const out = lastJson(r);
    expect(out.error, r.stderr).toBeUndefined();
    expect(out.failures).toEqual([]);
    if (minChecks > 0) expect(out.checks).toBeGreaterThanOrEqual(minChecks);
    expect(r.code).toBe(0);
  }
}

describe('collectives across processes', () => {
  for (const n of [1, 2, 3, 4]) {
    it(`all collectives, all dtypes and ops, ${n} rank(s)`, async () => {
      const env: Record<string, string> = n === 4 ? { COUNTS: '0,1,13,1000' } : {};
      const results = await runRanks('collectives.js', n, { env, timeoutMs: 100_000 });
      expectAllChecked(results);
    });
  }
});

// Each transport and forced algorithm over a few counts: 9000 elements are above the direct
// all-reduce's size limit (32 KiB) in 4- and 8-byte dtypes, below it in 1- and 2-byte ones,
// and above the chain broadcast's (64 KiB) in float64.
describe('collectives across processes, per transport and algorithm', () => {
  // The runs above already take shared memory (the default on one host) with auto choices.
  const cases: Array<[string, string, number]> = [
    ['tcp', 'auto', 2], ['shm', 'ring', 3], ['shm', 'direct', 3], ['tcp', 'direct', 2],
    ['shm', 'chain', 3], ['shm', 'staged', 3], ['shm', 'staged', 2], ['shm', 'stream', 3],
  ];
  for (const [transport, algo, n] of cases) {
    // "stream": staged, with every copy through streaming stores (above the cache's size only,
    // by default), including unaligned heads and tails.
    const stream = algo === 'stream';
    const title = stream ? 'staged NODECCL_STREAM_MIN_BYTES=0' : algo;
    it(`NODECCL_TRANSPORT=${transport} NODECCL_ALGO=${title}, ${n} ranks`, async () => {
      const env = { NODECCL_TRANSPORT: transport, NODECCL_ALGO: stream ? 'staged' : algo,
        COUNTS: '0,7,9000', ...(stream ? { NODECCL_STREAM_MIN_BYTES: '0' } : {}) };
      const results = await runRanks('collectives.js', n, { env, timeoutMs: 100_000 });
      expectAllChecked(results);
    });
  }
});

// A bad NODECCL_* value fails init() on every rank at once: rank 0 checks before it serves the
// store, the others before they wait for it (which they did until their init timeout).
describe('init() with a bad environment variable', () => {
  const cases = [['NODECCL_ALGO', 'bogus'], ['NODECCL_TRANSPORT', 'x'],
    ['NODECCL_STREAM_MIN_BYTES', '-5']];
  for (const [name, value] of cases) {
    it(`${name}=${value}: every rank of 3 fails naming it`, async () => {
      const env = { [name]: value, NODECCL_INIT_TIMEOUT_MS: '120000' };
      const results = await runRanks('init-only.js', 3, { env, timeoutMs: 30_000 });
      for (const r of results) {
        expect(r.code, r.stderr).toBe(1);
        expect(lastJson(r).error).toMatch(new RegExp(`^ERR_NODECCL_INVALID_ARGUMENT: rank ` +
          `${r.rank}: .*${name}`));
      }
    });
  }
});

// Collectives on arrays from allocShared: in place on every rank's shared array (2 ranks, auto
// and staged forced, over counts up to 65537), and where there is no shared heap (TCP), where
// allocShared hands out plain arrays.
describe('all-reduce on shared arrays (allocShared)', () => {
  const cases: Array<[string, string, number, string]> = [
    ['shm', 'auto', 2, 'required'], ['shm', 'staged', 3, 'required'],
    ['tcp', 'auto', 2, 'optional'],
  ];
  for (const [transport, algo, n, shared] of cases) {
    it(`NODECCL_TRANSPORT=${transport} NODECCL_ALGO=${algo}, ${n} ranks, ${shared}`, async () => {
      const env = { NODECCL_TRANSPORT: transport, NODECCL_ALGO: algo, SHARED: shared,
        COUNTS: n === 2 ? '0,1,7,9000,65537' : '0,7,9000' };
      const results = await runRanks('collectives.js', n, { env, timeoutMs: 100_000 });
      expectAllChecked(results);
    });
  }
});

// Input and output sharing memory other than in place (the one-block buffer as block `rank` of
// the other) would read data the call has already overwritten: refused on every algorithm.
describe('all-gather and reduce-scatter with overlapping input and output', () => {
  const cases: Array<[string, number, string]> = [
    ['auto', 2, '0'], ['auto', 3, '1'], ['direct', 2, '0'], ['ring', 3, '0'],
    ['staged', 2, '1'], ['staged', 3, '0'],
  ];
  for (const [algo, n, shared] of cases) {
    it(`NODECCL_ALGO=${algo}, ${n} ranks${shared === '1' ? ', shared arrays' : ''}`, async () => {
      const env = { NODECCL_ALGO: algo, SHARED: shared, COUNTS: '1,7,300000' };
      const results = await runRanks('overlap.js', n, { env, timeoutMs: 60_000 });
      expectAllChecked(results, 0);
    });
  }
});

describe('arrays from allocShared', () => {
  it('without windows (NODECCL_SHM_WINDOW_MB=1) are plain, and required says why', async () => {
    const results = await runRanks('no-windows.js', 2,
      { env: { NODECCL_SHM_WINDOW_MB: '1' }, timeoutMs: 60_000 });
    expectAllChecked(results, 0);
  });

  it('are shared, zero-filled, reduced through views, and outlive destroy(), 2 and 3 ranks',
    async () => {
      for (const n of [2, 3]) {
        const results = await runRanks('shared-arrays.js', n, { timeoutMs: 60_000 });
        expectAllChecked(results, 0);
      }
    });
});

describe('a peer that dies', () => {
  it('fails the pending all-reduce on every other rank, naming the lost rank', async () => {
    const results = await runRanks('peer-lost.js', 3, { env: { KILL_RANK: '1' } });
    expect(results[1].signal).toBe('SIGKILL');
    for (const r of [results[0], results[2]]) {
      const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
      const first = lines.find((l) => l.outcome);
      expect(first.outcome, r.stderr).toBe('error');
      expect(['ERR_NODECCL_PEER_LOST', 'ERR_NODECCL_ABORTED']).toContain(first.code);
      expect(first.message).toMatch(/rank 1\b/);
      expect(first.ms).toBeLessThan(5000);  // well within the 20 s timeout
      const next = lines.find((l) => l.next);
      expect(next.next).toBe('error');
    }
  });

  it('over shared memory, fails the pending all-reduce promptly, naming it', async () => {
    const env = { KILL_RANK: '1', NODECCL_TRANSPORT: 'shm' };
    const results = await runRanks('peer-lost.js', 3, { env });
    expect(results[1].signal).toBe('SIGKILL');
    for (const r of [results[0], results[2]]) {
      const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
      const first = lines.find((l) => l.outcome);
      expect(first.outcome, r.stderr).toBe('error');
      expect(['ERR_NODECCL_PEER_LOST', 'ERR_NODECCL_ABORTED']).toContain(first.code);
      expect(first.message).toMatch(/rank 1\b/);
      expect(first.ms).toBeLessThan(5000);
    }
  });
});
