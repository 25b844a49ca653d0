// SPDX-License-Identifier: Apache-2.0
// The key-value store used for rendezvous, open to applications too: a server (normally run by
// rank 0 inside init()) and a client whose every request is a Promise with a deadline.
import { fromNative, NodecclError, NodecclRangeError, NodecclTypeError } from './errors';
import { native, type NativeStoreClient, type NativeStoreServer } from './native';
import { checkBuffer } from './buffers';
import { checkOptions, describeValue } from './options';

/** Default wait for `get`/`wait` and for connecting: 30 s. */
export const DEFAULT_STORE_TIMEOUT_MS = 30_000;

function checkKey(fn: string, key: unknown): string {
  if (typeof key !== 'string' || key.length === 0) {
    throw new NodecclTypeError(`${fn}: key must be a non-empty string, got ` +
      describeValue(key));
  }
  return key;
}

function checkValue(fn: string, what: string, v: unknown): string | Uint8Array {
  if (typeof v === 'string') return v;
  if (v instanceof Uint8Array) {
    checkBuffer(fn, what, v);
    return v;
  }
  throw new NodecclTypeError(`${fn}: ${what} must be a string or a Uint8Array, got ` +
    `${v === null ? 'null' : typeof v}`);
}

function checkTimeout(fn: string, ms: unknown): number {
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) {
    throw new NodecclRangeError(`${fn}: timeoutMs must be a finite number >= 0, got ` +
      describeValue(ms));
  }
  return ms;
}

async function call<T>(p: () => Promise<T>): Promise<T> {
  try {
    return await p();
  } catch (e) {
    throw fromNative(e);
  }
}

/** A TCP key-value store server running on a background thread of this process. */
export class StoreServer {
  private constructor(private readonly server: NativeStoreServer) {}

  /**
   * Listens on `host:port` (port 0 picks a free one).
   * @throws NodecclError `ERR_NODECCL_IO` when the address is taken or not local.
   */
  static start(options: { host?: string; port?: number } = {}): StoreServer {
    checkOptions('StoreServer.start', options, ['host', 'port']);
    const host = options.host ?? '127.0.0.1';
    const port = options.port ?? 0;
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw new NodecclRangeError(`StoreServer.start: port must be an integer in 0..65535, ` +
        `got ${port}`);
    }
    try {
      return new StoreServer(new (native().StoreServer)(host, port));
    } catch (e) {
      throw fromNative(e);
    }
  }

  /** The port actually bound. */
  get port(): number {
    return this.server.port();
  }

  /** Stops serving and closes every client connection. Idempotent. */
  stop(): void {
    this.server.stop();
  }
}

/** A connection to a StoreServer. Values are bytes; strings are stored as UTF-8. */
export class Store {
  private closed = false;
  private constructor(private readonly client: NativeStoreClient) {}

  /**
   * Connects to `host:port`, retrying until the server answers or `timeoutMs` passes.
   * @throws NodecclError `ERR_NODECCL_TIMEOUT` naming the address.
   */
  static async connect(options: { host?: string; port: number; timeoutMs?: number }):
      Promise<Store> {
    checkOptions('Store.connect', options, ['host', 'port', 'timeoutMs']);
    const host = options.host ?? '127.0.0.1';
    const { port } = options;
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new NodecclRangeError(`Store.connect: port must be an integer in 1..65535, ` +
        `got ${port}`);
    }
    const timeoutMs = checkTimeout('Store.connect',
      options.timeoutMs ?? DEFAULT_STORE_TIMEOUT_MS);
    return new Store(await call(() => native().connectStore(host, port, timeoutMs)));
  }

  /** Sets `key` to `value`, waking every waiter on it. */
  async set(key: string, value: string | Uint8Array): Promise<void> {
    const k = checkKey('store.set', key);
    const v = checkValue('store.set', 'value', value);
    return call(() => this.live().set(k, v));
  }

  /** The value of `key`, waiting up to `timeoutMs` for it to be set. */
  async get(key: string, options: { timeoutMs?: number } = {}): Promise<Uint8Array> {
    checkOptions('store.get', options, ['timeoutMs']);
    const k = checkKey('store.get', key);
    const t = checkTimeout('store.get', options.timeoutMs ?? DEFAULT_STORE_TIMEOUT_MS);
    return call(() => this.live().get(k, t));
  }

  /** Like get(), decoded as UTF-8. */
  async getString(key: string, options: { timeoutMs?: number } = {}): Promise<string> {
    return Buffer.from(await this.get(key, options)).toString('utf8');
  }

  /** Adds `delta` to the integer at `key` (absent counts as 0); resolves to the new value. */
  async add(key: string, delta = 1): Promise<number> {
    const k = checkKey('store.add', key);
    if (!Number.isSafeInteger(delta)) {
      throw new NodecclRangeError(`store.add: delta must be a safe integer, got ${delta}`);
    }
    return call(() => this.live().add(k, delta));
  }

  /** Resolves once every key exists; rejects with ERR_NODECCL_TIMEOUT naming the missing. */
  async wait(keys: string | string[], options: { timeoutMs?: number } = {}): Promise<void> {
    checkOptions('store.wait', options, ['timeoutMs']);
    const list = (Array.isArray(keys) ? keys : [keys]).map((k) => checkKey('store.wait', k));
    const t = checkTimeout('store.wait', options.timeoutMs ?? DEFAULT_STORE_TIMEOUT_MS);
    return call(() => this.live().wait(list, t));
  }

  /**
   * Sets `key` to `desired` if its value is `expected` (`null`: only if absent); resolves to
   * the value after the call, so the caller can tell whether it won.
   */
  async compareSet(key: string, expected: string | Uint8Array | null,
             desired: string | Uint8Array): Promise<Uint8Array> {
    const k = checkKey('store.compareSet', key);
    const e = expected === null ? null : checkValue('store.compareSet', 'expected', expected);
    const d = checkValue('store.compareSet', 'desired', desired);
    return call(() => this.live().compareSet(k, e, d));
  }

  /** Removes `key`; resolves to whether it existed. */
  async delete(key: string): Promise<boolean> {
    const k = checkKey('store.delete', key);
    return call(() => this.live().delete(k));
  }

  /** Closes the connection; pending requests reject with ERR_NODECCL_ABORTED. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.client.close();
  }

  private live(): NativeStoreClient {
    if (this.closed) {
      throw new NodecclError('ERR_NODECCL_DESTROYED', 'store: this Store was closed; ' +
        'connect a new one with Store.connect()');
    }
    return this.client;
  }
}
