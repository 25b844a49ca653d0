// SPDX-License-Identifier: Apache-2.0
// Bad input to every public function: wrong types, out-of-range values, detached and resizable
// ArrayBuffers, tensors whose buffer changed after creation. Each must throw (or reject with) a
// TypeError or RangeError whose code is ERR_NODECCL_INVALID_ARGUMENT and whose message names the
// argument; a rejected call must leave the caller's buffers as they were. The last tests run
// real processes: a peer killed mid-operation, and buffers kept alive through gc().
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Adam, AdamW8bit, type Communicator, fromFloat16, init, NodecclError, NodecclRangeError,
  NodecclTypeError, SGD, Store, StoreServer, Tensor, tensor, toFloat16, zeros,
} from '../../lib/index';
import { runRanks } from '../helpers/world';

type ErrorClass = typeof NodecclTypeError | typeof NodecclRangeError;

// An array whose ArrayBuffer has been transferred away (what postMessage does).
function detached<T extends Float32Array | Uint8Array | Uint16Array>(a: T): T {
  structuredClone(a.buffer, { transfer: [a.buffer as ArrayBuffer] });
  return a;
}

// A length-tracking Float32Array over a resizable ArrayBuffer (ES2024, Node 20).
function resizable(n: number): Float32Array {
  const Ctor = ArrayBuffer as unknown as new (len: number, o: { maxByteLength: number }) =>
    ArrayBuffer;
  return new Float32Array(new Ctor(n * 4, { maxByteLength: n * 16 }));
}

// Runs `call` (sync or async) and checks the error's class, code and that it names `arg`.
async function rejects(call: () => unknown, cls: ErrorClass, arg: RegExp): Promise<void> {
  let caught: unknown;
  try {
    await call();
  } catch (e) {
    caught = e;
  }
  expect(caught, `expected ${cls.name} naming ${arg}`).toBeInstanceOf(cls);
  expect((caught as NodecclTypeError).code).toBe('ERR_NODECCL_INVALID_ARGUMENT');
  expect((caught as Error).message).toMatch(arg);
}

describe('init', () => {
  it('rejects bad ranks, sizes, timeouts and unknown options', async () => {
    await rejects(() => init({ rank: 1.5, worldSize: 2 }), NodecclRangeError, /rank/);
    await rejects(() => init({ rank: 2, worldSize: 2 }), NodecclRangeError, /rank/);
    await rejects(() => init({ rank: 0, worldSize: 'two' as never }), NodecclTypeError,
      /worldSize/);
    await rejects(() => init({ rank: 0, worldSize: 1, timeoutMs: 'x' as never }),
      NodecclTypeError, /timeoutMs/);
    await rejects(() => init({ rank: 0, worldSize: 1, initTimeoutMs: -5 }), NodecclRangeError,
      /initTimeoutMs/);
    await rejects(() => init({ rank: 0, worldSize: 1, rnak: 0 } as never), NodecclTypeError,
      /rnak.*rank/);
  });
});

