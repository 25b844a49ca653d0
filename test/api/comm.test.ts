// SPDX-License-Identifier: Apache-2.0
// The communicator's API in a world of one process: results, argument errors and their codes,
// init's rendezvous errors, and the key-value store.
import * as net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Communicator, init, NodecclError, NodecclRangeError, NodecclTypeError, Store,
  StoreServer, tensor, toFloat16, fromFloat16,
} from '../../lib/index';
import { freePort } from '../helpers/world';

describe('a world of one', () => {
  let comm: Communicator;
  beforeAll(async () => { comm = await init({ rank: 0, worldSize: 1 }); });
  afterAll(async () => { await comm.destroy(); });

  it('knows its place', () => {
    expect(comm.rank).toBe(0);
    expect(comm.size).toBe(1);
  });

  it('reduces in place and resolves to its argument', async () => {
    const x = new Float32Array([1, 2, 3]);
    expect(await comm.allReduce(x, { op: 'avg' })).toBe(x);
    expect(Array.from(x)).toEqual([1, 2, 3]);
    const h = tensor(toFloat16([0.5, -2]), { dtype: 'float16' });
    await comm.allReduce(h, { op: 'max' });
    expect(Array.from(fromFloat16(h.data as Uint16Array))).toEqual([0.5, -2]);
  });

  it('gathers and scatters with allocated outputs', async () => {
    const g = await comm.allGather(new Int32Array([4, 5]));
    expect(Array.from(g)).toEqual([4, 5]);
    const s = await comm.reduceScatter(new Float64Array([1, 2, 3]));
    expect(Array.from(s)).toEqual([1, 2, 3]);
    const t = await comm.allGather(tensor(new Float32Array([1, 2]), { shape: [2] }));
    expect(t.shape).toEqual([1, 2]);
  });

  it('hands out plain arrays from allocShared without a shared heap, or refuses if required',
    async () => {
      const a = comm.allocShared('bfloat16', 5);
      expect(a).toBeInstanceOf(Uint16Array);
      expect(a.length).toBe(5);
      expect(comm.isShared(a)).toBe(false);
      expect(() => comm.allocShared('float32', 4, { required: true }))
        .toThrow(/rank 0: allocShared\('float32', 4\) has no shared memory: .*transport none/);
      expect(() => comm.allocShared('float32', -1)).toThrow(NodecclRangeError);
      // A plain fallback too large for V8 is a RangeError naming allocShared, not V8's bare one.
      expect(() => comm.allocShared('float32', 2 ** 40))
        .toThrow(/rank 0: allocShared\('float32', 1099511627776\) .*cannot be allocated/);
      expect(() => comm.allocShared('float33' as never, 1)).toThrow(/dtype/);
      expect(() => comm.allocShared('float32', 1, { require: true } as never))
        .toThrow(/require/);
    });

  it('accepts empty tensors', async () => {
    await comm.allReduce(new Float32Array(0));
    await comm.broadcast(new Uint8Array(0));
    await comm.barrier();
  });

  it('rejects what is not a tensor, naming the argument', async () => {
    const e = await comm.allReduce('x' as never).catch((err) => err);
    expect(e).toBeInstanceOf(NodecclTypeError);
    expect(e.code).toBe('ERR_NODECCL_INVALID_ARGUMENT');
    expect(e.message).toMatch(/allReduce.*tensor/);
  });

  it('asks for a dtype when a Uint16Array is ambiguous', async () => {
    const e = await comm.allReduce(new Uint16Array(2) as never).catch((err) => err);
    expect(e).toBeInstanceOf(NodecclTypeError);
    expect(e.message).toMatch(/float16|bfloat16/);
  });

  it('names unknown ops and options, with a suggestion', async () => {
    const e1 = await comm.allReduce(new Float32Array(1), { op: 'mean' as never })
      .catch((err) => err);
    expect(e1.message).toMatch(/sum, prod, min, max, avg/);
    const e2 = await comm.allReduce(new Float32Array(1), { timeoutMS: 5 } as never)
      .catch((err) => err);
    expect(e2).toBeInstanceOf(NodecclTypeError);
    expect(e2.message).toMatch(/timeoutMS.*timeoutMs/s);
  });

  it('checks roots, peers and output lengths', async () => {
    const e1 = await comm.broadcast(new Float32Array(1), { root: 1 }).catch((err) => err);
    expect(e1).toBeInstanceOf(NodecclRangeError);
    expect(e1.message).toMatch(/root 1 is out of range for a world of 1 ranks/);
    const e2 = await comm.send(new Float32Array(1), 0).catch((err) => err);
    expect(e2).toBeInstanceOf(NodecclRangeError);
    const e3 = await comm.allGather(new Float32Array(2), new Float32Array(3)).catch((err) => err);
    expect(e3.message).toMatch(/output has 3 elements but needs 2/);
    const e4 = await comm.allGather(new Float32Array(2), new Float64Array(2) as never)
      .catch((err) => err);
    expect(e4.message).toMatch(/float32 but output is float64/);
    const e5 = await comm.allReduce(new Float32Array(1), { timeoutMs: -1 }).catch((err) => err);
    expect(e5).toBeInstanceOf(NodecclRangeError);
  });
});

