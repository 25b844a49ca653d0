// SPDX-License-Identifier: Apache-2.0
// A parameter server: holds its shards of the model, receives workers' gradients straight into
// per-worker buffers, and applies them with a fused optimizer, synchronously (one averaged
// step once every live worker has pushed, as all-reduce training does) or asynchronously
// (each gradient applied as it comes, a worker more than `staleness` pushes ahead of the
// slowest live one held back). Server 0 also serves the job's store for the address exchange.
//
// Cost per step on a server with shard bytes B and W workers: W·B received, W·B sent for
// pulls, (W−1)·B/4 float adds to aggregate in sync mode, one fused optimizer call.
import type * as net from 'node:net';
import { envMillis } from '../env';
import { NodecclError, NodecclRangeError } from '../errors';
import { log } from '../log';
import { Adam, type Optimizer, type OptimizerStateDict } from '../optim';
import { checkOptions } from '../options';
import { Store, StoreServer } from '../store';
import { readCheckpoint, writeCheckpoint } from './checkpoint';
import { bytesOf, FrameReader, type Meta, writeFrame } from './frame';
import { dial, listenForIdents, serverKey, withTimeout, workerKey } from './link';
import { listenAddress, type PSRole, psRole } from './role';
import { type KeySpec, planShards, type ShardPlan } from './shard';

/** Options of {@link PSServer.start}. */
export interface PSServerOptions {
  /** Builds the optimizer over this server's shard arrays. Default: Adam, lr 1e-3. */
  optimizer?: (params: Float32Array[]) => Optimizer;
  /** 'sync' (default): averaged steps, equal to all-reduce training. 'async': no barrier. */
  mode?: 'sync' | 'async';
  /** Async only: how many pushes a worker may be ahead of the slowest. Default: unbounded. */
  staleness?: number;
  /** A checkpoint file: restored from at start if it exists, written atomically. */
  checkpoint?: string;
  /** Also write the checkpoint every this many versions (0: only at the end). Default 0. */
  checkpointEvery?: number;
  /** Bound on every wait: registration, a step or a held push. NODECCL_TIMEOUT_MS, 300000. */
  timeoutMs?: number;
  /** Read gradients with Node's onread straight into place (default true). */
  zeroCopy?: boolean;
  /** The role, else from the environment (see psRole). */
  role?: PSRole;
}

/** What a server reports when every worker has gone. */
export interface PSServerSummary {
  serverRank: number;
  /** Updates applied to this server's shards (including those before a restore). */
  version: number;
  /** Workers that said goodbye, and workers whose connection closed without one. */
  workersLeft: number[];
  workersLost: number[];
  /** Whether the state at start came from the checkpoint. */
  restored: boolean;
}

const OPTION_KEYS = ['optimizer', 'mode', 'staleness', 'checkpoint', 'checkpointEvery',
  'timeoutMs', 'zeroCopy', 'role'] as const;

/** One worker as this server sees it. */
interface WorkerLink {
  rank: number;
  up?: net.Socket; // we read its pushes and requests (dialed by us)
  down?: net.Socket; // we write replies (dialed by it)
  hello?: Meta;
  helloDone?: () => void;
  downDone?: () => void;
  gone: 'no' | 'left' | 'lost';
  clock: number; // pushes applied (async) or received for the open step (sync)
  pushed: boolean; // sync: contributed to the open step
  held: { id: number; since: number } | null; // a push whose ack waits
  recv: Float32Array[]; // its last gradient, one array per shard of ours
  snapshot: Float32Array[]; // async pulls are sent from a copy: updates may run meanwhile
}

/** A parameter server process's state and event handlers. One per process. */
export class PSServer {
  readonly rank: number;
  readonly mode: 'sync' | 'async';
  /** Async bound; -1 when unbounded. */
  readonly staleness: number;
  private plan!: ShardPlan;
  private mine: number[] = []; // indices of our shards in the plan
  private params: Float32Array[] = [];
  private agg: Float32Array[] = [];
  private opt!: Optimizer;
  private version = 0;
  private restored = false;
  private readonly workers: WorkerLink[];
  private stepTimer: NodeJS.Timeout | undefined;
  private finish!: (s: PSServerSummary) => void;
  private failFinish!: (e: Error) => void;
  private setupFailed: (e: Error) => void = () => undefined;
  private listener?: net.Server;
  private store?: Store;
  private storeServer?: StoreServer;
  /** Resolves once every worker has left or been lost (after the final checkpoint). */
  readonly finished: Promise<PSServerSummary>;