describe('Communicator methods', () => {
  let comm: Communicator;
  beforeAll(async () => { comm = await init({ rank: 0, worldSize: 1 }); });
  afterAll(async () => { await comm.destroy(); });

  it('rejects values that are not tensors, naming the argument', async () => {
    await rejects(() => comm.allReduce([1, 2] as never), NodecclTypeError, /allReduce: tensor/);
    await rejects(() => comm.broadcast(new DataView(new ArrayBuffer(4)) as never),
      NodecclTypeError, /broadcast: tensor/);
    await rejects(() => comm.allGather(new Float32Array(1), 'out' as never), NodecclTypeError,
      /allGather: output/);
    await rejects(() => comm.reduceScatter(null as never), NodecclTypeError,
      /reduceScatter: input/);
    await rejects(() => comm.send({} as never, 0), NodecclTypeError, /send: tensor/);
    await rejects(() => comm.recv(new Uint16Array(2) as never, 0), NodecclTypeError, /recv/);
  });

  it('rejects detached buffers in every collective', async () => {
    const d = () => detached(new Float32Array(4));
    await rejects(() => comm.allReduce(d()), NodecclTypeError, /allReduce: tensor .*detached/);
    await rejects(() => comm.broadcast(d()), NodecclTypeError, /broadcast: tensor .*detached/);
    await rejects(() => comm.reduce(d()), NodecclTypeError, /reduce: tensor .*detached/);
    await rejects(() => comm.allGather(d()), NodecclTypeError, /allGather: input .*detached/);
    await rejects(() => comm.allGather(new Float32Array(4), d()), NodecclTypeError,
      /allGather: output .*detached/);
    await rejects(() => comm.reduceScatter(d()), NodecclTypeError, /reduceScatter: input/);
    await rejects(() => comm.send(d(), 0), NodecclTypeError, /send: tensor .*detached/);
    await rejects(() => comm.recv(d(), 0), NodecclTypeError, /recv: tensor .*detached/);
  });

  it('rejects resizable buffers and length-tracking views', async () => {
    await rejects(() => comm.allReduce(resizable(4)), NodecclTypeError,
      /allReduce: tensor .*resizable ArrayBuffer.*new Float32Array\(tensor\)/);
    await rejects(() => comm.allGather(new Float32Array(4), resizable(4)), NodecclTypeError,
      /allGather: output .*resizable/);
  });

  it('rejects SharedArrayBuffer memory in collectives, naming the argument', async () => {
    const shared = new Float32Array(new SharedArrayBuffer(16));
    await rejects(() => comm.allReduce(shared), NodecclTypeError,
      /allReduce: tensor is a Float32Array over a SharedArrayBuffer.*new Float32Array\(tensor\)/);
    const sharedOut = shared as unknown as Float32Array;
    await rejects(() => comm.allGather(new Float32Array(4), sharedOut), NodecclTypeError,
      /allGather: output .*SharedArrayBuffer/);
  });

  it('rejects a tensor whose buffer was detached after the tensor was made', async () => {
    const t = tensor(new Float32Array([1, 2, 3]));
    detached(t.data as Float32Array);
    await rejects(() => comm.allReduce(t), NodecclTypeError, /allReduce: tensor .*detached/);
  });

  it('rejects non-integer and out-of-range roots and peers, bad ops and timeouts', async () => {
    const x = new Float32Array(2);
    await rejects(() => comm.broadcast(x, { root: 0.5 }), NodecclRangeError, /root 0.5/);
    await rejects(() => comm.broadcast(x, { root: -1 }), NodecclRangeError, /root -1/);
    await rejects(() => comm.reduce(x, { root: 1 }), NodecclRangeError, /reduce root 1/);
    await rejects(() => comm.reduce(x, { root: '0' as never }), NodecclRangeError, /root "0"/);
    await rejects(() => comm.send(x, 0), NodecclRangeError, /send peer is this rank/);
    await rejects(() => comm.recv(x, 1.5), NodecclRangeError, /recv peer 1.5/);
    await rejects(() => comm.allReduce(x, { op: 'sun' as never }), NodecclTypeError, /op/);
    await rejects(() => comm.barrier({ timeoutMs: 0 }), NodecclRangeError, /timeoutMs/);
    await rejects(() => comm.allReduce(x, { timeoutMs: NaN }), NodecclRangeError, /timeoutMs/);
    await rejects(() => comm.allReduce(x, { tmeoutMs: 5 } as never), NodecclTypeError,
      /tmeoutMs.*timeoutMs/);
  });

  it('rejects mismatched outputs', async () => {
    await rejects(() => comm.allGather(new Float32Array(2), new Float32Array(3)),
      NodecclRangeError, /allGather output has 3/);
    await rejects(() => comm.allGather(new Float32Array(2), new Int32Array(2) as never),
      NodecclTypeError, /allGather input is float32 but output is int32/);
    await rejects(() => comm.reduceScatter(new Float32Array(2), new Float32Array(1)),
      NodecclRangeError, /reduceScatter output has 1/);
  });

  it('leaves the buffers of a rejected call unchanged', async () => {
    const input = new Float32Array([1, 2, 3]);
    const output = new Float32Array([9, 9, 9, 9]);
    await rejects(() => comm.allGather(input, output), NodecclRangeError, /output/);
    await rejects(() => comm.reduceScatter(input, new Float32Array([5, 5, 5]),
      { op: 'bogus' as never }), NodecclTypeError, /op/);
    await rejects(() => comm.allReduce(input, { timeoutMs: -1 }), NodecclRangeError,
      /timeoutMs/);
    expect(Array.from(input)).toEqual([1, 2, 3]);
    expect(Array.from(output)).toEqual([9, 9, 9, 9]);
  });

  it('rejects every operation on a destroyed communicator', async () => {
    const c = await init({ rank: 0, worldSize: 1 });
    await c.destroy();
    let caught: unknown;
    try { await c.allReduce(new Float32Array(1)); } catch (e) { caught = e; }
    expect(caught).toBeInstanceOf(NodecclError);
    expect((caught as NodecclError).code).toBe('ERR_NODECCL_DESTROYED');
    expect((caught as Error).message).toMatch(/allReduce called on a destroyed/);
    // split() and group() name themselves, not the collective they would run.
    await expect(c.split(0)).rejects.toThrow(/split called on a destroyed/);
    await expect(c.group([0])).rejects.toThrow(/group called on a destroyed/);
  });

  it('names the bad entry of allToAll counts and bounds timeouts', async () => {
    await rejects(() => comm.allToAll(new Float32Array(2), undefined,
      { sendCounts: [-1].concat(new Array(comm.size - 1).fill(0)) }), NodecclRangeError,
    /allToAll sendCounts\[0\] is -1; every entry must be a non-negative integer/);
    await rejects(() => comm.allReduce(new Float32Array(1), { timeoutMs: 1e20 }),
      NodecclRangeError, /rank 0: allReduce timeoutMs must be a positive number .* up to 1e12/);
  });
});

