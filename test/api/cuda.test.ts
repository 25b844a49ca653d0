// SPDX-License-Identifier: Apache-2.0
// The CUDA API without a GPU: available()/why() explain the missing plugin, driver or device;
// every path that needs a device refuses with ERR_NODECCL_LOAD and that reason; CPU classes
// refuse CUDA tensors cleanly; the NCCL loader reports a missing library and a too-old one (a
// fake libnccl.so.2 compiled here). With a GPU, a round trip and Adam against the CPU kernel.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import * as cuda from '../../lib/cuda';
import { NodecclError, NodecclTypeError } from '../../lib/errors';
import { init } from '../../lib/init';
import { Adam } from '../../lib/optim';
import { tensor } from '../../lib/tensor';

const reason = cuda.why();
const pluginBuilt = reason === null || !reason.includes('plugin could not be loaded');
const root = path.resolve(__dirname, '..', '..');

function thrown(fn: () => unknown): Error & { code?: string } {
  try {
    fn();
  } catch (e) {
    return e as Error & { code?: string };
  }
  throw new Error('expected a throw');
}

// A CudaTensor-shaped object: none can be made without a device, but the CPU classes must
// still refuse one cleanly if it reaches them.
function fakeCudaTensor(): cuda.CudaTensor {
  const t = Object.create(cuda.CudaTensor.prototype) as cuda.CudaTensor;
  Object.defineProperty(t, Symbol.for('nodeccl.CudaTensor'), { value: true });
  return t;
}

describe.skipIf(reason === null)('cuda without a usable GPU', () => {
  it('says why CUDA is unavailable', () => {
    expect(cuda.available()).toBe(false);
    expect(typeof reason).toBe('string');
    // Either the plugin was not built (no nvcc), or it was and the driver/device is missing.
    expect(reason).toMatch(/plugin could not be loaded|no CUDA driver|no CUDA device|CUDA failed/);
    if (pluginBuilt) expect(reason).toMatch(/cudaError\w+/);
  });

  it('says where it looked when the plugin is missing (an addon built without nvcc)', () => {
    const missing = path.join(os.tmpdir(), 'nodeccl-no-plugin', 'nodeccl_cuda.so');
    const script = "const c = require('nodeccl').cuda; " +
      'console.log(JSON.stringify({ available: c.available(), why: c.why() }));';
    const r = spawnSync(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8',
      env: { ...process.env, NODECCL_CUDA_PLUGIN: missing } });
    const out = JSON.parse(r.stdout.trim()) as { available: boolean; why: string };
    expect(out.available).toBe(false);
    expect(out.why).toContain(`the CUDA plugin could not be loaded from ${missing}`);
    expect(out.why).toContain('nvcc');
  });

  it('refuses to make CUDA tensors, with the reason', () => {
    for (const make of [() => cuda.zeros([2, 3]), () => cuda.tensor(new Float32Array(4)),
                        () => cuda.deviceCount()]) {
      const e = thrown(make);
      expect(e).toBeInstanceOf(NodecclError);
      expect(e.code).toBe('ERR_NODECCL_LOAD');
      expect(e.message).toContain('CUDA is not available');
      expect(e.message).toContain(reason!);
    }
  });

  it('GPU optimizers refuse host arrays with a hint', () => {
    const e = thrown(() => new cuda.Adam([new Float32Array(4)] as never));
    expect(e).toBeInstanceOf(NodecclTypeError);
    expect(e.message).toMatch(/params\[0\] must be a float32 CUDA tensor.*nodeccl\.Adam/);
    expect(thrown(() => new cuda.SGD([] as never))).toBeInstanceOf(NodecclTypeError);
  });

  it('GPU optimizers check their options before needing a device', () => {
    // A float32 CUDA tensor as far as the argument checks can tell.
    const fake = fakeCudaTensor();
    Object.assign(fake, { dtype: 'float32', shape: [4], device: 0 });
    const badKey = thrown(() => new cuda.Adam([fake], { lrr: 0.1 }));
    expect(badKey).toBeInstanceOf(NodecclTypeError);
    expect(badKey.message).toContain('lr');
    const badRange = thrown(() => new cuda.AdamW([fake], { betas: [1.5, 0.999] }));
    expect(badRange.code).toBe('ERR_NODECCL_INVALID_ARGUMENT');
    expect(badRange.message).toContain('betas[0]');
    const noDevice = thrown(() => new cuda.SGD([fake], { lr: 0.1, momentum: 0.9 }));
    expect(noDevice.code).toBe('ERR_NODECCL_LOAD');
    expect(noDevice.message).toContain('cuda.zeros(): CUDA is not available');
  });

  it('CPU optimizers and communicators refuse a CUDA tensor cleanly', async () => {
    const fake = fakeCudaTensor();
    expect(cuda.isCudaTensor(fake)).toBe(true);
    expect(cuda.isCudaTensor(tensor([1, 2]))).toBe(false);
    expect(thrown(() => new Adam([fake as never]))).toBeInstanceOf(NodecclTypeError);

    const comm = await init({ rank: 0, worldSize: 1 });
    try {
      await expect(comm.allReduce(fake as never)).rejects.toBeInstanceOf(NodecclTypeError);
      const nccl = cuda.createNcclCommunicator(comm);
      await expect(nccl).rejects.toMatchObject({ code: 'ERR_NODECCL_LOAD' });
    } finally {
      await comm.destroy();
    }
  });
});

