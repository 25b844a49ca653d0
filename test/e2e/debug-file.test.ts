// SPDX-License-Identifier: Apache-2.0
// NODECCL_DEBUG_FILE: each rank writes its log lines (native and JS, one format) to the file the
// template names (%r rank, %p pid), and a timed-out operation logs at warn what it waited for
// and from whom.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { logFilePath } from '../../lib/log';
import { runRanks } from '../helpers/world';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nodeccl-debug-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('NODECCL_DEBUG_FILE', () => {
  it('expands %r, %p, %h and %% like the native core', () => {
    expect(logFilePath('/x/n.%r.%p.log', 3)).toBe(`/x/n.3.${process.pid}.log`);
    expect(logFilePath('%h-%%-%q', 0)).toBe(`${os.hostname()}-%-%q`);
  });

  it('gives each rank its own file, and a timeout names what was awaited', async () => {
    const results = await runRanks('debug-timeout.js', 2, {
      timeoutMs: 30_000,
      env: {
        NODECCL_DEBUG: 'info', NODECCL_TRANSPORT: 'tcp',
        NODECCL_DEBUG_FILE: path.join(dir, 'nodeccl.%r.%p.log'),
      },
    });
    const out = results.map((r) => JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}'));
    expect(out.map((o) => o.code)).toEqual(['ERR_NODECCL_TIMEOUT', 'none']);
    for (const o of out) {
      const file = path.join(dir, `nodeccl.${o.rank}.${o.pid}.log`);
      const lines = fs.readFileSync(file, 'utf8').trim().split('\n');
      // Every line: "host:pid rank/size [subsys] LEVEL message", from JS (init) and native.
      for (const line of lines) {
        expect(line).toMatch(new RegExp(`^\\S+:${o.pid} (${o.rank}/2|-/-) \\[\\w+\\] ` +
          '(WARN|INFO|TRACE) '));
      }
      expect(lines.some((l) => / \[init\] INFO world from /.test(l))).toBe(true);  // lib/log.ts
      expect(lines.some((l) => /communicator destroyed/.test(l))).toBe(true);    // log.cc
      if (o.rank === 0) {
        expect(lines.some((l) => /\[tcp\] WARN .*timed out after 500 ms waiting for rank 1 /
          .test(l))).toBe(true);
      }
    }
    expect(results.every((r) => !/ \[\w+\] (INFO|WARN) /.test(r.stderr))).toBe(true);
  }, 40_000);
});
