// SPDX-License-Identifier: Apache-2.0
// A parameter-server worker: declares the model's parameters, pushes gradients and pulls
// parameters. Pulled shards are read from the socket straight into the caller's Float32Arrays
// and pushed ones written from them; nothing is staged. Operations run one at a time, in call
// order, each bounded by timeoutMs; the loss of any server fails them all with its name.
//
// Cost per push or pull of a model of B bytes: B bytes over S connections (B/S each when the
// keys are split), one frame per server each way.
import type * as net from 'node:net';
import { envMillis } from '../env';
import {
  NodecclError, NodecclRangeError, NodecclTypeError, type NodecclErrorCode,
} from '../errors';
import { log } from '../log';
import { checkOptions } from '../options';
import { Store } from '../store';
import { bytesOf, FrameReader, type Meta, writeFrame } from './frame';
import { dial, listenForIdents, serverKey, withTimeout, workerKey } from './link';
import { listenAddress, type PSRole, psRole } from './role';
import { type KeySpec, planShards, type Shard, type ShardPlan } from './shard';

/** A model as the workers see it: parameter name to values. */
export type ParamMap = Record<string, Float32Array>;

/** Options of {@link PSWorker.connect}. */
export interface PSWorkerOptions {
  /** The parameters, in a fixed order; worker 0's values initialize the servers. */
  params: ParamMap;
  /** Bound on each operation and on connecting: NODECCL_TIMEOUT_MS, else 300000. */
  timeoutMs?: number;
  /** Read pulled parameters with Node's onread straight into place (default true). */
  zeroCopy?: boolean;
  /** The role, else from the environment (see psRole). */
  role?: PSRole;
}

/** One pulled shard: where it lies and the server's version of it. */
export interface ShardVersion {
  key: string;
  server: number;
  offset: number;
  length: number;
  /** Updates applied to this shard when it was sent. */
  version: number;
}

/** What pull() resolves to. */
export interface PullResult {
  shards: ShardVersion[];
  /** The oldest and newest shard versions received. */
  minVersion: number;
  maxVersion: number;
}

/** What push() resolves to: each server's version after applying the gradient. */
export interface PushResult {
  versions: number[];
}

interface Pending {
  resolve: (meta: Meta) => void;
  reject: (e: Error) => void;
  views?: Uint8Array[]; // where a 'params' reply goes
}

/** A server as one worker sees it. */
interface ServerLink {
  rank: number;
  addr: string;
  up?: net.Socket; // we write (dialed by the server)
  down?: net.Socket; // we read (dialed by us)
  clock: number; // sync: the server's open step; async: our pushes
  pending: Map<number, Pending>;
  welcome?: (meta: Meta) => void;
  upDone?: () => void;
  downClosed?: Promise<void>;
}

const OPTION_KEYS = ['params', 'timeoutMs', 'zeroCopy', 'role'] as const;

function checkParams(who: string, params: unknown, keys?: readonly KeySpec[]): KeySpec[] {
  if (typeof params !== 'object' || params === null) {
    throw new NodecclTypeError(`${who}: params must be an object of name → Float32Array`);
  }
  const entries = Object.entries(params as Record<string, unknown>);
  for (const [key, v] of entries) {
    if (!(v instanceof Float32Array)) {
      throw new NodecclTypeError(`${who}: params['${key}'] must be a Float32Array`);
    }
  }
  const specs = entries.map(([key, v]) => ({ key, length: (v as Float32Array).length }));
  if (keys !== undefined && JSON.stringify(specs) !== JSON.stringify(keys)) {
    throw new NodecclRangeError(`${who}: the arrays must have the names, order and lengths ` +
      `declared at connect (${keys.map((k) => `${k.key}[${k.length}]`).join(', ')}), got ` +
      `${specs.map((k) => `${k.key}[${k.length}]`).join(', ')}`);
  }
  if (specs.length === 0) throw new NodecclRangeError(`${who}: params is empty`);
  return specs;
}

/** A worker of a parameter-server job. */
export class PSWorker {
  readonly rank: number;
  readonly numWorkers: number;
  readonly numServers: number;
  /** Set from the servers' welcome. */
  mode: 'sync' | 'async' = 'sync';
  staleness = -1;
  /** Whether the servers started from a checkpoint (pull before training then). */
  restored = false;
  readonly plan: ShardPlan;
  private readonly servers: ServerLink[];
  private chain: Promise<unknown> = Promise.resolve();
  private nextId = 1;
  private error: Error | null = null;
  private closing = false;
  private listener?: net.Server;
  private store?: Store;

  private constructor(private readonly role: PSRole, private readonly params: ParamMap,
                      private readonly timeoutMs: number) {
    this.rank = role.workerRank;
    this.numWorkers = role.numWorkers;
    this.numServers = role.numServers;
    this.plan = planShards(checkParams('PSWorker.connect', params), role.numServers);
    this.servers = Array.from({ length: role.numServers }, (_, rank) => ({
      rank, addr: '', clock: 0, pending: new Map(),
    }));
  }

