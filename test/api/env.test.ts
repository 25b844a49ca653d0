// SPDX-License-Identifier: Apache-2.0
// resolveWorld() and envMillis() as pure functions of options and an environment: each
// launcher's variables, their precedence, explicit overrides, and the wording of bad values.
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_MASTER_ADDR, DEFAULT_MASTER_PORT, detectLauncher, envMillis, resolveWorld,
} from '../../lib/env';
import { NodecclError, NodecclRangeError, NodecclTypeError } from '../../lib/errors';

type Env = Record<string, string>;

function thrown(fn: () => unknown): Error & { code?: string } {
  try {
    fn();
  } catch (e) {
    return e as Error & { code?: string };
  }
  throw new Error('expected a throw');
}

const ompi = (rank: number, size: number, localRank = rank, localSize = size): Env => ({
  OMPI_COMM_WORLD_RANK: String(rank), OMPI_COMM_WORLD_SIZE: String(size),
  OMPI_COMM_WORLD_LOCAL_RANK: String(localRank), OMPI_COMM_WORLD_LOCAL_SIZE: String(localSize),
});

// What srun sets for task 5 of 7 on the third of four nodes (2 + 2 + 2 + 1 tasks).
const slurmStep: Env = {
  SLURM_JOB_ID: '123', SLURM_STEP_ID: '0', SLURM_PROCID: '5', SLURM_NTASKS: '7',
  SLURM_STEP_NUM_TASKS: '7', SLURM_LOCALID: '1', SLURM_NODEID: '2', SLURM_NNODES: '4',
  SLURM_STEP_NUM_NODES: '4', SLURM_STEP_TASKS_PER_NODE: '2(x3),1',
};

