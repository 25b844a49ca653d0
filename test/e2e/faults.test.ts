// SPDX-License-Identifier: Apache-2.0
// Faults with real processes: a peer SIGKILLed before or between collectives at several world
// sizes, a peer SIGSTOPped (alive, silent), and abort() while the peers are wedged. Every
// surviving rank must fail with the right code, naming the rank, long before the timeout, and
// once it has destroyed the failed communicator hold no more file descriptors, threads or
// shared-memory segments than before init (each case prints its row of that table).
import { describe, expect, it } from 'vitest';
import { type RankResult, runRanks } from '../helpers/world';

type Line = Record<string, unknown>;
const lines = (r: RankResult): Line[] =>
  r.stdout.trim().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
const find = (r: RankResult, what: string): Line => {
  const l = lines(r).find((x) => x.what === what);
  if (!l) throw new Error(`rank ${r.rank}: no '${what}' line\n${r.stdout}\n${r.stderr}`);
  return l;
};

// Asserts that a survivor left nothing behind, and prints its row: fault, rank, time to error,
// what leaked.
function expectNoLeak(fault: string, r: RankResult): void {
  const leak = find(r, 'leak');
  const op = lines(r).find((x) => x.what === 'allReduce');
  console.log(`${fault} | rank ${r.rank} | ${op?.code ?? '-'} after ${op?.ms ?? '-'} ms | ` +
    `fds ${leak.fds}, threads ${leak.threads}, shm segments ${leak.shm}`);
  expect(leak.fds, JSON.stringify(leak)).toBeLessThanOrEqual(0);
  expect(leak.threads, JSON.stringify(leak)).toBeLessThanOrEqual(0);
  expect(leak.shm).toBe(0);
}

describe('a SIGKILLed peer', () => {
  for (const [fault, n] of [['kill-before', 2], ['kill-before', 4], ['kill-between', 3]] as const) {
    it(`${fault}, ${n} ranks: PEER_LOST naming the rank on every survivor, in seconds`,
      async () => {
        const victim = n - 1;
        const results = await runRanks('faults.js', n,
          { env: { FAULT: fault, VICTIM: String(victim) }, timeoutMs: 60_000 });
        expect(results[victim].signal).toBe('SIGKILL');
        for (const r of results.filter((x) => x.rank !== victim)) {
          const op = find(r, 'allReduce');
          expect(op.outcome, r.stderr).toBe('error');
          expect(op.code).toBe('ERR_NODECCL_PEER_LOST');
          expect(op.message).toMatch(new RegExp(`rank ${victim}\\b`));
          expect(op.ms).toBeLessThan(10_000);  // the timeout is 20 s
          expect(find(r, 'next').code).toBe('ERR_NODECCL_PEER_LOST');
          expect(r.code).toBe(0);
          expectNoLeak(`${fault}, ${n} ranks`, r);
        }
      }, 70_000);
  }
});

describe('a SIGSTOPped peer', () => {
  it('TIMEOUT naming the silent rank, then the survivors exit and the peer is continued',
    async () => {
      let victimPid = 0;
      const results = await runRanks('faults.js', 2, {
        env: { FAULT: 'stop', VICTIM: '1', OP_TIMEOUT_MS: '2000' },
        timeoutMs: 60_000,
        onStart: (children) => {
          const victim = children[1];
          victimPid = victim.pid ?? 0;
          victim.stdout?.on('data', (d: Buffer) => {
            if (String(d).includes('"ready"')) process.kill(victimPid, 'SIGSTOP');
          });
          children[0].on('close', () => process.kill(victimPid, 'SIGCONT'));
        },
      });
      const op = find(results[0], 'allReduce');
      expect(op.outcome, results[0].stderr).toBe('error');
      expect(op.code).toBe('ERR_NODECCL_TIMEOUT');
      expect(op.message).toMatch(/waiting for rank 1\b/);
      expect(op.ms).toBeLessThan(15_000);
      // The continued victim learns of the failure too instead of hanging.
      expect(find(results[1], 'allReduce').outcome).toBe('error');
      for (const r of results) expectNoLeak('SIGSTOP, 2 ranks', r);
    }, 70_000);
});

