// SPDX-License-Identifier: Apache-2.0
// Where this process sits in the job: its rank, the world size, its place on its host and the
// address of rank 0's store, read from explicit options, then from the variables that
// nodeccl-run, torchrun, Open MPI, MPICH/Intel MPI (PMI) or Slurm set. Pure functions of an
// options object and an environment, so every case can be tested without a launcher.
import { NodecclError, NodecclRangeError, NodecclTypeError } from './errors';
import { describeValue } from './options';

/** Where the rank and world size came from. */
export type WorldSource =
  | 'options' // rank and worldSize passed explicitly
  | 'nodeccl-run' // RANK/WORLD_SIZE set by nodeccl-run (NODECCL_LAUNCHER=1)
  | 'torchrun' // RANK/WORLD_SIZE set by torchrun or by hand
  | 'openmpi' // OMPI_COMM_WORLD_* (mpirun of Open MPI)
  | 'pmi' // PMI_RANK/PMI_SIZE (MPICH, Intel MPI and other Hydra-based launchers)
  | 'slurm' // SLURM_PROCID/SLURM_NTASKS inside an srun step
  | 'default'; // nothing set: a world of one process

/** The options {@link resolveWorld} reads; each overrides the matching variable. */
export interface WorldOptions {
  /** This process's rank, 0..worldSize-1. */
  rank?: number;
  /** The number of processes. */
  worldSize?: number;
  /** Host or address of rank 0's store. */
  masterAddr?: string;
  /** TCP port of rank 0's store, 1..65535. */
  masterPort?: number;
}

/** This process's place in the job. */
export interface WorldInfo {
  /** Global rank, 0..size-1. */
  rank: number;
  /** Number of processes in the job. */
  size: number;
  /** Rank among the processes on this host, 0..localSize-1. */
  localRank: number;
  /** Number of processes of the job on this host. */
  localSize: number;
  /** Host or address of rank 0's store. */
  masterAddr: string;
  /** TCP port of rank 0's store. */
  masterPort: number;
  /** Where rank and size came from. */
  source: WorldSource;
  /** Every environment variable that was read and set, name to value (for logging). */
  variables: Readonly<Record<string, string>>;
}

/** Store address used when neither `masterAddr` nor MASTER_ADDR is given. */
export const DEFAULT_MASTER_ADDR = '127.0.0.1';
/** Store port used when neither `masterPort` nor MASTER_PORT is given (torchrun's default). */
export const DEFAULT_MASTER_PORT = 29500;

type Env = Readonly<Record<string, string | undefined>>;

/** A value and the name it came from, so messages can say `WORLD_SIZE=4` or `worldSize = 4`. */
interface Named {
  value: number;
  from: string;
}

/** What one launcher's variables say. */
interface EnvWorld {
  source: WorldSource;
  rank: Named;
  size: Named;
  localRank?: Named;
  localSize?: Named;
  multiHost: boolean;
}

// Reads the variables of one launcher: rank and size names, local rank and size names.
interface Scheme {
  source: WorldSource;
  rank: string;
  size: readonly string[]; // the first one set wins
  localRank?: string;
  localSize?: string;
}

const TORCHRUN: Scheme = {
  source: 'torchrun', rank: 'RANK', size: ['WORLD_SIZE'],
  localRank: 'LOCAL_RANK', localSize: 'LOCAL_WORLD_SIZE',
};
const OPENMPI: Scheme = {
  source: 'openmpi', rank: 'OMPI_COMM_WORLD_RANK', size: ['OMPI_COMM_WORLD_SIZE'],
  localRank: 'OMPI_COMM_WORLD_LOCAL_RANK', localSize: 'OMPI_COMM_WORLD_LOCAL_SIZE',
};
const PMI: Scheme = {
  source: 'pmi', rank: 'PMI_RANK', size: ['PMI_SIZE'],
  localRank: 'MPI_LOCALRANKID', localSize: 'MPI_LOCALNRANKS',
};
const SLURM: Scheme = {
  source: 'slurm', rank: 'SLURM_PROCID', size: ['SLURM_STEP_NUM_TASKS', 'SLURM_NTASKS',
    'SLURM_NPROCS'],
  localRank: 'SLURM_LOCALID',
};

// Records every variable read that is set, for WorldInfo.variables.
class EnvReader {
  readonly seen: Record<string, string> = {};
  constructor(private readonly env: Env) {}