describe('after destroy', () => {
  it('fails every call with ERR_NODECCL_DESTROYED', async () => {
    const comm = await init({ rank: 0, worldSize: 1 });
    await comm.destroy();
    await comm.destroy();  // idempotent
    const e = await comm.allReduce(new Float32Array(1)).catch((err) => err);
    expect(e).toBeInstanceOf(NodecclError);
    expect(e.code).toBe('ERR_NODECCL_DESTROYED');
  });
});

describe('init errors', () => {
  it('rejects a rank outside the world', async () => {
    await expect(init({ rank: 2, worldSize: 2 })).rejects.toBeInstanceOf(NodecclRangeError);
  });

  it('reports a master port already in use', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const e = await init({ rank: 0, worldSize: 2, masterPort: port }).catch((err) => err);
      expect(e).toBeInstanceOf(NodecclError);
      expect(e.code).toBe('ERR_NODECCL_IO');
      expect(e.message).toMatch(new RegExp(`${port}`));
    } finally {
      blocker.close();
    }
  });

  it('times out naming the ranks that never arrived', async () => {
    const port = await freePort();
    const e = await init({ rank: 0, worldSize: 3, masterPort: port, initTimeoutMs: 800 })
      .catch((err) => err);
    expect(e).toBeInstanceOf(NodecclError);
    expect(e.code).toBe('ERR_NODECCL_TIMEOUT');
    expect(e.message).toMatch(/1.*2/);
  });
});

describe('the key-value store', () => {
  let server: StoreServer;
  let store: Store;
  beforeAll(async () => {
    server = StoreServer.start({ port: 0 });
    store = await Store.connect({ port: server.port });
  });
  afterAll(() => {
    store.close();
    server.stop();
  });

  it('sets, gets, adds, compares and deletes', async () => {
    await store.set('a', 'hello');
    expect(await store.getString('a')).toBe('hello');
    expect(Array.from(await store.get('a'))).toEqual(Array.from(Buffer.from('hello')));
    expect(await store.add('n', 5)).toBe(5);
    expect(await store.add('n', -2)).toBe(3);
    const won = await store.compareSet('c', null, 'first');
    expect(Buffer.from(won).toString()).toBe('first');
    const lost = await store.compareSet('c', null, 'second');
    expect(Buffer.from(lost).toString()).toBe('first');
    expect(await store.delete('c')).toBe(true);
    expect(await store.delete('c')).toBe(false);
  });

  it('waits for a key set later by another client', async () => {
    const other = await Store.connect({ port: server.port });
    const pending = store.getString('late', { timeoutMs: 5000 });
    await new Promise((r) => setTimeout(r, 50));
    await other.set('late', 'now');
    expect(await pending).toBe('now');
    other.close();
  });

  it('times out naming the key', async () => {
    const e = await store.wait(['never'], { timeoutMs: 100 }).catch((err) => err);
    expect(e).toBeInstanceOf(NodecclError);
    expect(e.code).toBe('ERR_NODECCL_TIMEOUT');
    expect(e.message).toMatch(/never/);
  });

  it('rejects bad keys and closed clients', async () => {
    await expect(store.set('', 'x')).rejects.toBeInstanceOf(NodecclTypeError);
    const c = await Store.connect({ port: server.port });
    c.close();
    const e = await c.get('a').catch((err) => err);
    expect(e.code).toBe('ERR_NODECCL_DESTROYED');
  });
});