  private constructor(private readonly role: PSRole, private readonly opts: PSServerOptions,
                      private readonly timeoutMs: number) {
    this.rank = role.serverRank;
    this.mode = opts.mode ?? 'sync';
    this.staleness = opts.staleness ?? -1;
    this.workers = Array.from({ length: role.numWorkers }, (_, rank) => ({
      rank, gone: 'no', clock: 0, pushed: false, held: null, recv: [], snapshot: [],
    }));
    this.finished = new Promise((resolve, reject) => {
      this.finish = resolve;
      this.failFinish = reject;
    });
  }

  /**
   * Starts serving: publishes this server's address, connects to every worker, and resolves
   * once all of them have declared the same parameters and the model is initialized (from
   * the checkpoint if there is one, else from worker 0's values).
   * @throws NodecclError ERR_NODECCL_TIMEOUT naming the workers that never came,
   *   ERR_NODECCL_MISMATCH when workers declare different parameters or a checkpoint does not
   *   fit them; NodecclRangeError for a bad option.
   */
  static async start(options: PSServerOptions = {}): Promise<PSServer> {
    checkOptions('PSServer.start', options, OPTION_KEYS);
    const role = options.role ?? psRole();
    if (role.role !== 'server') {
      throw new NodecclRangeError("PSServer.start: this process's role is 'worker'; " +
        'call PSWorker.connect() in workers');
    }
    if (options.mode !== undefined && options.mode !== 'sync' && options.mode !== 'async') {
      throw new NodecclRangeError(`PSServer.start: mode must be 'sync' or 'async', got ` +
        `${JSON.stringify(options.mode)}`);
    }
    const k = options.staleness;
    if (k !== undefined && (!Number.isSafeInteger(k) || k < 0 || options.mode !== 'async')) {
      throw new NodecclRangeError(`PSServer.start: staleness (${k}) must be a whole number ` +
        ">= 0, given with mode 'async' (sync mode has no staleness)");
    }
    const timeoutMs = options.timeoutMs ?? envMillis('NODECCL_TIMEOUT_MS', 300_000);
    const server = new PSServer(role, options, timeoutMs);
    try {
      await server.connect();
    } catch (e) {
      server.shutdown();
      throw e;
    }
    return server;
  }

  // ---- set-up ------------------------------------------------------------------------------

  private async connect(): Promise<void> {
    const { role } = this;
    const deadline = Date.now() + this.timeoutMs;
    const left = () => Math.max(1, deadline - Date.now());
    if (role.serverRank === 0) {
      this.storeServer = StoreServer.start({ host: role.storeHost, port: role.storePort });
    }
    this.store = await Store.connect({ host: role.storeHost, port: role.storePort,
      timeoutMs: left() });
    const { bind, publish } = listenAddress(role.storeHost);
    const { server, port } = await listenForIdents(bind, (meta, socket) => {
      const w = this.workers[meta.worker as number];
      if (w === undefined || w.down !== undefined) {
        socket.destroy();
        return;
      }
      w.down = socket;
      socket.on('close', () => this.onLost(w, 'its reply connection closed'));
      w.downDone?.();
    });
    this.listener = server;
    await this.store.set(serverKey(this.rank), `${publish}:${port}`);
    log('info', 'ps', this.rank, role.numServers, () => `server ${this.rank} listening on ` +
      `${publish}:${port}, ${role.numWorkers} workers, mode ${this.mode}, staleness ` +
      `${this.staleness}, store ${role.storeHost}:${role.storePort}`);

    // Dial every worker, then wait for every hello (the model is built on the first one) and
    // every worker's own connection (they travel on different sockets: either may come first).
    const hellos = Promise.race([
      Promise.all(this.workers.flatMap((w) => [
        new Promise<void>((resolve) => { w.helloDone = resolve; }),
        new Promise<void>((resolve) => {
          w.downDone = resolve;
          if (w.down !== undefined) resolve();
        }),
      ])),
      new Promise<void>((_, reject) => { this.setupFailed = reject; }),
    ]);
    await Promise.all(this.workers.map(async (w) => {
      const addr = await this.store!.getString(workerKey(w.rank), { timeoutMs: left() });
      w.up = await dial(addr, this.readerFor(w), this.opts.zeroCopy ?? true, left(),
        `worker ${w.rank}`);
      w.up.on('close', () => this.onLost(w, 'its push connection closed'));
      w.up.on('error', () => undefined);
      await writeFrame(w.up, { t: 'ident', server: this.rank });
    }));
    await withTimeout(hellos, left(), () => `server ${this.rank}: workers ` +
      `${this.workers.filter((w) => !w.hello || !w.down).map((w) => w.rank).join(', ')} never ` +
      'connected or never declared their parameters');
    await this.welcome();
  }

