// SPDX-License-Identifier: Apache-2.0
// Faults with real processes: a peer SIGKILLed before, between or during collectives at several
// world sizes, a peer SIGSTOPped (alive, silent), abort() while the peers are wedged, and a
// master address that does not resolve. Every surviving rank must fail with the right code,
// naming the rank (or address), long before the timeout, and once it has destroyed the failed
// communicator hold no more file descriptors, threads or shared-memory segments than before
// init (each case prints its row of that table). Processes that end without destroy() must
// leave nothing in /dev/shm.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
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
// what leaked. `op` names the line whose code and time the row shows; `after` adds to the time.
function expectNoLeak(fault: string, r: RankResult, op = 'allReduce', after = ''): void {
  const leak = find(r, 'leak');
  const l = lines(r).find((x) => x.what === op);
  console.log(`${fault} | rank ${r.rank} | ${l?.code ?? '-'} after ${l?.ms ?? '-'} ms${after} | ` +
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

describe('a peer SIGKILLed in the middle of a 16 MiB all-reduce', () => {
  // NODECCL_ALGO=auto, the default, takes the staged algorithm at 16 MiB on one host (checked
  // in the log); ring forces the ring. On shared arrays (allocShared) the survivors' arrays
  // may hold partial results, which their errors say.
  const cases = [['auto', 'staged', ''], ['ring', 'ring', ''], ['auto', 'staged', 'shared']];
  for (const [algo, expected, shared] of cases) {
    it(`kill-during, ${expected}${shared ? ' on shared arrays' : ''}, 3 ranks: PEER_LOST ` +
      `naming the rank on every survivor, ${shared ? 'saying so' : 'buffers unchanged'}, ` +
      'nothing leaked', async () => {
      const victim = 2;  // faults.js orders rank 0, the victim and rank 1 around the kill
      const killFile = path.join(os.tmpdir(), `faults-kill-${process.pid}-${expected}`);
      fs.rmSync(killFile, { force: true });
      let results: RankResult[] = [];
      try {
        results = await runRanks('faults.js', 3, {
          env: { FAULT: 'kill-during', VICTIM: String(victim), KILL_FILE: killFile,
            NODECCL_ALGO: algo, NODECCL_DEBUG: 'info', NODECCL_DEBUG_SUBSYS: 'coll',
            ...(shared ? { SHARED: '1' } : {}) },
          timeoutMs: 60_000,
        });
      } finally {
        fs.rmSync(killFile, { force: true });
      }
      expect(results[victim].signal, results[victim].stderr).toBe('SIGKILL');
      // The victim's own thread killed it about 2 ms into call 4, while it waited in that call
      // for rank 1 (which entered only after the kill), with its first data sent.
      const kill = find(results[victim], 'kill');
      for (const r of results.filter((x) => x.rank !== victim)) {
        const op = find(r, 'allReduce');
        expect(op.outcome, r.stderr).toBe('error');
        expect(op.code).toBe('ERR_NODECCL_PEER_LOST');
        expect(op.message).toMatch(new RegExp(`lost rank ${victim}\\b`));
        // The call the victim died in fails; calls 0-3 completed with the right sums.
        expect(op.call).toBe(kill.call);
        expect(op.ms).toBeLessThan(10_000);  // the timeout is 20 s
        const sinceKill = Number(op.at) - Number(kill.at);
        expect(sinceKill).toBeLessThan(10_000);
        // Rank 0 had been in the call for about 100 ms when the victim died.
        const startedAt = Number(op.at) - Number(op.ms);
        if (r.rank === 0) expect(startedAt).toBeLessThanOrEqual(Number(kill.at));
        // Not one element of the failed call's buffer was written (see faults.js), unless it
        // is a shared array, which the error then says may hold partial results.
        if (shared) expect(op.message).toMatch(/the shared array passed in may hold partial/);
        else expect(op.changed).toBe(0);
        expect(r.stderr).toContain(`allReduce: ${expected} from 16777216 bytes`);
        expect(find(r, 'next').code).toBe('ERR_NODECCL_PEER_LOST');
        expect(r.code).toBe(0);
        const what = `kill-during (${expected}${shared ? ', shared' : ''}), 3 ranks`;
        expectNoLeak(what, r, 'allReduce',
          ` (${sinceKill} ms after the kill, which came ${kill.afterUs} us into the victim's ` +
          `call ${kill.call})`);
      }
    }, 70_000);
  }
});

describe('an unresolvable master address', () => {
  it('no-such-host.invalid, 2 ranks: both fail naming the address, within the init timeout',
    async () => {
      const initTimeoutMs = 3000;
      const results = await runRanks('bad-master.js', 2, {
        env: { MASTER_ADDR: 'no-such-host.invalid', INIT_TIMEOUT_MS: String(initTimeoutMs) },
        timeoutMs: 60_000,
      });
      const [r0, r1] = results.map((r) => find(r, 'init'));
      for (const [r, l] of [[results[0], r0], [results[1], r1]] as const) {
        expect(l.outcome, r.stderr).toBe('error');
        expect(l.message).toMatch(/cannot resolve host 'no-such-host\.invalid'/);
        expect(r.code).toBe(0);
      }
      // Rank 0 serves the store: it cannot listen on the address, and says so at once (it does
      // not wait for the init timeout: its time is under it).
      expect(r0.code).toBe('ERR_NODECCL_IO');
      expect(r0.message).toMatch(/cannot listen on no-such-host\.invalid:\d+/);
      expect(r0.ms).toBeLessThan(initTimeoutMs);
      // Rank 1 retries the store until the init timeout and then names the resolver's error.
      expect(r1.code).toBe('ERR_NODECCL_TIMEOUT');
      expect(r1.message).toMatch(/cannot connect to no-such-host\.invalid:\d+ within \d+ ms/);
      expect(r1.message).toMatch(/init timeout 3000 ms/);
      expect(r1.ms).toBeLessThan(initTimeoutMs + 5000);  // a slow resolver adds to the last try
      for (const r of results) expectNoLeak('unresolvable MASTER_ADDR, 2 ranks', r, 'init');
    }, 70_000);
});

// The /dev/shm names of nodeccl's segments and windows made by one of `pids`:
// nodeccl-<pid>-<rank>-<hex> and nodeccl-<pid>-<rank>-<hex>-w.
const shmOf = (pids: number[]): string[] => fs.readdirSync('/dev/shm')
  .filter((n) => pids.some((p) => n.startsWith(`nodeccl-${p}-`)));

describe('processes that end without destroy()', () => {
  for (const [mode, n] of [['exit', 2], ['exit', 3], ['kill', 3]] as const) {
    const what = mode === 'exit' ? 'process.exit(0) after collectives'
      : 'a SIGKILL right after init (the others then exit(0))';
    it(`${what}, ${n} ranks: no nodeccl-* left in /dev/shm by their pids`, async () => {
      const victim = 1;
      // Names from before the job whose pid a rank happens to reuse are not the job's.
      const before = new Set(fs.readdirSync('/dev/shm'));
      let pids: number[] = [];
      const results = await runRanks('no-destroy.js', n, {
        env: { MODE: mode, VICTIM: String(victim) },
        timeoutMs: 60_000,
        onStart: (children) => { pids = children.map((c) => c.pid ?? 0); },
      });
      // What the ranks had mapped after init: every rank's segment and window (2 n names),
      // each named after its creator's pid, so that the filter above is seen to match them.
      const mapped = new Set<string>();
      for (const r of results) {
        const ready = find(r, 'ready');
        expect(ready.transport, r.stderr).toBe('shm');
        expect(pids).toContain(ready.pid);
        for (const m of ready.mapped as string[]) mapped.add(m);
        if (mode === 'kill' && r.rank === victim) {
          expect(r.signal).toBe('SIGKILL');
          continue;
        }
        // After the kill the others' all-reduce fails naming the lost rank (its code is the
        // subject of the kill tests above), and they exit with the failed communicator.
        const op = find(r, 'collectives');
        if (mode === 'exit') expect(op.outcome, r.stderr).toBe('completed');
        else expect(op.message, r.stderr).toMatch(new RegExp(`lost rank ${victim}\\b`));
        expect(r.code, r.stderr).toBe(0);
      }
      expect(mapped.size).toBe(2 * n);
      for (const p of pids) {
        expect([...mapped].filter((m) => m.startsWith(`nodeccl-${p}-`)).length).toBe(2);
      }
      const left = shmOf(pids).filter((x) => !before.has(x));
      console.log(`${mode === 'exit' ? 'exit(0) without destroy()' : 'SIGKILL after init'}, ` +
        `${n} ranks | pids ${pids.join(', ')} | mapped ${mapped.size} nodeccl-* names, ` +
        `left in /dev/shm ${left.length}${left.length ? `: ${left.join(', ')}` : ''}`);
      expect(left).toEqual([]);
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
