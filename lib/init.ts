// SPDX-License-Identifier: Apache-2.0
// init(): finds this process's place in the job (explicit options, then the variables set by
// nodeccl-run, torchrun, mpirun, MPICH/PMI or Slurm), starts the store on rank 0, and runs the
// rendezvous that connects every rank. One timeout, initTimeoutMs, bounds all of it. Under
// mpirun without a master address, MPI tells every rank where rank 0's store is (lib/mpi.ts).
import { Communicator, jobAlive } from './comm';
import { envMillis, resolveWorld, type WorldInfo } from './env';
import { checkOptions, describeValue } from './options';
import { native } from './native';
import { fromNative, NodecclError, NodecclRangeError, NodecclTypeError } from './errors';
import { log } from './log';
import { backendSetting, type Backend, mpiHeld, mpiRendezvous, mpiWorld, startedByMpi,
  wantsMpiRendezvous } from './mpi';
import { Store, StoreServer } from './store';

/** Options of init(); each overrides the matching environment variable. */
export interface InitOptions {
  /** This process's rank (else RANK, OMPI_COMM_WORLD_RANK, PMI_RANK, SLURM_PROCID). */
  rank?: number;
  /** The number of ranks (else WORLD_SIZE, OMPI_COMM_WORLD_SIZE, PMI_SIZE, SLURM_NTASKS). */
  worldSize?: number;
  /** Address of rank 0's store (else MASTER_ADDR, else 127.0.0.1). */
  masterAddr?: string;
  /** Port of rank 0's store (else MASTER_PORT, else 29500). */
  masterPort?: number;
  /** Default timeout of each operation (else NODECCL_TIMEOUT_MS, else 300000). */
  timeoutMs?: number;
  /** Bound on the whole of init (else NODECCL_INIT_TIMEOUT_MS, else 60000). */
  initTimeoutMs?: number;
  /** Address this rank listens on for its peers (else NODECCL_LISTEN_HOST, else derived). */
  listenHost?: string;
}

const INIT_KEYS = ['rank', 'worldSize', 'masterAddr', 'masterPort', 'timeoutMs',
  'initTimeoutMs', 'listenHost'] as const;

// An optional millisecond option: undefined, or a positive finite number.
function checkMillis(name: string, v: unknown): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number') {
    throw new NodecclTypeError(`init: option ${name} must be a number of milliseconds, got ` +
      describeValue(v));
  }
  if (!Number.isFinite(v) || v <= 0) {
    throw new NodecclRangeError(`init: option ${name} = ${v} must be a positive finite ` +
      'number of milliseconds');
  }
  return v;
}

/**
 * Joins the job and resolves to its communicator once every rank has arrived.
 * @throws NodecclRangeError for invalid ranks, sizes or ports (naming the variable);
 *   NodecclError ERR_NODECCL_IO when rank 0 cannot listen on the master port,
 *   ERR_NODECCL_TIMEOUT naming the ranks that never arrived.
 */