  // Builds our shards from the first hello (or the checkpoint), checks every other hello.
  private initModel(keys: KeySpec[]): void {
    this.plan = planShards(keys, this.role.numServers);
    this.mine = this.plan.byServer[this.rank];
    const sizes = this.mine.map((i) => this.plan.shards[i].length);
    this.params = sizes.map((n) => new Float32Array(n));
    this.agg = sizes.map((n) => new Float32Array(n));
    for (const w of this.workers) {
      w.recv = sizes.map((n) => new Float32Array(n));
      w.snapshot = this.mode === 'async' ? sizes.map((n) => new Float32Array(n)) : [];
    }
    this.opt = (this.opts.optimizer ?? ((p) => new Adam(p, { lr: 1e-3 })))(this.params);
    if (this.opts.checkpoint !== undefined) this.restore(this.opts.checkpoint, keys);
  }

  // The first hello builds the model; a failure (a checkpoint that does not fit) fails start().
  private buildModel(meta: Meta): boolean {
    if (this.plan !== undefined) return true;
    try {
      this.initModel(meta.keys as KeySpec[]);
      return true;
    } catch (e) {
      this.setupFailed(e as Error);
      return false;
    }
  }

  private restore(file: string, keys: KeySpec[]): void {
    const state = readCheckpoint(file);
    if (state === null) return;
    const same = JSON.stringify(state.keys) === JSON.stringify(keys) &&
      state.numServers === this.role.numServers && state.serverRank === this.rank;
    if (!same) {
      throw new NodecclError('ERR_NODECCL_MISMATCH', `server ${this.rank}: checkpoint ${file} ` +
        `was written by server ${String(state.serverRank)} of ${String(state.numServers)} for ` +
        `other parameters; restore with the same servers and parameters, or move it away`);
    }
    (state.params as Float32Array[]).forEach((p, i) => this.params[i].set(p));
    this.opt.loadStateDict(state.optimizer as OptimizerStateDict);
    this.version = state.version as number;
    this.restored = true;
    log('info', 'ps', this.rank, this.role.numServers, () => `server ${this.rank} restored ` +
      `version ${this.version} from ${file}`);
  }

  private async welcome(): Promise<void> {
    const first = JSON.stringify(this.workers[0].hello!.keys);
    const bad = this.workers.filter((w) => JSON.stringify(w.hello!.keys) !== first);
    const error = bad.length === 0 ? undefined : new NodecclError('ERR_NODECCL_MISMATCH',
      `server ${this.rank}: workers ${bad.map((w) => w.rank).join(', ')} declare other ` +
      'parameters (names or lengths) than worker 0; every worker must declare the same');
    await Promise.all(this.workers.map((w) => this.send(w, error === undefined
      ? { t: 'welcome', mode: this.mode, staleness: this.staleness, version: this.version,
          restored: this.restored }
      : { t: 'error', code: error.code, message: error.message })));
    if (error !== undefined) throw error;
  }

  // ---- frames from a worker ---------------------------------------------------------------

  // Where each frame's payload goes: hello (worker 0's initial values) into our shards, unless
  // restored; push into that worker's gradient buffers.
  private readerFor(w: WorkerLink): FrameReader {
    const place = (meta: Meta): Uint8Array[] | null => {
      if (meta.t === 'hello') {
        if (!this.buildModel(meta)) return null;
        return this.restored || w.rank !== 0 ? null : this.params.map((p) => bytesOf(p));
      }
      if (meta.t === 'push' && this.plan !== undefined) return w.recv.map((g) => bytesOf(g));
      return null;
    };
    return new FrameReader(place, (meta) => {
      try {
        this.onFrame(w, meta);
      } catch (e) {
        this.replyError(w, meta.id as number | undefined, e);
      }
    });
  }

