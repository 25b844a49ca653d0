// SPDX-License-Identifier: Apache-2.0
// NCCL across 2 real processes. With two or more GPUs each rank all-reduces a CUDA tensor over
// NCCL (unique id shared through the job's store) and checks the sum; without them every rank
// sees createNcclCommunicator() reject with ERR_NODECCL_LOAD and the CPU communicator still
// works afterwards (the failure leaves the job usable).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, runRanks } from '../helpers/world';

// The rank script, written to a temporary file: it loads nodeccl from the package root.
const SCRIPT = `'use strict';
const nodeccl = require(${JSON.stringify(ROOT)});
(async () => {
  const comm = await nodeccl.init();
  const out = { rank: comm.rank, available: nodeccl.cuda.available() };
  const gpus = out.available ? nodeccl.cuda.deviceCount() : 0;
  if (gpus >= comm.size) {
    const nccl = await nodeccl.cuda.createNcclCommunicator(comm);
    const x = nodeccl.cuda.tensor(Float32Array.from({ length: 1000 }, (_, i) => comm.rank + i));
    await nccl.allReduce(x);
    // Sum over ranks r of (r + i) = size * i + size * (size - 1) / 2; element 10 of 2 ranks: 21.
    out.nccl = x.toHost().data[10];
    nccl.destroy();
    x.dispose();
  } else {
    try {
      await nodeccl.cuda.createNcclCommunicator(comm);
      out.nccl = 'created without a usable GPU';
    } catch (e) {
      out.error = e.code;
    }
  }
  const t = new Float32Array([comm.rank + 1]);
  await comm.allReduce(t);
  out.cpu = t[0];
  console.log(JSON.stringify(out));
  await comm.destroy();
})().catch((e) => { console.error(e); process.exit(1); });
`;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nodeccl-cuda-e2e-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('NCCL communicator across processes', () => {
  it('all-reduces over NCCL with a GPU per rank, or refuses cleanly without', async () => {
    const file = path.join(dir, 'rank.js');
    fs.writeFileSync(file, SCRIPT);
    const results = await runRanks(file, 2, { timeoutMs: 60_000 });
    for (const r of results) {
      expect(r.code, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as
        { available: boolean; nccl?: number; error?: string; cpu: number };
      expect(out.cpu).toBe(3);  // 1 + 2
      if (out.nccl !== undefined) expect(out.nccl).toBe(21);
      else expect(out.error).toBe('ERR_NODECCL_LOAD');
    }
  });
});
