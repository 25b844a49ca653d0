// SPDX-License-Identifier: Apache-2.0
// Jobs started by Open MPI's mpirun: init() without MASTER_ADDR (the MPI rendezvous), every
// collective, dtype, op and count against a reference, with NODECCL_BACKEND=mpi and with the
// native backend, for 1-4 ranks; a timeout and an abort under NODECCL_BACKEND=mpi; and mpirun's
// exit code 0 every time (it reports a process that called MPI_Init but not MPI_Finalize).
// Without mpirun: fails under CI=true, else skips, saying to install openmpi-bin.
import { execFileSync, spawn } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { backendSetting, wantsMpiRendezvous } from '../../lib/mpi';
import { FIXTURES, ROOT } from '../helpers/world';

const INSTALL = 'install Open MPI (apt-get install openmpi-bin libopenmpi-dev)';

// Why mpirun cannot be used here, or null.
function mpirunMissing(): string | null {
  try {
    execFileSync('mpirun', ['--version'], { stdio: 'pipe' });
    return null;
  } catch (e) {
    return `mpirun not found (${(e as Error).message.split('\n')[0]}); ${INSTALL}`;
  }
}
const missing = mpirunMissing();
if (missing !== null && process.env.CI === undefined) {
  console.log(`mpi tests skipped: ${missing}`);
}

interface MpiRun {
  code: number | null;
  ranks: Record<string, unknown>[];  // each rank's JSON line, by rank
  output: string;
}

