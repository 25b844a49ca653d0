// SPDX-License-Identifier: Apache-2.0
// init() under mpirun: the choice of backend (NODECCL_BACKEND), and the MPI rendezvous that
// needs no master address: rank 0 starts the store on a free port and MPI_Bcast gives every
// rank its address and, when NODECCL_TOKEN is unset, a job token rank 0 generated.
import { randomBytes } from 'node:crypto';
import * as os from 'node:os';
import { detectLauncher, type WorldInfo } from './env';
import { fromNative, NodecclError, NodecclRangeError } from './errors';
import { log } from './log';
import { native, type NativeMpiWorld } from './native';
import { StoreServer } from './store';

type Env = Readonly<Record<string, string | undefined>>;

/** What carries the collectives: nodeccl's own transports, or the MPI library. */
export type Backend = 'native' | 'mpi';

// Communicators of this process on the MPI backend (at most one: see init()).
let mpiComms = 0;
/** Whether a communicator of this process runs on MPI now. */
export function mpiHeld(): boolean {
  return mpiComms > 0;
}
/** Counts an MPI communicator in (+1, at creation) or out (-1, at destroy). */
export function noteMpiComm(delta: 1 | -1): void {
  mpiComms = Math.max(0, mpiComms + delta);
}

/** NODECCL_BACKEND as written: auto, native (the default) or mpi. */
export function backendSetting(env: Env = process.env): 'auto' | Backend {
  const raw = (env.NODECCL_BACKEND ?? '').trim();
  if (raw === '') return 'native';
  if (raw === 'auto' || raw === 'native' || raw === 'mpi') return raw;
  throw new NodecclRangeError(`NODECCL_BACKEND=${JSON.stringify(raw)} is not a backend; set ` +
    'auto, native or mpi, or unset it for native');
}

/** True when mpirun (Open MPI) or a PMI launcher (MPICH's Hydra) started this process. */
export function startedByMpi(env: Env = process.env): boolean {
  const launcher = detectLauncher(env);
  return launcher === 'openmpi' || launcher === 'pmi';
}

/**
 * True when init() should find rank 0's store through MPI: started by mpirun and given no
 * master address (neither the masterAddr option nor MASTER_ADDR).
 */
export function wantsMpiRendezvous(masterAddr: unknown, env: Env = process.env): boolean {
  return startedByMpi(env) && masterAddr === undefined && (env.MASTER_ADDR ?? '').trim() === '';
}

/**
 * MPI_Init (once per process) and a check that MPI numbers this process as nodeccl does.
 * @throws NodecclError ERR_NODECCL_INVALID_ARGUMENT when libmpi is missing (naming what to
 *   install) or MPI's rank or size differs from `world`'s.
 */
export async function mpiWorld(world: WorldInfo): Promise<NativeMpiWorld> {
  const m = await native().mpiInit().catch((e: unknown) => { throw fromNative(e); });
  if (m.rank !== world.rank || m.size !== world.size) {
    throw new NodecclError('ERR_NODECCL_INVALID_ARGUMENT', `rank ${world.rank} of ${world.size}` +
      ` (from ${world.source}) but MPI_COMM_WORLD has this process as rank ${m.rank} of ` +
      `${m.size}; do not pass rank/worldSize options that differ from mpirun's`);
  }
  return m;
}

// The address rank 0's store listens on: loopback when every rank is on this host, else the
// IPv4 address of NODECCL_SOCKET_IFNAME's interface, else of the first interface that is not
// loopback, else the hostname.
export function mpiStoreHost(world: WorldInfo, env: Env = process.env): string {
  if (world.localSize === world.size) return '127.0.0.1';
  const ifaces = os.networkInterfaces();
  const ifname = (env.NODECCL_SOCKET_IFNAME ?? '').trim();
  if (ifname !== '') {
    const a = (ifaces[ifname] ?? []).find((i) => i.family === 'IPv4');
    if (a === undefined) {
      throw new NodecclError('ERR_NODECCL_INVALID_ARGUMENT', `NODECCL_SOCKET_IFNAME=${ifname}: ` +
        `no such interface with an IPv4 address on rank 0 (${os.hostname()}); interfaces: ` +
        `${Object.keys(ifaces).join(', ')}`);
    }
    return a.address;
  }
  for (const list of Object.values(ifaces)) {
    const a = (list ?? []).find((i) => i.family === 'IPv4' && !i.internal);
    if (a !== undefined) return a.address;
  }
  return os.hostname();
}

/** What the MPI rendezvous found: the store's address, and rank 0's server. */
export interface MpiRendezvous {
  host: string;
  port: number;
  server: StoreServer | null;
}

/**
 * Rank 0 starts the store on a free port and broadcasts `host port token` with MPI; every
 * rank returns the address. A job token rank 0 generated (NODECCL_TOKEN unset) is put in
 * NODECCL_TOKEN on every rank, so the store, the transports and sub-communicators use it.
 */
export async function mpiRendezvous(world: WorldInfo, timeoutMs: number): Promise<MpiRendezvous> {
  await mpiWorld(world);
  let server: StoreServer | null = null;
  let text = '';
  let failure: unknown;
  if (world.rank === 0) {
    // A failure here is broadcast too, so the other ranks fail at once instead of timing out.
    try {
      const token = (process.env.NODECCL_TOKEN ?? '') === '' ? randomBytes(32).toString('hex')
        : '';
      if (token !== '') process.env.NODECCL_TOKEN = token;
      const host = mpiStoreHost(world);
      server = StoreServer.start({ host, port: 0 });
      text = JSON.stringify({ host, port: server.port, token });
    } catch (e) {
      failure = e;
      text = JSON.stringify({ error: e instanceof Error ? e.message : String(e) });
    }
  }
  try {
    const got = JSON.parse(await native().mpiBroadcast(text, 0, timeoutMs)
      .catch((e: unknown) => { throw fromNative(e); })) as { host: string; port: number;
      token: string; error?: string };
    if (failure !== undefined) throw failure;
    if (got.error !== undefined) {
      throw new NodecclError('ERR_NODECCL_IO', `rank ${world.rank}: rank 0 could not start ` +
        `the store for the MPI rendezvous: ${got.error}`);
    }
    if (got.token !== '') process.env.NODECCL_TOKEN = got.token;
    log('info', 'init', world.rank, world.size, () => `MPI rendezvous: store ` +
      `${got.host}:${got.port} from rank 0 by MPI_Bcast` +
      (got.token !== '' ? ', job token generated by rank 0' : ''));
    return { host: got.host, port: got.port, server };
  } catch (e) {
    server?.stop();
    throw e;
  }
}