  private onFrame(w: WorkerLink, meta: Meta): void {
    switch (meta.t) {
      case 'hello':
        if (!this.buildModel(meta)) return;
        w.hello = meta;
        w.helloDone?.();
        return;
      case 'push':
        if (this.mode === 'sync') this.onSyncPush(w, meta);
        else this.onAsyncPush(w, meta);
        return;
      case 'pull':
        this.onPull(w, meta.id as number);
        return;
      case 'bye':
        this.onGone(w, 'left');
        return;
      default:
        throw new NodecclError('ERR_NODECCL_INTERNAL', `server ${this.rank}: unknown frame ` +
          `'${meta.t}' from worker ${w.rank}`);
    }
  }

  private onPull(w: WorkerLink, id: number): void {
    let data = this.params;
    if (this.mode === 'async') {
      w.snapshot.forEach((s, i) => s.set(this.params[i]));
      data = w.snapshot;
    }
    const versions = this.mine.map(() => this.version);
    void this.send(w, { t: 'params', id, versions }, data.map((p) => bytesOf(p)));
  }

  // ---- sync: one averaged step once every live worker has pushed -------------------------

  private onSyncPush(w: WorkerLink, meta: Meta): void {
    if (meta.clock !== this.version || w.pushed) {
      throw new NodecclError('ERR_NODECCL_MISMATCH', `server ${this.rank}: worker ${w.rank} ` +
        `pushed for step ${String(meta.clock)} but the open step is ${this.version}` +
        (w.pushed ? ' and it already pushed for it' : '') + '; in sync mode every worker ' +
        'pushes once per step');
    }
    w.pushed = true;
    w.held = { id: meta.id as number, since: Date.now() };
    if (this.stepTimer === undefined) {
      this.stepTimer = setTimeout(() => this.onStepTimeout(), this.timeoutMs);
    }
    this.tryCompleteStep();
  }

  // The step completes when no live worker is missing. Gradients are summed in worker order
  // (so results do not depend on arrival order), then divided by the number of contributions:
  // the same float32 operations as all-reduce's sum followed by the division of 'avg'.
  private tryCompleteStep(): void {
    const contributors = this.workers.filter((w) => w.pushed);
    const missing = this.workers.filter((w) => w.gone === 'no' && !w.pushed);
    if (contributors.length === 0 || missing.length > 0) return;
    this.agg.forEach((a, i) => {
      a.set(contributors[0].recv[i]);
      for (let c = 1; c < contributors.length; c++) {
        const g = contributors[c].recv[i];
        for (let j = 0; j < a.length; j++) a[j] += g[j];
      }
      const n = contributors.length;
      if (n > 1) for (let j = 0; j < a.length; j++) a[j] /= n;
    });
    this.opt.step(this.agg);
    this.version++;
    clearTimeout(this.stepTimer);
    this.stepTimer = undefined;
    this.maybeCheckpoint();
    for (const w of contributors) {
      w.pushed = false;
      this.ack(w);
    }
  }

  private onStepTimeout(): void {
    this.stepTimer = undefined;
    const missing = this.workers.filter((w) => w.gone === 'no' && !w.pushed).map((w) => w.rank);
    const error = new NodecclError('ERR_NODECCL_TIMEOUT', `server ${this.rank}: step ` +
      `${this.version} waited ${this.timeoutMs} ms for the gradients of workers ` +
      `${missing.join(', ')}; a worker is stuck or much slower (raise timeoutMs if expected)`);
    for (const w of this.workers) {
      if (w.held !== null) this.replyError(w, w.held.id, error);
      w.held = null;
    }
  }

  // ---- async: apply each gradient at once, hold workers too far ahead --------------------

  private onAsyncPush(w: WorkerLink, meta: Meta): void {
    this.opt.step(w.recv);
    this.version++;
    w.clock++;
    w.held = { id: meta.id as number, since: Date.now() };
    this.maybeCheckpoint();
    this.releaseHeld();
  }