describe('resolveWorld: sources', () => {
  it('is a single process on 127.0.0.1:29500 when nothing is set', () => {
    expect(resolveWorld({}, {})).toEqual({
      rank: 0, size: 1, localRank: 0, localSize: 1, masterAddr: '127.0.0.1',
      masterPort: 29500, source: 'default', variables: {},
    });
    expect(DEFAULT_MASTER_ADDR).toBe('127.0.0.1');
    expect(DEFAULT_MASTER_PORT).toBe(29500);
  });

  it('reads torchrun variables', () => {
    const w = resolveWorld({}, {
      RANK: '3', WORLD_SIZE: '8', LOCAL_RANK: '1', LOCAL_WORLD_SIZE: '2',
      MASTER_ADDR: 'node7', MASTER_PORT: '1234',
    });
    expect(w).toMatchObject({
      rank: 3, size: 8, localRank: 1, localSize: 2, masterAddr: 'node7', masterPort: 1234,
      source: 'torchrun',
    });
    expect(w.variables).toEqual({
      RANK: '3', WORLD_SIZE: '8', LOCAL_RANK: '1', LOCAL_WORLD_SIZE: '2', MASTER_ADDR: 'node7',
      MASTER_PORT: '1234',
    });
  });

  it("names nodeccl-run as the source when it set the variables", () => {
    const w = resolveWorld({}, { RANK: '1', WORLD_SIZE: '2', NODECCL_LAUNCHER: '1' });
    expect(w.source).toBe('nodeccl-run');
    // Without LOCAL_*, every rank is taken to be on this host.
    expect(w).toMatchObject({ localRank: 1, localSize: 2 });
  });

  it('reads Open MPI variables, with default store address and port', () => {
    expect(resolveWorld({}, ompi(2, 4))).toMatchObject({
      rank: 2, size: 4, localRank: 2, localSize: 4, masterAddr: '127.0.0.1', masterPort: 29500,
      source: 'openmpi',
    });
  });

  it('reads MPICH / Intel MPI (PMI) variables', () => {
    expect(resolveWorld({}, {
      PMI_RANK: '1', PMI_SIZE: '3', MPI_LOCALRANKID: '1', MPI_LOCALNRANKS: '3',
    })).toMatchObject({ rank: 1, size: 3, localRank: 1, localSize: 3, source: 'pmi' });
    // A lone PMI_RANK says nothing about the world: ignored.
    expect(resolveWorld({}, { PMI_RANK: '0' }).source).toBe('default');
  });

  it('reads Slurm variables inside an srun step, with tasks per node', () => {
    const w = resolveWorld({}, { ...slurmStep, MASTER_ADDR: 'nid001' });
    expect(w).toMatchObject({
      rank: 5, size: 7, localRank: 1, localSize: 2, masterAddr: 'nid001', source: 'slurm',
    });
    const last = resolveWorld({}, {
      ...slurmStep, SLURM_PROCID: '6', SLURM_NODEID: '3', SLURM_LOCALID: '0',
      MASTER_ADDR: 'nid001',
    });
    expect(last).toMatchObject({ rank: 6, localRank: 0, localSize: 1 });
    const oneNode = resolveWorld({}, {
      SLURM_STEP_ID: '2', SLURM_PROCID: '1', SLURM_NTASKS: '2', SLURM_LOCALID: '1',
      SLURM_NNODES: '1',
    });
    expect(oneNode).toMatchObject({ rank: 1, size: 2, localRank: 1, localSize: 2 });
  });

  it('ignores Slurm variables outside an srun step (a batch script, a bare salloc)', () => {
    const { SLURM_STEP_ID: _, ...batch } = slurmStep;
    expect(resolveWorld({}, batch).source).toBe('default');
    expect(resolveWorld({}, { ...slurmStep, SLURM_STEP_ID: '4294967290' }).source)
      .toBe('default');
  });

  it('takes the first launcher in the order RANK, Open MPI, PMI, Slurm', () => {
    const all: Env = {
      ...slurmStep, MASTER_ADDR: 'h', PMI_RANK: '1', PMI_SIZE: '2', ...ompi(3, 4),
      RANK: '0', WORLD_SIZE: '1',
    };
    expect(resolveWorld({}, all).source).toBe('torchrun');
    const { RANK: _r, WORLD_SIZE: _w, ...noTorch } = all;
    expect(resolveWorld({}, noTorch)).toMatchObject({ source: 'openmpi', rank: 3 });
    const noOmpi = Object.fromEntries(Object.entries(noTorch).filter(([k]) => !k.startsWith(
      'OMPI_')));
    expect(resolveWorld({}, noOmpi)).toMatchObject({ source: 'pmi', rank: 1 });
    const onlySlurm = Object.fromEntries(Object.entries(noOmpi).filter(([k]) => !k.startsWith(
      'PMI_')));
    expect(resolveWorld({}, onlySlurm)).toMatchObject({ source: 'slurm', rank: 5 });
  });

  it('treats empty variables as unset and trims spaces', () => {
    expect(resolveWorld({}, { RANK: '', WORLD_SIZE: ' ' }).source).toBe('default');
    expect(resolveWorld({}, { RANK: ' 1 ', WORLD_SIZE: '2 ', MASTER_ADDR: ' h ' }))
      .toMatchObject({ rank: 1, size: 2, masterAddr: 'h' });
  });

  it('detects which launcher is present', () => {
    expect(detectLauncher({})).toBeUndefined();
    expect(detectLauncher({ RANK: '0' })).toBe('torchrun');
    expect(detectLauncher({ RANK: '0', NODECCL_LAUNCHER: '1' })).toBe('nodeccl-run');
    expect(detectLauncher(ompi(0, 2))).toBe('openmpi');
    expect(detectLauncher({ PMI_RANK: '0', PMI_SIZE: '2' })).toBe('pmi');
    expect(detectLauncher(slurmStep)).toBe('slurm');
    expect(detectLauncher({ SLURM_PROCID: '0', SLURM_NTASKS: '4' })).toBeUndefined();
  });
});

