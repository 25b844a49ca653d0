// SPDX-License-Identifier: Apache-2.0
// NODECCL_TRACE: a 2-rank all-reduce over TCP writes one Chrome/Perfetto trace per rank
// (prefix.<rank>.<pid>.json) holding the all-reduce, its sendRecv steps (peer and bytes, inside
// the all-reduce's span) and the waits inside those steps; ranks killed with SIGKILL leave a
// trace that still holds their steps (there over shared memory: the staged algorithm's phases).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { lastJson, runRanks } from '../helpers/world';

interface TraceEvent {
  name: string; cat: string; ph: string; ts: number; dur: number; pid: number; tid: number;
  args: Record<string, number | string>;
}

// A trace file is a JSON array of events; a process that died before exit leaves it without
// its closing bracket (trace viewers accept that), which is added here to parse it.
function readTrace(file: string): TraceEvent[] {
  const text = fs.readFileSync(file, 'utf8').trimEnd();
  return JSON.parse(text.endsWith(']') ? text : `${text}\n]`) as TraceEvent[];
}

describe('NODECCL_TRACE', () => {
  it('writes a parseable trace per rank with the all-reduce, its steps and waits', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nodeccl-trace-'));
    const prefix = path.join(dir, 'job');
    const results = await runRanks('trace-allreduce.js', 2,
      { env: { NODECCL_TRACE: prefix, NODECCL_TRANSPORT: 'tcp' }, timeoutMs: 30_000 });
    let waitCount = 0;
    for (const r of results) {
      expect(r.code, r.stderr).toBe(0);
      const out = lastJson(r);
      expect(out.value).toBe(3);  // 1 + 2

      // The file is named by rank and pid, and is one JSON array in the trace event format,
      // closed at exit.
      const file = `${prefix}.${r.rank}.${out.pid}.json`;
      expect(fs.readFileSync(file, 'utf8').trimEnd().endsWith(']')).toBe(true);
      const events = readTrace(file);
      const complete = events.filter((e) => e.ph === 'X');
      expect(complete.every((e) => e.pid === out.pid && e.dur >= 0)).toBe(true);

      // Exactly one all-reduce, with the count and step it was called with.
      const ops = complete.filter((e) => e.cat === 'op' && e.name === 'allReduce');
      expect(ops.length).toBe(1);
      expect(ops[0].args.count).toBe(1 << 16);
      expect(ops[0].args.step).toBe(1);

      // Its steps exchange data with the other rank, all within the all-reduce's span, and
      // together carry at least the half of the array that a 2-rank all-reduce must send.
      const peer = 1 - r.rank;
      const steps = complete.filter((e) => e.name === 'sendRecv' && e.args.op === 'allReduce');
      expect(steps.length).toBeGreaterThan(0);
      const sent = steps.reduce((n, e) => n + Number(e.args.send_bytes ?? 0), 0);
      expect(sent).toBeGreaterThanOrEqual((1 << 16) * 4 / 2);
      for (const s of steps) {
        expect([s.args.send_peer, s.args.recv_peer]).toContain(peer);
        expect(s.ts).toBeGreaterThanOrEqual(ops[0].ts);
        expect(s.ts + s.dur).toBeLessThanOrEqual(ops[0].ts + ops[0].dur + 0.01);
      }

      // Waits (time blocked on the sockets) name the peer and lie inside a step. A rank whose
      // data was all there in time has none, but the first to arrive waits for the other.
      const waits = complete.filter((e) => e.cat === 'wait');
      waitCount += waits.length;
      for (const w of waits) {
        expect([w.args.send_peer, w.args.recv_peer]).toContain(peer);
        expect(steps.some((s) => w.ts >= s.ts && w.ts + w.dur <= s.ts + s.dur + 0.01))
          .toBe(true);
      }
    }
    expect(waitCount).toBeGreaterThan(0);
    fs.rmSync(dir, { recursive: true, force: true });
  }, 40_000);

  it('keeps the steps of ranks killed with SIGKILL', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nodeccl-trace-'));
    const prefix = path.join(dir, 'job');
    const results = await runRanks('trace-allreduce.js', 2,
      { env: { NODECCL_TRACE: prefix, CRASH: '1' }, timeoutMs: 30_000 });
    for (const r of results) {
      expect(r.signal, r.stderr).toBe('SIGKILL');
      const out = lastJson(r);
      const events = readTrace(`${prefix}.${r.rank}.${out.pid}.json`);
      // Over shared memory this all-reduce (256 KiB) is staged: its steps are the staging
      // copy, the two flag exchanges, the reduction and the copy out (coll/staged.h). A call
      // that the worker thread finished (its peer was late for the JS thread's spin) also
      // shows the blocking sendRecv steps of the exchange it finished there.
      const steps = events.filter((e) => e.cat === 'step' && e.args.op === 'allReduce');
      expect(steps.map((e) => e.name).filter((name) => name !== 'sendRecv'))
        .toEqual(['stage', 'sync', 'reduce', 'sync', 'copy out']);
      expect(steps.every((e) => e.pid === out.pid)).toBe(true);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }, 40_000);
});