  // A held push is acknowledged once its worker is at most `staleness` pushes ahead of the
  // slowest live worker; one held past timeoutMs is answered with a timeout instead.
  private releaseHeld(): void {
    const live = this.workers.filter((w) => w.gone === 'no');
    const slowest = live.reduce((m, w) => Math.min(m, w.clock), Infinity);
    const now = Date.now();
    for (const w of this.workers) {
      if (w.held === null) continue;
      if (this.staleness < 0 || w.clock - slowest <= this.staleness) {
        this.ack(w);
      } else if (now - w.held.since >= this.timeoutMs) {
        const behind = live.filter((v) => w.clock - v.clock > this.staleness).map((v) => v.rank);
        this.replyError(w, w.held.id, new NodecclError('ERR_NODECCL_TIMEOUT', `server ` +
          `${this.rank}: worker ${w.rank} is more than ${this.staleness} pushes ahead of ` +
          `workers ${behind.join(', ')}, which pushed nothing for ${this.timeoutMs} ms`));
        w.held = null;
      }
    }
    if (this.workers.some((w) => w.held !== null) && this.stepTimer === undefined) {
      this.stepTimer = setTimeout(() => {
        this.stepTimer = undefined;
        this.releaseHeld();
      }, this.timeoutMs).unref();
    }
  }

  // ---- replies, departures, checkpoints ------------------------------------------------------

  private ack(w: WorkerLink): void {
    if (w.held === null) return;
    const { id } = w.held;
    w.held = null;
    void this.send(w, { t: 'ack', id, version: this.version });
  }

  private replyError(w: WorkerLink, id: number | undefined, e: unknown): void {
    const err = e instanceof NodecclError ? e
      : new NodecclError('ERR_NODECCL_INTERNAL', e instanceof Error ? e.message : String(e));
    void this.send(w, { t: 'error', id, code: err.code, message: err.message });
  }

  private send(w: WorkerLink, meta: Meta, payload: Uint8Array[] = []): Promise<void> {
    if (w.down === undefined || w.gone !== 'no') return Promise.resolve();
    return writeFrame(w.down, meta, payload).catch(() => undefined); // loss seen on 'close'
  }

  private onLost(w: WorkerLink, why: string): void {
    if (w.gone !== 'no') return;
    process.stderr.write(`nodeccl: parameter server ${this.rank}: lost worker ${w.rank} ` +
      `(${why}, without goodbye); continuing with ` +
      `${this.workers.filter((v) => v.gone === 'no').length - 1} worker(s)\n`);
    this.onGone(w, 'lost');
  }

  // A departed worker no longer holds back a step or the staleness bound.
  private onGone(w: WorkerLink, how: 'left' | 'lost'): void {
    if (w.gone !== 'no') return;
    w.gone = how;
    w.held = null;
    w.up?.destroy();
    w.down?.end();
    if (this.plan !== undefined) {
      if (this.mode === 'sync') this.tryCompleteStep();
      else this.releaseHeld();
    }
    if (this.workers.every((v) => v.gone !== 'no')) this.end();
  }

  private maybeCheckpoint(): void {
    const every = this.opts.checkpointEvery ?? 0;
    if (this.opts.checkpoint !== undefined && every > 0 && this.version % every === 0) {
      this.checkpoint();
    }
  }

  /** Writes this server's state (shards, optimizer, version) to `file` atomically. */
  checkpoint(file = this.opts.checkpoint): void {
    if (file === undefined) {
      throw new NodecclRangeError('PSServer.checkpoint: no file given and no `checkpoint` ' +
        'option at start');
    }
    writeCheckpoint(file, {
      serverRank: this.rank, numServers: this.role.numServers, keys: this.plan.keys,
      version: this.version, params: this.params, optimizer: this.opt.stateDict(),
    });
  }

  private end(): void {
    clearTimeout(this.stepTimer);
    try {
      if (this.opts.checkpoint !== undefined && this.plan !== undefined) this.checkpoint();
    } catch (e) {
      this.shutdown();
      this.failFinish(e as Error);
      return;
    }
    this.shutdown();
    this.finish({
      serverRank: this.rank, version: this.version, restored: this.restored,
      workersLeft: this.workers.filter((w) => w.gone === 'left').map((w) => w.rank),
      workersLost: this.workers.filter((w) => w.gone === 'lost').map((w) => w.rank),
    });
  }

  private shutdown(): void {
    for (const w of this.workers) {
      w.up?.destroy();
      w.down?.destroy();
    }
    this.listener?.close();
    this.store?.close();
    this.storeServer?.stop();
  }
}