// Each case runs in a child process: NCCL is loaded (or not) once per process.
function ncclVersionIn(env: Record<string, string>): { code?: string; message: string } {
  const script = "try { const v = require('nodeccl').cuda.ncclVersion(); " +
    'console.log(JSON.stringify({ message: JSON.stringify(v) })); } catch (e) { ' +
    'console.log(JSON.stringify({ code: e.code, message: e.message })); }';
  const r = spawnSync(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8',
    env: { ...process.env, ...env } });
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as { code?: string; message: string };
}

function hasCc(): boolean {
  return spawnSync('cc', ['--version']).status === 0;
}

describe.skipIf(!pluginBuilt)('NCCL loader', () => {
  it('reports a missing library with the path tried and the fix', () => {
    const missing = path.join(os.tmpdir(), 'nodeccl-no-such-dir', 'libnccl.so.2');
    const r = ncclVersionIn({ NODECCL_NCCL_LIB: missing });
    expect(r.code).toBe('ERR_NODECCL_LOAD');
    expect(r.message).toContain(missing);
    expect(r.message).toContain('NODECCL_NCCL_LIB');
  });

  it.skipIf(!hasCc())('refuses an NCCL older than 2.10, and one missing functions', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nodeccl-fake-nccl-'));
    try {
      // ncclGetVersion's code for 2.7.8 (the pre-2.9 encoding: 2 * 1000 + 7 * 100 + 8).
      const build = (name: string, code: number) => {
        const src = path.join(dir, `${name}.c`);
        fs.writeFileSync(src, `int ncclGetVersion(int* v) { *v = ${code}; return 0; }\n`);
        const lib = path.join(dir, `${name}.so.2`);
        execFileSync('cc', ['-shared', '-fPIC', '-o', lib, src]);
        return lib;
      };
      const old = ncclVersionIn({ NODECCL_NCCL_LIB: build('old', 2708) });
      expect(old.code).toBe('ERR_NODECCL_LOAD');
      expect(old.message).toMatch(/version 2\.7\.8 .*needs 2\.10 or newer/);

      // 2.18.5 = 2 * 10000 + 18 * 100 + 5, but nothing else exported.
      const partial = ncclVersionIn({ NODECCL_NCCL_LIB: build('partial', 21805) });
      expect(partial.code).toBe('ERR_NODECCL_LOAD');
      expect(partial.message).toContain('has no ncclGetUniqueId');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(reason !== null)('cuda with a GPU', () => {
  it('round-trips a tensor and disposes it', () => {
    const values = Float32Array.from({ length: 1000 }, (_, i) => i * 0.5);
    const host = tensor(values, { shape: [10, 100] });
    const dev = cuda.tensor(host);
    expect(dev.shape).toEqual([10, 100]);
    expect(Array.from(dev.toHost().data)).toEqual(Array.from(host.data));
    dev.dispose();
    expect(dev.disposed).toBe(true);
    expect(thrown(() => dev.toHost()).code).toBe('ERR_NODECCL_DESTROYED');
  });

  it('Adam on the GPU gives the CPU kernel bits', () => {
    const p = Float32Array.from({ length: 4099 }, (_, i) => Math.sin(i));
    const g = Float32Array.from({ length: 4099 }, (_, i) => Math.cos(i) * 0.1);
    const cpuP = p.slice();
    const cpu = new Adam([cpuP], { lr: 0.01 });
    const dp = cuda.tensor(p), dg = cuda.tensor(g);
    const gpu = new cuda.Adam([dp], { lr: 0.01 });
    for (let s = 0; s < 3; s++) {
      cpu.step([g]);
      gpu.step([dg]);
    }
    expect(Array.from(dp.toHost().data as Float32Array)).toEqual(Array.from(cpuP));
    gpu.dispose();
    dp.dispose();
    dg.dispose();
  });
});