describe('resolveWorld: options', () => {
  it('override the environment', () => {
    const w = resolveWorld({ rank: 1, worldSize: 2, masterAddr: '10.0.0.1', masterPort: 4000 },
      { RANK: '5', WORLD_SIZE: '8', MASTER_ADDR: 'x', MASTER_PORT: '1' });
    expect(w).toMatchObject({
      rank: 1, size: 2, localRank: 1, localSize: 2, masterAddr: '10.0.0.1', masterPort: 4000,
      source: 'options',
    });
  });

  it('may override only some values', () => {
    const w = resolveWorld({ masterPort: 4100 }, ompi(1, 2));
    expect(w).toMatchObject({ rank: 1, size: 2, masterPort: 4100, source: 'openmpi' });
    expect(resolveWorld({ rank: 0 }, ompi(1, 2))).toMatchObject({ rank: 0, size: 2 });
    expect(resolveWorld({ worldSize: 1 }, {})).toMatchObject({ rank: 0, size: 1 });
    expect(resolveWorld({ rank: 0, worldSize: 3 }, {}).source).toBe('options');
  });

  it('ignore keys they do not know (a caller passes its whole options object)', () => {
    const options = { rank: 0, worldSize: 1, timeoutMs: 5 } as never;
    expect(resolveWorld(options, {}).size).toBe(1);
  });

  it('need both rank and size when there is no launcher', () => {
    const a = thrown(() => resolveWorld({ rank: 2 }, {}));
    expect(a).toBeInstanceOf(NodecclRangeError);
    expect(a.message).toBe('option rank = 2 was given but no world size; pass worldSize too, ' +
      'or launch with nodeccl-run, torchrun, mpirun or srun');
    expect(thrown(() => resolveWorld({ worldSize: 4 }, {})).message).toContain('no rank');
  });

  it('are checked: integers in range, a port, a host name', () => {
    const bad: [object, RegExp][] = [
      [{ rank: -1, worldSize: 2 }, /option rank = -1 is not an integer >= 0/],
      [{ rank: 0.5, worldSize: 2 }, /option rank = 0.5/],
      [{ rank: 0, worldSize: 0 }, /option worldSize = 0 is not an integer >= 1/],
      [{ rank: 2, worldSize: 2 }, /option rank = 2 is not below option worldSize = 2/],
      [{ masterPort: 70000 }, /option masterPort = 70000 is not an integer from 1 to 65535/],
      [{ masterPort: 0 }, /option masterPort = 0/],
    ];
    for (const [options, message] of bad) {
      const e = thrown(() => resolveWorld(options, {}));
      expect(e).toBeInstanceOf(NodecclRangeError);
      expect(e.code).toBe('ERR_NODECCL_INVALID_ARGUMENT');
      expect(e.message).toMatch(message);
    }
    expect(thrown(() => resolveWorld({ rank: '1' } as never, {}))).toBeInstanceOf(
      NodecclTypeError);
    expect(thrown(() => resolveWorld({ masterAddr: '' }, {}))).toBeInstanceOf(NodecclTypeError);
    expect(thrown(() => resolveWorld({ masterAddr: 5 } as never, {}))).toBeInstanceOf(
      NodecclTypeError);
  });
});

