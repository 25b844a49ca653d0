// SPDX-License-Identifier: Apache-2.0
// The training helpers in a world of one process: bucket plans worked by hand, DataParallel's
// argument and sequencing errors, ZeRO-1 and LocalSGD degenerating to the plain optimizer, and
// the nodeccl/tfjs argument checks. Multi-rank behaviour is in test/e2e/train*.test.ts.
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Adam, type Communicator, DataParallel, init, LocalSGD, optimizerStateBytes, planBuckets,
  ZeroRedundancyOptimizer,
} from '../../lib/index';
import { DistributedCallback, DistributedOptimizer } from '../../lib/tfjs/index';
import { freePort } from '../helpers/world';

let comm: Communicator;
beforeAll(async () => {
  comm = await init({ rank: 0, worldSize: 1, masterPort: await freePort() });
});
afterAll(async () => { await comm.destroy(); });

describe('planBuckets', () => {
  it('packs last to first and gives an oversized gradient its own bucket', () => {
    // Capacity 10 floats (40 bytes). From the end: 4 + 3 = 7, + 5 would be 12 > 10: new
    // bucket [5]; then 20 alone (over capacity); then 1 + 2 = 3.
    const plan = planBuckets([2, 1, 20, 5, 3, 4], 40);
    expect(plan.members).toEqual([[5, 4], [3], [2], [1, 0]]);
    expect(plan.lengths).toEqual([7, 5, 20, 3]);
    expect(plan.slots[0]).toEqual({ bucket: 3, offset: 1 });
    expect(plan.slots[4]).toEqual({ bucket: 0, offset: 4 });
  });

  it('keeps one empty bucket when every gradient is empty', () => {
    expect(planBuckets([0, 0], 1024)).toEqual({ members: [[1, 0]], lengths: [0],
      slots: [{ bucket: 0, offset: 0 }, { bucket: 0, offset: 0 }] });
  });
});

describe('DataParallel in a world of one', () => {
  it('averages (the identity here) and overwrites gradients after each synchronize', async () => {
    const dp = new DataParallel(comm, [3, 2], { bucketBytes: 8 });
    dp.gradReady(1, new Float32Array([1, 2]));
    dp.gradReady(0, new Float32Array([3, 4, 5]));
    expect((await dp.synchronize()).map((g) => Array.from(g))).toEqual([[3, 4, 5], [1, 2]]);
    dp.gradReady(0, new Float32Array([1, 1, 1]));   // overwrites; gradient 1 unmarked: zero
    expect((await dp.synchronize()).map((g) => Array.from(g))).toEqual([[1, 1, 1], [0, 0]]);
  });

  it('names the mistake: index, double mark, noSync misuse, options', async () => {
    const dp = new DataParallel(comm, [new Float32Array(2)]);
    expect(() => dp.gradReady(1)).toThrow(/index out of range; there are 1 gradients/);
    dp.gradReady(0);
    expect(() => dp.gradReady(0)).toThrow(/already marked ready in this pass/);
    await expect(dp.noSync(() => 0)).rejects.toThrow(/a pass is already under way/);
    await dp.synchronize();
    await dp.noSync(async () => {
      await expect(dp.synchronize()).rejects.toThrow(/inside noSync\(\)/);
    });
    expect(() => dp.gradReady(0, new Float32Array(3))).toThrow(/value has 3 elements/);
    expect(() => new DataParallel(comm, [1], { bucketByte: 4 } as never))
      .toThrow(/unknown option 'bucketByte'.*bucketBytes/);
    expect(() => new DataParallel(comm, [1], { bucketBytes: 2 })).toThrow(/bucketBytes/);
    expect(() => new DataParallel(comm, [])).toThrow(/non-empty array/);
    await expect(new DataParallel(comm, [4]).broadcastParameters())
      .rejects.toThrow(/built from sizes/);
  });
});

describe('ZeroRedundancyOptimizer and LocalSGD in a world of one', () => {
  it('ZeRO-1 over one rank is the plain optimizer, state and all', async () => {
    const a = [Float32Array.from([1, 2, 3]), Float32Array.from([4])];
    const b = a.map((p) => p.slice());
    const zero = new ZeroRedundancyOptimizer(comm, a, (p) => new Adam(p, { lr: 0.1 }));
    const plain = new Adam(b, { lr: 0.1 });
    for (let s = 0; s < 3; s++) {
      const g = [Float32Array.from([0.5, -1, 2]), Float32Array.from([s])];
      await zero.step(g);
      plain.step(g);
    }
    expect(a).toEqual(b);
    expect(zero.stateBytes()).toBe(optimizerStateBytes(plain));   // 2 buffers × 4 floats
    expect(zero.stateBytes()).toBe(32);
    await expect(zero.step([new Float32Array(3)])).rejects.toThrow(/array of 2 gradients/);
    expect(() => zero.loadStateDict({ ...zero.stateDict(), total: 5 }))
      .toThrow(/over 5 elements/);
  });

  it('LocalSGD counts steps and checks its options', async () => {
    const local = new LocalSGD(comm, [new Float32Array(2)], { period: 2, warmupSteps: 1 });
    expect([await local.step(), await local.step(), await local.step()])
      .toEqual([true, false, true]);
    expect(() => new LocalSGD(comm, [new Float32Array(2)], { period: 0 }))
      .toThrow(/period must be a whole number >= 1, got 0/);
  });
});

describe('nodeccl/tfjs arguments', () => {
  it('refuses a wrapped optimizer that is neither tfjs nor a factory', () => {
    expect(() => new DistributedOptimizer(comm, 3 as never))
      .toThrow(/inner must be a tfjs optimizer or a function/);
  });

  it('refuses model.fit when the model has a plain optimizer', async () => {
    const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [2], units: 1 })] });
    model.compile({ optimizer: tf.train.sgd(0.1), loss: 'meanSquaredError' });
    await expect(model.fit(tf.ones([4, 2]), tf.ones([4, 1]), { epochs: 1, verbose: 0,
      callbacks: [new DistributedCallback(comm)] })).rejects.toThrow(/DistributedOptimizer/);
  });
});