describe('Store and StoreServer', () => {
  let server: StoreServer;
  let store: Store;
  beforeAll(async () => {
    server = StoreServer.start();
    store = await Store.connect({ port: server.port, timeoutMs: 5000 });
  });
  afterAll(() => { store.close(); server.stop(); });

  it('rejects bad keys, values, deltas, timeouts and ports', async () => {
    await rejects(() => store.set(1 as never, 'v'), NodecclTypeError, /store.set: key.*1/);
    await rejects(() => store.set('', 'v'), NodecclTypeError, /key/);
    await rejects(() => store.set('k', 5 as never), NodecclTypeError, /store.set: value/);
    await rejects(() => store.set('k', detached(new Uint8Array(3))), NodecclTypeError,
      /store.set: value .*detached/);
    await rejects(() => store.compareSet('k', null, detached(new Uint8Array(3))),
      NodecclTypeError, /desired .*detached/);
    await rejects(() => store.get('k', { timeoutMs: -1 }), NodecclRangeError, /timeoutMs/);
    await rejects(() => store.add('k', 1.5), NodecclRangeError, /delta/);
    await rejects(() => store.wait([3 as never]), NodecclTypeError, /key/);
    await rejects(() => Store.connect({ port: 0 }), NodecclRangeError, /port/);
    await rejects(() => StoreServer.start({ port: 70000 }), NodecclRangeError, /port/);
    await rejects(() => StoreServer.start({ prot: 1 } as never), NodecclTypeError, /prot.*port/);
  });
});

describe('tensors and conversions', () => {
  it('rejects bad data, shapes and dtypes', async () => {
    await rejects(() => tensor('abc' as never), NodecclTypeError, /tensor\(\): data/);
    await rejects(() => tensor([1, 2], { shape: [3] }), NodecclRangeError, /shape \[3\]/);
    await rejects(() => tensor([1], { shape: [1.5] }), NodecclRangeError, /shape\[0\]/);
    await rejects(() => tensor([1], { dtype: 'float17' as never }), NodecclTypeError, /dtype/);
    await rejects(() => zeros([2, -1]), NodecclRangeError, /shape\[1\]/);
  });

  it('rejects detached and resizable arrays', async () => {
    await rejects(() => tensor(detached(new Float32Array(2))), NodecclTypeError,
      /data .*detached/);
    await rejects(() => new Tensor(resizable(2), 'float32'), NodecclTypeError,
      /new Tensor\(\): data .*resizable/);
    await rejects(() => toFloat16(detached(new Float32Array(2))), NodecclTypeError,
      /toFloat16\(\): values .*detached/);
    await rejects(() => fromFloat16(detached(new Uint16Array(2))), NodecclTypeError,
      /fromFloat16\(\): bits .*detached/);
    await rejects(() => toFloat16(new Float32Array(2), detached(new Uint16Array(2))),
      NodecclTypeError, /toFloat16\(\): out .*detached/);
  });
});

describe('optimizers', () => {
  it('reject bad parameters, options and gradients', async () => {
    await rejects(() => new SGD('w' as never), NodecclTypeError, /params/);
    await rejects(() => new SGD([detached(new Float32Array(2))]), NodecclTypeError,
      /new SGD\(\): params\[0\] .*detached/);
    await rejects(() => new Adam([new Float32Array(2)], { lr: -1 }), NodecclRangeError, /lr/);
    await rejects(() => new AdamW8bit([resizable(2)]), NodecclTypeError, /params\[0\].*resizable/);
    const p = new Float32Array(2);
    const opt = new SGD([p], { lr: 0.1 });
    await rejects(() => opt.step([detached(new Float32Array(2))]), NodecclTypeError,
      /SGD.step\(\): grads\[0\] .*detached/);
    await rejects(() => opt.step([new Float32Array(3)]), NodecclRangeError, /grads\[0\]/);
    await rejects(() => opt.step('g' as never), NodecclTypeError, /grads/);
    expect(Array.from(p)).toEqual([0, 0]);
  });
});

describe('with real processes', () => {
  it.each(['allReduce', 'broadcast'])('a peer killed mid-%s: PEER_LOST, input intact',
      async (op) => {
    const results = await runRanks('bad-input-inflight.js', 2,
      { timeoutMs: 30_000, env: { OP: op } });
    const line = results[0].stdout.trim().split('\n').pop() ?? '';
    const r = JSON.parse(line) as { code: string; changed: number; first: number; n: number };
    expect(r.code).toBe('ERR_NODECCL_PEER_LOST');
    // The ring all-reduce and the tree broadcast build their result in scratch memory and
    // copy it out only at the end, so the survivor's buffer must still hold its input.
    expect(r.changed, `first changed element at ${r.first}`).toBe(0);
  }, 40_000);

  it('an in-flight operation keeps its buffers alive through gc()', async () => {
    const results = await runRanks('bad-input-gc.js', 2,
      { timeoutMs: 30_000, env: { NODE_OPTIONS: '--expose-gc' } });
    const line = results[0].stdout.trim().split('\n').pop() ?? '';
    expect(JSON.parse(line)).toEqual(
      { rank: 0, finalizedBeforePeer: 0, reduceOk: true, recvOk: true });
    expect(results.map((r) => r.code)).toEqual([0, 0]);
  }, 40_000);
});