export async function init(options: InitOptions = {}): Promise<Communicator> {
  checkOptions('init', options, INIT_KEYS);
  // Under mpirun with no master address the store's address comes from MPI (lib/mpi.ts);
  // until then resolveWorld's loopback default stands in for it.
  const viaMpi = wantsMpiRendezvous(options.masterAddr);
  const world = resolveWorld(viaMpi ? { ...options, masterAddr: '127.0.0.1' } : options);
  const setting = backendSetting();
  const timeoutMs = checkMillis('timeoutMs', options.timeoutMs) ??
    envMillis('NODECCL_TIMEOUT_MS', 300_000);
  const initTimeoutMs = checkMillis('initTimeoutMs', options.initTimeoutMs) ??
    envMillis('NODECCL_INIT_TIMEOUT_MS', 60_000);
  const deadline = Date.now() + initTimeoutMs;
  log('info', 'init', world.rank, world.size, () => `world from ${world.source}: ` +
    Object.entries(world.variables).map(([k, v]) => `${k}=${v}`).join(' ') +
    ` -> rank ${world.rank} of ${world.size}, store ` +
    (viaMpi ? 'from the MPI rendezvous' : `${world.masterAddr}:${world.masterPort}`) +
    `, NODECCL_BACKEND=${setting}, ` +
    `timeoutMs ${timeoutMs}, initTimeoutMs ${initTimeoutMs}` +
    (process.env.NODECCL_TRANSPORT ? `, NODECCL_TRANSPORT=${process.env.NODECCL_TRANSPORT}` : '') +
    (process.env.NODECCL_LISTEN_HOST ? `, NODECCL_LISTEN_HOST=${process.env.NODECCL_LISTEN_HOST}`
      : ''));
  const remaining = () => Math.max(1, deadline - Date.now());

  // A second init() of the same rank of the same job would take that rank again (and fail the
  // first communicator when it failed).
  if (!viaMpi && world.size > 1 && jobAlive(world.masterAddr, world.masterPort, world.rank)) {
    throw new NodecclError('ERR_NODECCL_INVALID_ARGUMENT', `rank ${world.rank}: init() was ` +
      `already called in this process for this rank of the job at ${world.masterAddr}:` +
      `${world.masterPort}, and its communicator is alive: use it (split() or group() make ` +
      'sub-communicators), or destroy() it before calling init() again');
  }
  // Rank 0 serves the store. A world of one takes any free port so that two single-process
  // programs on one machine do not collide. Under mpirun without a master address, rank 0
  // takes a free port and MPI broadcasts the address.
  // The backend first: a second MPI communicator is refused here, by every rank alike, before
  // any rank starts a store or a broadcast that the others would then wait for in vain.
  const backend = await chooseBackend(setting, world);
  if (backend === 'mpi' && mpiHeld()) {
    // LIMITATION: see backend/mpi/mpi_collectives.cc (attachBackend): one MPI communicator at once.
    throw new NodecclRangeError(`LIMITATION: rank ${world.rank}: another communicator of this ` +
      'process already runs on MPI (NODECCL_BACKEND=mpi); destroy() it first, or use ' +
      'NODECCL_BACKEND=native for this one');
  }
  let server: StoreServer | null = null;
  let host = world.masterAddr;
  let port = world.masterPort;
  const where = {
    backend,
    storeHost: host,
    storePort: port,
    prefix: 'nodeccl/world',
    listenHost: options.listenHost ?? process.env.NODECCL_LISTEN_HOST ?? '',
    transport: process.env.NODECCL_TRANSPORT ?? 'auto',
  };
  // A bad option or NODECCL_* value fails here, before the store, on every rank alike: a rank
  // that found it only after connecting would leave the others waiting out their init timeout
  // for a store server that rank 0, failing the same check, had stopped.
  try {
    native().checkCommunicatorOptions({ rank: world.rank, size: world.size, ...where,
      initTimeoutMs: remaining(), timeoutMs });
  } catch (e) {
    throw fromNative(e);
  }
  if (viaMpi) {
    ({ host, port, server } = await mpiRendezvous(world, remaining()));
  } else if (world.rank === 0) {
    server = StoreServer.start({ host, port: world.size === 1 ? 0 : port });
    port = server.port;
  }
  let store: Store | null = null;
  try {
    store = await Store.connect({ host, port, timeoutMs: remaining() });
    where.storeHost = host;
    where.storePort = port;
    const nativeComm = await native().createCommunicator({
      rank: world.rank,
      size: world.size,
      ...where,
      initTimeoutMs: remaining(),
      timeoutMs,
    }).catch((e: unknown) => { throw fromNative(e); });
    // `where` lets split() and group() make sub-communicators through the same store.
    return new Communicator(nativeComm, store, server, timeoutMs, where);
  } catch (e) {
    store?.close();
    server?.stop();
    if (e instanceof NodecclError && e.code === 'ERR_NODECCL_TIMEOUT') {
      e.message += ` (rank ${world.rank} of ${world.size}, store ${host}:${port}, ` +
        `init timeout ${initTimeoutMs} ms from ${world.source})`;
    }
    throw e;
  }
}

// NODECCL_BACKEND: mpi needs MPI (an error names what is missing); auto takes mpi when mpirun
// started the job and libmpi loads, else native; native never touches MPI.
async function chooseBackend(setting: 'auto' | Backend, world: WorldInfo): Promise<Backend> {
  let backend: Backend = 'native';
  if (setting === 'mpi') {
    await mpiWorld(world);
    backend = 'mpi';
  } else if (setting === 'auto' && startedByMpi()) {
    try {
      await mpiWorld(world);
      backend = 'mpi';
    } catch (e) {
      log('info', 'init', world.rank, world.size, () => 'NODECCL_BACKEND=auto: MPI is not ' +
        `usable (${e instanceof Error ? e.message : String(e)}); using the native backend`);
    }
  }
  log('info', 'init', world.rank, world.size, () => `backend ${backend} (NODECCL_BACKEND=` +
    `${setting})`);
  return backend;
}