describe('resolveWorld: invalid variables', () => {
  const cases: [Env, string][] = [
    [{ RANK: 'abc', WORLD_SIZE: '2' }, 'RANK="abc" is not an integer >= 0'],
    [{ RANK: '-1', WORLD_SIZE: '2' }, 'RANK="-1" is not an integer >= 0'],
    [{ RANK: '1.5', WORLD_SIZE: '2' }, 'RANK="1.5"'],
    [{ RANK: '0', WORLD_SIZE: '0' }, 'WORLD_SIZE="0" is not an integer >= 1'],
    [{ RANK: '4', WORLD_SIZE: '4' }, 'RANK=4 is not below WORLD_SIZE=4'],
    [{ RANK: '1' }, 'RANK="1" is set but WORLD_SIZE is not'],
    [{ WORLD_SIZE: '2' }, 'WORLD_SIZE="2" is set but RANK is not'],
    [{ MASTER_PORT: '0' }, 'MASTER_PORT="0" is not an integer >= 1'],
    [{ MASTER_PORT: 'http' }, 'MASTER_PORT="http"'],
    [{ MASTER_PORT: '65536' }, 'MASTER_PORT=65536 is not a TCP port (1 to 65535)'],
    [{ ...ompi(0, 2), OMPI_COMM_WORLD_LOCAL_RANK: 'x' }, 'OMPI_COMM_WORLD_LOCAL_RANK="x"'],
    [ompi(3, 2), 'OMPI_COMM_WORLD_RANK=3 is not below OMPI_COMM_WORLD_SIZE=2'],
    [{ RANK: '1', WORLD_SIZE: '4', LOCAL_RANK: '2', LOCAL_WORLD_SIZE: '2', MASTER_ADDR: 'h' },
      'LOCAL_RANK=2 with LOCAL_WORLD_SIZE=2'],
    [{ PMI_RANK: '0', PMI_SIZE: 'two' }, 'PMI_SIZE="two"'],
    [{ ...slurmStep, SLURM_PROCID: '9' }, 'SLURM_PROCID=9 is not below SLURM_STEP_NUM_TASKS=7'],
  ];
  for (const [env, message] of cases) {
    it(`rejects ${JSON.stringify(env).slice(0, 60)}`, () => {
      const e = thrown(() => resolveWorld({}, env));
      expect(e).toBeInstanceOf(NodecclRangeError);
      expect(e.message).toContain(message);
      // Every message says what to do about it.
      expect(e.message).toMatch(/; (set|check|unset|pass)|check the launcher/);
    });
  }

  it('ignores a bad variable that an option overrides', () => {
    expect(resolveWorld({ masterPort: 5000 }, { MASTER_PORT: 'bad' }).masterPort).toBe(5000);
  });
});

describe('resolveWorld: ranks on several hosts', () => {
  it('requires a master address, since 127.0.0.1 would not reach rank 0', () => {
    const e = thrown(() => resolveWorld({}, ompi(3, 4, 1, 2)));
    expect(e).toBeInstanceOf(NodecclError);
    expect((e as NodecclError).code).toBe('ERR_NODECCL_INVALID_ARGUMENT');
    expect(e.message).toContain('MASTER_ADDR');
    expect(thrown(() => resolveWorld({}, slurmStep)).message).toContain('more than one host');
  });

  it('accepts MASTER_ADDR or the masterAddr option', () => {
    expect(resolveWorld({}, { ...ompi(3, 4, 1, 2), MASTER_ADDR: 'head' })).toMatchObject({
      rank: 3, localRank: 1, localSize: 2, masterAddr: 'head',
    });
    expect(resolveWorld({ masterAddr: 'head' }, slurmStep).masterAddr).toBe('head');
  });
});

describe('envMillis', () => {
  it('reads whole milliseconds, or the default when unset or empty', () => {
    expect(envMillis('NODECCL_TIMEOUT_MS', 300000, {})).toBe(300000);
    expect(envMillis('NODECCL_TIMEOUT_MS', 300000, { NODECCL_TIMEOUT_MS: '' })).toBe(300000);
    expect(envMillis('NODECCL_TIMEOUT_MS', 1, { NODECCL_TIMEOUT_MS: '1500' })).toBe(1500);
    expect(envMillis('NODECCL_INIT_TIMEOUT_MS', 1, { NODECCL_INIT_TIMEOUT_MS: ' 0 ' })).toBe(0);
  });

  it('names the variable, its value and the fix when it is not a number of ms', () => {
    for (const v of ['10s', '-5', '1.5', 'Infinity', '1e3']) {
      const e = thrown(() => envMillis('NODECCL_TIMEOUT_MS', 60000, { NODECCL_TIMEOUT_MS: v }));
      expect(e).toBeInstanceOf(NodecclRangeError);
      expect(e.message).toBe(`NODECCL_TIMEOUT_MS=${JSON.stringify(v)} is not a whole number ` +
        'of milliseconds; set e.g. NODECCL_TIMEOUT_MS=60000, or unset it for the default ' +
        '(60000 ms)');
    }
  });

  it('reads process.env by default', () => {
    const before = process.env.NODECCL_TEST_MS;
    process.env.NODECCL_TEST_MS = '77';
    try {
      expect(envMillis('NODECCL_TEST_MS', 1)).toBe(77);
    } finally {
      if (before === undefined) delete process.env.NODECCL_TEST_MS;
      else process.env.NODECCL_TEST_MS = before;
    }
  });
});