  /**
   * Joins the job: connects to every server, declares the parameters (worker 0 also sends
   * their initial values) and resolves once every server has welcomed it.
   * @throws NodecclError ERR_NODECCL_TIMEOUT naming the server not reached in time,
   *   ERR_NODECCL_MISMATCH when workers declare different parameters.
   */
  static async connect(options: PSWorkerOptions): Promise<PSWorker> {
    checkOptions('PSWorker.connect', options, OPTION_KEYS);
    const role = options.role ?? psRole();
    if (role.role !== 'worker') {
      throw new NodecclRangeError("PSWorker.connect: this process's role is 'server'; " +
        'call PSServer.start() in servers');
    }
    const timeoutMs = options.timeoutMs ?? envMillis('NODECCL_TIMEOUT_MS', 300_000);
    const worker = new PSWorker(role, options.params, timeoutMs);
    try {
      await worker.join(options.zeroCopy ?? true);
    } catch (e) {
      worker.shutdown();
      throw e;
    }
    return worker;
  }

  private async join(zeroCopy: boolean): Promise<void> {
    const { role } = this;
    const deadline = Date.now() + this.timeoutMs;
    const left = () => Math.max(1, deadline - Date.now());
    this.store = await Store.connect({ host: role.storeHost, port: role.storePort,
      timeoutMs: left() });
    const ups = this.servers.map((s) => new Promise<void>((resolve) => { s.upDone = resolve; }));
    const { bind, publish } = listenAddress(role.storeHost);
    const { server, port } = await listenForIdents(bind, (meta, socket) => {
      const s = this.servers[meta.server as number];
      if (s === undefined || s.up !== undefined) {
        socket.destroy();
        return;
      }
      s.up = socket;
      socket.on('close', () => this.lost(s, 'its request connection closed'));
      s.upDone?.();
    });
    this.listener = server;
    await this.store.set(workerKey(this.rank), `${publish}:${port}`);

    // Dial each server (our reading side), wait for its dial back, then say hello.
    const welcomes = this.servers.map(async (s) => {
      s.addr = await this.store!.getString(serverKey(s.rank), { timeoutMs: left() });
      s.down = await dial(s.addr, this.readerFor(s), zeroCopy, left(), `server ${s.rank}`);
      const down = s.down;
      s.downClosed = new Promise((resolve) => down.on('close', () => {
        resolve();
        this.lost(s, 'its reply connection closed');
      }));
      s.down.on('error', () => undefined);
      const welcome = new Promise<Meta>((resolve) => { s.welcome = resolve; });
      await writeFrame(s.down, { t: 'ident', worker: this.rank });
      await withTimeout(ups[s.rank], left(), () => `worker ${this.rank}: server ${s.rank} ` +
        `(${s.addr}) never connected back`);
      const init = this.rank === 0 ? this.views(this.params, s.rank) : [];
      await writeFrame(s.up!, { t: 'hello', worker: this.rank, keys: this.plan.keys }, init);
      return withTimeout(welcome, left(), () => `worker ${this.rank}: server ${s.rank} ` +
        `(${s.addr}) did not welcome it; are all ${this.numWorkers} workers running?`);
    });
    const metas = await Promise.all(welcomes);
    if (this.error !== null) throw this.error;
    this.mode = metas[0].mode as 'sync' | 'async';
    this.staleness = metas[0].staleness as number;
    this.restored = metas.some((m) => m.restored === true);
    metas.forEach((m, i) => {
      this.servers[i].clock = this.mode === 'sync' ? m.version as number : 0;
    });
    this.store.close();
    log('info', 'ps', this.rank, this.numWorkers, () => `worker ${this.rank} joined ` +
      `${this.numServers} servers, mode ${this.mode}, staleness ${this.staleness}`);
  }

  // ---- the operations --------------------------------------------------------------------

  /**
   * Sends `grads` (same names and lengths as the parameters) to the servers. In sync mode it
   * resolves once the step that averages every live worker's gradient has been applied; in
   * async mode once this gradient has been applied and this worker is no more than
   * `staleness` pushes ahead of the slowest live worker. `grads` must not change before then.
   */
  push(grads: ParamMap): Promise<PushResult> {
    checkParams('push', grads, this.plan.keys);
    return this.serial(async () => {
      const acks = await this.all('push', (s, id) => writeFrame(s.up!,
        { t: 'push', id, clock: s.clock }, this.views(grads, s.rank)));
      this.servers.forEach((s, i) => {
        s.clock = this.mode === 'sync' ? acks[i].version as number : s.clock + 1;
      });
      return { versions: acks.map((a) => a.version as number) };
    });
  }