describe('a SIGSTOPped peer in a group of four', () => {
  it('TIMEOUT on every survivor naming the stopped rank, found by the census', async () => {
    let victimPid = 0;
    let closed = 0;
    const results = await runRanks('faults.js', 4, {
      env: { FAULT: 'stop', VICTIM: '2', OP_TIMEOUT_MS: '2000' },
      timeoutMs: 60_000,
      onStart: (children) => {
        const victim = children[2];
        victimPid = victim.pid ?? 0;
        victim.stdout?.on('data', (d: Buffer) => {
          if (String(d).includes('"ready"')) process.kill(victimPid, 'SIGSTOP');
        });
        for (const r of [0, 1, 3]) {
          children[r].on('close', () => {
            if (++closed === 3) process.kill(victimPid, 'SIGCONT');
          });
        }
      },
    });
    for (const r of [0, 1, 3]) {
      const op = find(results[r], 'allReduce');
      expect(op.outcome, results[r].stderr).toBe('error');
      expect(op.code).toBe('ERR_NODECCL_TIMEOUT');
      // Ring neighbours 1 and 3 wait for rank 2, but rank 0 waits for rank 3 (or 1): the census
      // names rank 2 on every rank all the same.
      expect(op.message).toMatch(/census after the timeout: rank 2 did not answer/);
      expect(op.ms).toBeLessThan(15_000);
      console.log(`rank ${r}: ${op.code} after ${op.ms} ms: ${op.message}`);
      expectNoLeak('SIGSTOP, 4 ranks', results[r]);
    }
  }, 70_000);
});

describe('a root whose own arguments are rejected', () => {
  it('fails the other ranks at once, naming why, with their buffers unchanged', async () => {
    const results = await runRanks('root-args.js', 3, { timeoutMs: 60_000 });
    const outcome = results.map((r) => {
      const l = lines(r).find((x) => 'code' in x);
      if (!l) throw new Error(`rank ${r.rank}: no outcome\n${r.stdout}\n${r.stderr}`);
      return l;
    });
    expect(outcome[0].code).toBe('ERR_NODECCL_INVALID_ARGUMENT');
    expect(outcome[0].message).toMatch(/scatter input has 13 elements but needs 12/);
    for (const o of outcome.slice(1)) {
      expect(o.code).toBe('ERR_NODECCL_ABORTED');
      expect(o.message).toMatch(/scatter: the root's arguments were rejected \(.*13 elements/);
      expect(o.ms).toBeLessThan(10_000);  // the timeout is 20 s
      expect(o.unchanged).toBe(true);
    }
  }, 70_000);
});

describe('abort()', () => {
  it('returns at once while the peers are wedged; the communicator stays unusable', async () => {
    const results = await runRanks('faults.js', 3, { env: { FAULT: 'abort' }, timeoutMs: 60_000 });
    const r0 = results[0];
    expect(find(r0, 'abortCall').ms).toBeLessThan(1000);
    const op = find(r0, 'allReduce');
    expect(op.code, r0.stderr).toBe('ERR_NODECCL_ABORTED');
    expect(op.message).toMatch(/test abort/);
    expect(find(r0, 'next').code).toBe('ERR_NODECCL_ABORTED');
    for (const r of results.slice(1)) {
      // The others were sleeping: their first call fails with rank 0's abort.
      expect(find(r, 'allReduce').code, r.stderr).toBe('ERR_NODECCL_ABORTED');
      expect(find(r, 'allReduce').message).toMatch(/communicator aborted: (rank 0: )?test abort/);
    }
    for (const r of results) expectNoLeak('abort(), 3 ranks', r);
  }, 70_000);
});
