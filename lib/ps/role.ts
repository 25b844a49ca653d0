// SPDX-License-Identifier: Apache-2.0
// A parameter-server job's roles, read from the environment `nodeccl-run --servers S -np N`
// sets: NODECCL_ROLE=server|worker, NODECCL_NUM_SERVERS, NODECCL_SERVER_RANK (servers),
// NODECCL_NUM_WORKERS, RANK/WORLD_SIZE (workers, as in any job) and the address of the
// parameter servers' own store, NODECCL_PS_ADDR/NODECCL_PS_PORT (served by server 0).
import { hostname } from 'node:os';
import { DEFAULT_MASTER_ADDR, DEFAULT_MASTER_PORT } from '../env';
import { NodecclRangeError } from '../errors';

/** This process's place in a parameter-server job. */
export interface PSRole {
  role: 'server' | 'worker';
  /** 0..numServers-1 on a server, -1 on a worker. */
  serverRank: number;
  numServers: number;
  /** 0..numWorkers-1 on a worker, -1 on a server. */
  workerRank: number;
  numWorkers: number;
  /** The store that servers and workers exchange addresses through (server 0 serves it). */
  storeHost: string;
  storePort: number;
}

type Env = Readonly<Record<string, string | undefined>>;

function intVar(env: Env, name: string, min: number, fallback?: string): number {
  const raw = env[name] ?? fallback;
  const n = raw !== undefined && /^\s*\d+\s*$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n) || n < min) {
    throw new NodecclRangeError(`parameter server: ${name}=${JSON.stringify(raw ?? null)} must ` +
      `be an integer >= ${min}; start the job with nodeccl-run --servers S -np N, or set ` +
      `NODECCL_ROLE, NODECCL_NUM_SERVERS, NODECCL_NUM_WORKERS and ${name} yourself`);
  }
  return n;
}

/** Whether this process was started as part of a parameter-server job. */
export function isPSJob(env: Env = process.env): boolean {
  return env.NODECCL_ROLE === 'server' || env.NODECCL_ROLE === 'worker';
}

/**
 * Reads this process's role. The store's port is NODECCL_PS_PORT, else MASTER_PORT + 1 (so
 * that workers can also run init() on MASTER_PORT for collectives among themselves).
 * @throws NodecclRangeError naming a missing or malformed variable.
 */
export function psRole(env: Env = process.env): PSRole {
  const role = env.NODECCL_ROLE;
  if (role !== 'server' && role !== 'worker') {
    throw new NodecclRangeError(`parameter server: NODECCL_ROLE=${JSON.stringify(role ?? null)}` +
      " must be 'server' or 'worker'; start the job with nodeccl-run --servers S -np N");
  }
  const numServers = intVar(env, 'NODECCL_NUM_SERVERS', 1);
  const numWorkers = intVar(env, 'NODECCL_NUM_WORKERS', 1, env.WORLD_SIZE);
  const masterPort = intVar(env, 'MASTER_PORT', 1, String(DEFAULT_MASTER_PORT));
  const storePort = intVar(env, 'NODECCL_PS_PORT', 1, String(masterPort + 1));
  const storeHost = env.NODECCL_PS_ADDR ?? env.MASTER_ADDR ?? DEFAULT_MASTER_ADDR;
  const serverRank = role === 'server' ? intVar(env, 'NODECCL_SERVER_RANK', 0) : -1;
  const workerRank = role === 'worker' ? intVar(env, 'RANK', 0) : -1;
  if (serverRank >= numServers || workerRank >= numWorkers || storePort > 65535) {
    throw new NodecclRangeError(`parameter server: server rank ${serverRank} of ${numServers}, ` +
      `worker rank ${workerRank} of ${numWorkers}, store port ${storePort}: a rank must be ` +
      'below its count and a port at most 65535');
  }
  return { role, serverRank, numServers, workerRank, numWorkers, storeHost, storePort };
}

/**
 * The address a server or worker listens on and the one it publishes: NODECCL_LISTEN_HOST when
 * set; else loopback when the store is on loopback (a one-host job), else every interface,
 * published as this host's name.
 */
export function listenAddress(storeHost: string, env: Env = process.env):
    { bind: string; publish: string } {
  const given = env.NODECCL_LISTEN_HOST;
  if (given !== undefined && given !== '') return { bind: given, publish: given };
  const loopback = storeHost === 'localhost' || storeHost.startsWith('127.') ||
    storeHost === '::1';
  return loopback ? { bind: '127.0.0.1', publish: '127.0.0.1' }
    : { bind: '0.0.0.0', publish: hostname() };
}