// mpirun -np n node fixture, with no launcher or rendezvous variables of the calling shell.
async function mpirun(script: string, n: number, env: Record<string, string>): Promise<MpiRun> {
  const clean: Record<string, string | undefined> = { ...process.env };
  for (const k of ['MASTER_ADDR', 'MASTER_PORT', 'RANK', 'WORLD_SIZE', 'LOCAL_RANK',
    'LOCAL_WORLD_SIZE', 'NODECCL_TOKEN', 'NODECCL_BACKEND', 'NODECCL_LAUNCHER']) delete clean[k];
  const args = ['--allow-run-as-root', '--oversubscribe', '-np', String(n), process.execPath,
    path.join(FIXTURES, script)];
  const child = spawn('mpirun', args, { cwd: ROOT, env: { ...clean, ...env },
    stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => { output += d; });
  child.stderr.on('data', (d) => { output += d; });
  const timer = setTimeout(() => child.kill('SIGKILL'), 100_000);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearTimeout(timer);
  const ranks = output.split('\n').filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .sort((a, b) => Number(a.rank) - Number(b.rank));
  return { code, ranks, output };
}

describe('backend and rendezvous choice', () => {
  it('reads NODECCL_BACKEND and takes the MPI rendezvous only without a master address', () => {
    expect(backendSetting({})).toBe('native');
    expect(backendSetting({ NODECCL_BACKEND: 'mpi' })).toBe('mpi');
    expect(() => backendSetting({ NODECCL_BACKEND: 'gloo' })).toThrow(/auto, native or mpi/);
    const ompi = { OMPI_COMM_WORLD_RANK: '0', OMPI_COMM_WORLD_SIZE: '2' };
    expect(wantsMpiRendezvous(undefined, ompi)).toBe(true);
    expect(wantsMpiRendezvous(undefined, { PMI_RANK: '1', PMI_SIZE: '2' })).toBe(true);
    expect(wantsMpiRendezvous(undefined, { ...ompi, MASTER_ADDR: '10.0.0.1' })).toBe(false);
    expect(wantsMpiRendezvous('10.0.0.1', ompi)).toBe(false);
    expect(wantsMpiRendezvous(undefined, { RANK: '0', WORLD_SIZE: '2' })).toBe(false);
  });
});

describe.runIf(missing !== null && process.env.CI !== undefined)('mpirun in CI', () => {
  it('is installed', () => {
    expect.fail(`${missing}: CI runs the MPI tests`);
  });
});

describe.skipIf(missing !== null)('under mpirun', () => {
  for (const backend of ['mpi', 'native']) {
    for (const n of [1, 2, 3, 4]) {
      it(`every collective, dtype, op and count, NODECCL_BACKEND=${backend}, ${n} rank(s)`,
        async () => {
          const run = await mpirun('mpi-collectives.js', n, { NODECCL_BACKEND: backend });
          expect(run.ranks.length, run.output).toBe(n);
          for (const r of run.ranks) {
            expect(r.error, run.output).toBeUndefined();
            expect(r.failures).toEqual([]);
            expect(r.checks).toBeGreaterThan(500);
            expect(r.backend).toBe(backend);
            expect(r.tokenLength).toBe(64);  // rank 0 made a job token; MPI gave it to all
          }
          expect(run.code, run.output).toBe(0);
        });
    }
  }

  it('NODECCL_BACKEND=auto takes MPI under mpirun', async () => {
    const run = await mpirun('mpi-collectives.js', 2, { NODECCL_BACKEND: 'auto', COUNTS: '0,7' });
    expect(run.ranks.length, run.output).toBe(2);
    for (const r of run.ranks) {
      expect(r.failures, run.output).toEqual([]);
      expect(r.backend).toBe('mpi');
    }
    expect(run.code, run.output).toBe(0);
  });

  it('NODECCL_BACKEND=mpi: a rank that does not call fails the others with a timeout', async () => {
    const run = await mpirun('mpi-fault.js', 3, { NODECCL_BACKEND: 'mpi', MODE: 'timeout' });
    expect(run.ranks.map((r) => r.role), run.output).toEqual(['waiter', 'waiter', 'idle']);
    for (const r of run.ranks.slice(0, 2)) {
      expect(r.code, run.output).toBe('ERR_NODECCL_TIMEOUT');
      expect(r.message).toMatch(/allReduce #2 \(NODECCL_BACKEND=mpi\) did not complete within/);
    }
    expect(run.code, run.output).toBe(0);
  });

  it('NODECCL_BACKEND=mpi: abort() on one rank fails the others waiting in MPI', async () => {
    const run = await mpirun('mpi-fault.js', 3, { NODECCL_BACKEND: 'mpi', MODE: 'abort' });
    expect(run.ranks.map((r) => r.role), run.output).toEqual(['waiter', 'idle', 'waiter']);
    for (const r of [run.ranks[0], run.ranks[2]]) {
      expect(r.code, run.output).toBe('ERR_NODECCL_ABORTED');
      expect(r.message).toMatch(/rank 1: communicator aborted: rank 1 gives up/);
    }
    expect(run.code, run.output).toBe(0);
  });

  it('NODECCL_BACKEND=mpi: one communicator on MPI at a time', async () => {
    const run = await mpirun('mpi-fault.js', 2, { NODECCL_BACKEND: 'mpi', MODE: 'twice' });
    expect(run.ranks.length, run.output).toBe(2);
    for (const r of run.ranks) {
      expect(r.code, run.output).toBe('ERR_NODECCL_INVALID_ARGUMENT');
      expect(r.message).toMatch(/LIMITATION: .*another communicator of this process already runs/);
      expect(r.sum).toBe(2);  // the first communicator still works
    }
    expect(run.code, run.output).toBe(0);
  });

  it('NODECCL_MPI_LIBRARY naming a missing library fails init with what to install', async () => {
    const run = await mpirun('mpi-collectives.js', 2, { NODECCL_BACKEND: 'mpi',
      NODECCL_MPI_LIBRARY: '/nonexistent/libmpi.so.40' });
    for (const r of run.ranks) {
      expect(r.error, run.output).toMatch(
        /ERR_NODECCL_INVALID_ARGUMENT: no MPI library could be loaded/);
      expect(r.error).toMatch(/apt-get install openmpi-bin libopenmpi-dev/);
    }
    expect(run.ranks.length, run.output).toBe(2);
  });
});