  /**
   * Reads the current parameters straight into `into` (default: the arrays given at connect)
   * and resolves with each shard's version.
   */
  pull(into: ParamMap = this.params): Promise<PullResult> {
    checkParams('pull', into, this.plan.keys);
    return this.serial(async () => {
      const replies = await this.all('pull', (s, id) => writeFrame(s.up!, { t: 'pull', id }),
        (s) => this.views(into, s.rank));
      const shards: ShardVersion[] = [];
      replies.forEach((r, s) => this.plan.byServer[s].forEach((i, k) => {
        const { key, offset, length } = this.plan.shards[i];
        shards.push({ key, server: s, offset, length, version: (r.versions as number[])[k] });
      }));
      const v = shards.map((x) => x.version);
      return { shards, minVersion: Math.min(...v), maxVersion: Math.max(...v) };
    });
  }

  /**
   * Says goodbye to every server (they carry on without us) and closes the connections once
   * each server has closed its side (so none mistakes the goodbye for a crash).
   */
  async close(): Promise<void> {
    await this.chain.catch(() => undefined);
    const wasClosing = this.closing;
    this.closing = true;
    if (this.error === null && !wasClosing) {
      await Promise.all(this.servers.map(async (s) => {
        await writeFrame(s.up!, { t: 'bye' }).catch(() => undefined);
        await withTimeout(s.downClosed!, Math.min(this.timeoutMs, 5000), () => '')
          .catch(() => undefined);
      }));
    }
    this.shutdown();
  }

  // ---- plumbing ----------------------------------------------------------------------------

  /** Byte views of `arrays` for the shards of server `s`, in plan order. */
  private views(arrays: ParamMap, s: number): Uint8Array[] {
    return this.plan.byServer[s].map((i) => {
      const sh: Shard = this.plan.shards[i];
      return bytesOf(arrays[sh.key], sh.offset, sh.length);
    });
  }

  // Runs `op` after every earlier operation; the first failure fails all later ones.
  private serial<T>(op: () => Promise<T>): Promise<T> {
    const run = async () => {
      if (this.error !== null) throw this.error;
      if (this.closing) {
        throw new NodecclError('ERR_NODECCL_DESTROYED', `worker ${this.rank}: close() was ` +
          'called; connect a new PSWorker');
      }
      return op();
    };
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => undefined);
    return p;
  }

  // Sends one request to every server and waits for every reply, within timeoutMs.
  private async all(what: string, send: (s: ServerLink, id: number) => Promise<void>,
                    views?: (s: ServerLink) => Uint8Array[]): Promise<Meta[]> {
    const id = this.nextId++;
    const replies = this.servers.map((s) => new Promise<Meta>((resolve, reject) => {
      s.pending.set(id, { resolve, reject, views: views?.(s) });
    }));
    await Promise.all(this.servers.map((s) => send(s, id).catch((e: Error) =>
      this.lost(s, `sending failed: ${e.message}`))));
    try {
      return await withTimeout(Promise.all(replies), this.timeoutMs, () => `worker ` +
        `${this.rank}: ${what} #${id} got no answer from servers ` +
        `${this.servers.filter((s) => s.pending.has(id)).map((s) => s.rank).join(', ')}`);
    } catch (e) {
      this.fail(e as Error);
      throw this.error;
    }
  }

  private readerFor(s: ServerLink): FrameReader {
    const place = (meta: Meta) => (meta.t === 'params'
      ? s.pending.get(meta.id as number)?.views ?? null : null);
    return new FrameReader(place, (meta) => {
      if (meta.t === 'welcome') {
        s.welcome?.(meta);
      } else if (meta.t === 'error') {
        const e = new NodecclError(meta.code as NodecclErrorCode, String(meta.message));
        const p = s.pending.get(meta.id as number);
        if (p !== undefined && meta.id !== undefined) p.reject(e);
        else this.fail(e);
      } else {
        const p = s.pending.get(meta.id as number);
        s.pending.delete(meta.id as number);
        p?.resolve(meta);
      }
    });
  }

  private lost(s: ServerLink, why: string): void {
    if (this.closing) return;
    this.fail(new NodecclError('ERR_NODECCL_PEER_LOST', `worker ${this.rank}: lost parameter ` +
      `server ${s.rank} (${s.addr}): ${why}. The server process died or was stopped; the job ` +
      'cannot continue without it: restart it from its last checkpoint'));
  }

  // Records the first error and rejects everything pending with it.
  private fail(e: Error): void {
    this.error ??= e;
    for (const s of this.servers) {
      for (const p of s.pending.values()) p.reject(this.error);
      s.pending.clear();
      s.welcome?.({ t: 'error' });
    }
    this.shutdown();
  }

  private shutdown(): void {
    this.closing = this.closing || this.error !== null;
    for (const s of this.servers) {
      s.up?.destroy();
      s.down?.destroy();
    }
    this.listener?.close();
    this.store?.close();
  }
}