  get(name: string): string | undefined {
    const v = this.env[name];
    if (v === undefined || v.trim() === '') return undefined;
    this.seen[name] = v;
    return v;
  }

  /** An integer >= min, or undefined when unset. */
  int(name: string, min: number, fix: string): Named | undefined {
    const raw = this.get(name);
    if (raw === undefined) return undefined;
    const value = /^\s*\+?\d+\s*$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isSafeInteger(value) || value < min) {
      throw new NodecclRangeError(`${name}=${JSON.stringify(raw)} is not an integer >= ${min}; ` +
        fix);
    }
    return { value, from: name };
  }
}

function launcherFix(scheme: Scheme): string {
  return scheme.source === 'torchrun'
    ? `set ${scheme.rank} and ${scheme.size[0]} together (nodeccl-run and torchrun do), or ` +
      'unset them'
    : `check how ${scheme.source === 'slurm' ? 'srun' : 'mpirun'} was invoked, or unset ` +
      'the variable';
}

// Slurm writes tasks per node as "2(x3),1": three nodes with 2 tasks, then one with 1.
function slurmTasksOnNode(spec: string, node: number): number | undefined {
  let first = 0;
  for (const part of spec.split(',')) {
    const m = /^\s*(\d+)(?:\(x(\d+)\))?\s*$/.exec(part);
    if (m === null) return undefined;
    const repeat = m[2] === undefined ? 1 : Number(m[2]);
    if (node < first + repeat) return Number(m[1]);
    first += repeat;
  }
  return undefined;
}

// srun sets SLURM_STEP_ID; a batch script or a bare salloc shell does not (or uses a reserved
// id above 0xfffffff0), and there SLURM_PROCID=0 describes the allocation, not this process.
function inSlurmStep(r: EnvReader): boolean {
  const step = r.get('SLURM_STEP_ID') ?? r.get('SLURM_STEPID');
  return step !== undefined && /^\d+$/.test(step.trim()) && Number(step) < 0xfffffff0;
}

function readSlurmLocalSize(r: EnvReader, size: number): { localSize?: Named; nodes: number } {
  const nodes = r.int('SLURM_STEP_NUM_NODES', 1, launcherFix(SLURM))?.value ??
    r.int('SLURM_NNODES', 1, launcherFix(SLURM))?.value ?? 1;
  const node = r.int('SLURM_NODEID', 0, launcherFix(SLURM))?.value ?? 0;
  for (const name of ['SLURM_STEP_TASKS_PER_NODE', 'SLURM_TASKS_PER_NODE']) {
    const spec = r.get(name);
    const n = spec === undefined ? undefined : slurmTasksOnNode(spec, node);
    if (n !== undefined) return { localSize: { value: n, from: name }, nodes };
  }
  return { localSize: nodes === 1 ? { value: size, from: 'SLURM_NNODES' } : undefined, nodes };
}

function readScheme(r: EnvReader, scheme: Scheme): EnvWorld | undefined {
  if (scheme.source === 'slurm' && !inSlurmStep(r)) return undefined;
  const fix = launcherFix(scheme);
  const rank = r.int(scheme.rank, 0, fix);
  let size: Named | undefined;
  for (const name of scheme.size) size ??= r.int(name, 1, fix);
  if (rank === undefined && size === undefined) return undefined;
  if (rank === undefined || size === undefined) {
    // Only RANK/WORLD_SIZE are set by hand; a lone PMI_RANK (some PMI-2 setups) or the like
    // says nothing about the world, so the next launcher's variables are tried instead.
    if (scheme.source !== 'torchrun') return undefined;
    const [set, unset] = rank === undefined ? [size!.from, scheme.rank] : [rank.from,
      scheme.size[0]];
    throw new NodecclRangeError(`${set}=${JSON.stringify(r.seen[set])} is set but ${unset} ` +
      `is not; ${fix}`);
  }
  const world: EnvWorld = { source: scheme.source, rank, size, multiHost: false };
  if (scheme.localRank !== undefined) world.localRank = r.int(scheme.localRank, 0, fix);
  if (scheme.localSize !== undefined) world.localSize = r.int(scheme.localSize, 1, fix);
  if (scheme.source === 'slurm') {
    const { localSize, nodes } = readSlurmLocalSize(r, size.value);
    world.localSize = localSize;
    world.multiHost = nodes > 1;
  }
  if (scheme.source === 'torchrun' && r.get('NODECCL_LAUNCHER') === '1') {
    world.source = 'nodeccl-run';
  }
  return world;
}

/**
 * Which launcher's variables are present, without validating them: `'nodeccl-run'` or
 * `'torchrun'` (RANK/WORLD_SIZE), `'openmpi'`, `'pmi'`, `'slurm'` (only inside an srun step),
 * or undefined. The first match in that order is the one {@link resolveWorld} uses.
 */
export function detectLauncher(env: Env = process.env): WorldSource | undefined {
  const has = (name: string) => (env[name] ?? '').trim() !== '';
  if (has('RANK') || has('WORLD_SIZE')) return env.NODECCL_LAUNCHER === '1' ? 'nodeccl-run'
    : 'torchrun';
  if (has('OMPI_COMM_WORLD_RANK') || has('OMPI_COMM_WORLD_SIZE')) return 'openmpi';
  if (has('PMI_RANK') || has('PMI_SIZE')) return 'pmi';
  if (has('SLURM_PROCID') && inSlurmStep(new EnvReader(env))) return 'slurm';
  return undefined;
}

function optionInt(value: unknown, name: string, min: number, max: number): Named | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number') {
    throw new NodecclTypeError(`option ${name} must be a number, got ${describeValue(value)}`);
  }
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`;
    throw new NodecclRangeError(`option ${name} = ${value} is not an integer ${range}; ` +
      `pass a valid ${name} or leave it out to read it from the environment`);
  }
  return { value, from: `option ${name}` };
}

function describeNamed(n: Named): string {
  return n.from.startsWith('option ') ? `${n.from} = ${n.value}` : `${n.from}=${n.value}`;
}

function resolveRankAndSize(options: WorldOptions, found: EnvWorld | undefined):
  { rank: Named; size: Named } {
  const max = Number.MAX_SAFE_INTEGER;
  const rank = optionInt(options.rank, 'rank', 0, max) ?? found?.rank;
  const size = optionInt(options.worldSize, 'worldSize', 1, max) ?? found?.size;
  const launchers = 'launch with nodeccl-run, torchrun, mpirun or srun';
  if (size === undefined && rank !== undefined && rank.value !== 0) {
    throw new NodecclRangeError(`${describeNamed(rank)} was given but no world size; pass ` +
      `worldSize too, or ${launchers}`);
  }
  if (rank === undefined && size !== undefined && size.value !== 1) {
    throw new NodecclRangeError(`${describeNamed(size)} was given but no rank; pass rank too, ` +
      `or ${launchers}`);
  }
  const r = rank ?? { value: 0, from: 'default rank' };
  const s = size ?? { value: 1, from: 'default world size' };
  if (r.value >= s.value) {
    throw new NodecclRangeError(`${describeNamed(r)} is not below ${describeNamed(s)}; ranks ` +
      `run from 0 to size-1: check the launcher's arguments, or pass matching rank and ` +
      'worldSize options');
  }
  return { rank: r, size: s };
}

function resolveMaster(options: WorldOptions, r: EnvReader, multiHost: boolean):
  { masterAddr: string; masterPort: number } {
  let masterAddr: string;
  if (options.masterAddr !== undefined) {
    if (typeof options.masterAddr !== 'string' || options.masterAddr.trim() === '') {
      throw new NodecclTypeError('option masterAddr must be a host name or IP address such ' +
        `as '10.0.0.1', got ${describeValue(options.masterAddr)}`);
    }
    masterAddr = options.masterAddr.trim();
  } else {
    const env = r.get('MASTER_ADDR')?.trim();
    if (env === undefined && multiHost) {
      throw new NodecclError('ERR_NODECCL_INVALID_ARGUMENT', 'the ranks of this job run on ' +
        `more than one host but MASTER_ADDR is not set, so they cannot find rank 0's store ` +
        '(the default 127.0.0.1 only reaches this host); export MASTER_ADDR=<address of ' +
        "rank 0's host> to every rank, or pass the masterAddr option");
    }
    masterAddr = env ?? DEFAULT_MASTER_ADDR;
  }
  const port = optionInt(options.masterPort, 'masterPort', 1, 65535) ??
    r.int('MASTER_PORT', 1, 'set MASTER_PORT to a free TCP port from 1 to 65535, or unset it ' +
      `for the default ${DEFAULT_MASTER_PORT}`);
  if (port !== undefined && port.value > 65535) {
    throw new NodecclRangeError(`MASTER_PORT=${port.value} is not a TCP port (1 to 65535); ` +
      `set a free port such as ${DEFAULT_MASTER_PORT}, or unset it`);
  }
  return { masterAddr, masterPort: port?.value ?? DEFAULT_MASTER_PORT };
}

// Local rank and size: from the launcher when it says, else every rank on this host.
function resolveLocal(found: EnvWorld | undefined, rank: Named, size: Named):
  { localRank: number; localSize: number } {
  const fromEnv = found !== undefined && found.rank.value === rank.value &&
    found.size.value === size.value;
  const localSize = (fromEnv ? found.localSize : undefined) ?? size;
  const localRank = (fromEnv ? found.localRank : undefined) ??
    (localSize.value === size.value ? rank : { value: 0, from: 'default local rank' });
  if (localRank.value >= localSize.value || localSize.value > size.value) {
    throw new NodecclRangeError(`${describeNamed(localRank)} with ${describeNamed(localSize)} ` +
      `and ${describeNamed(size)} is inconsistent: the local rank must be below the local ` +
      'size, which cannot exceed the world size; check the launcher configuration');
  }
  return { localRank: localRank.value, localSize: localSize.value };
}

/**
 * Resolves this process's rank, world size, local rank and store address.
 *
 * Rank and size come from `options` when given, else from the first launcher whose variables
 * are set: `RANK`/`WORLD_SIZE`/`LOCAL_RANK`/`LOCAL_WORLD_SIZE` (nodeccl-run, torchrun), then
 * `OMPI_COMM_WORLD_RANK`/`_SIZE`/`_LOCAL_RANK`/`_LOCAL_SIZE` (Open MPI), then
 * `PMI_RANK`/`PMI_SIZE`/`MPI_LOCALRANKID`/`MPI_LOCALNRANKS` (MPICH, Intel MPI), then
 * `SLURM_PROCID`/`SLURM_NTASKS`/`SLURM_LOCALID` (inside an srun step only). With none of them
 * the world is this one process. The store is at `masterAddr`/`MASTER_ADDR` (default
 * 127.0.0.1) and `masterPort`/`MASTER_PORT` (default 29500).
 *
 * Other keys of `options` are ignored, so a caller may pass its whole options object.
 *
 * @param env - the environment to read (default `process.env`).
 * @throws NodecclRangeError naming the variable or option and its value when a value is not
 *   an integer, a rank is not below the size, or a port is outside 1..65535.
 * @throws NodecclError ERR_NODECCL_INVALID_ARGUMENT when the launcher reports ranks on more
 *   than one host and no master address is given (127.0.0.1 would not reach rank 0).
 */
export function resolveWorld(options: WorldOptions = {}, env: Env = process.env): WorldInfo {
  const reader = new EnvReader(env);
  let found: EnvWorld | undefined;
  for (const scheme of [TORCHRUN, OPENMPI, PMI, SLURM]) {
    found = readScheme(reader, scheme);
    if (found !== undefined) break;
  }
  const { rank, size } = resolveRankAndSize(options, found);
  const { localRank, localSize } = resolveLocal(found, rank, size);
  const multiHost = (found?.multiHost ?? false) || localSize < size.value;
  const { masterAddr, masterPort } = resolveMaster(options, reader, multiHost);
  const fromOptions = options.rank !== undefined && options.worldSize !== undefined;
  const source: WorldSource = fromOptions ? 'options' : found?.source ?? (
    options.rank !== undefined || options.worldSize !== undefined ? 'options' : 'default');
  return {
    rank: rank.value, size: size.value, localRank, localSize, masterAddr, masterPort, source,
    variables: Object.freeze({ ...reader.seen }),
  };
}

/**
 * Reads a duration in whole milliseconds from an environment variable such as
 * `NODECCL_TIMEOUT_MS` or `NODECCL_INIT_TIMEOUT_MS`; unset or empty gives `defaultMs`.
 *
 * @throws NodecclRangeError naming the variable and its value when it is not a whole number
 *   of milliseconds (>= 0).
 */
export function envMillis(name: string, defaultMs: number, env: Env = process.env): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return defaultMs;
  const value = /^\s*\+?\d+\s*$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(value)) {
    throw new NodecclRangeError(`${name}=${JSON.stringify(raw)} is not a whole number of ` +
      `milliseconds; set e.g. ${name}=60000, or unset it for the default (${defaultMs} ms)`);
  }
  return value;
}
