// SPDX-License-Identifier: Apache-2.0
// Job tokens: ranks sharing NODECCL_TOKEN form a job; a process with another token, or none,
// is refused by the store with a clear error; nodeccl-run hands its ranks a generated token.
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FIXTURES, lastJson, ROOT, runRanks } from '../helpers/world';

describe('job token', () => {
  it('ranks with the same token run; the sum is right', async () => {
    const results = await runRanks('token.js', 2, { env: { NODECCL_TOKEN: 'same-secret' } });
    for (const r of results) expect(lastJson(r), r.stderr).toMatchObject({ outcome: 'ok', sum: 3 });
  });

  for (const [label, token] of [['another token', 'wrong-secret'], ['no token', '']] as const) {
    it(`a process with ${label} is refused with a clear error`, async () => {
      const results = await runRanks('token.js', 2, {
        env: { INIT_MS: '3000' },
        rankEnv: (rank) => ({ NODECCL_TOKEN: rank === 0 ? 'job-secret' : token }),
        timeoutMs: 30_000,
      });
      const intruder = lastJson(results[1]);
      expect(intruder.outcome, results[1].stderr).toBe('error');
      expect(intruder.message).toMatch(token ? /refused this process's job token/
        : /requires a job token and this process has none/);
      expect(lastJson(results[0]).outcome).toBe('error');  // rank 1 never joined
    }, 40_000);
  }

  it('nodeccl-run generates one token for its ranks', async () => {
    const env = { ...process.env };
    delete env.NODECCL_TOKEN;
    const child = spawn(process.execPath, [path.join(ROOT, 'dist', 'cli', 'run.js'), '-np', '2',
      'node', path.join(FIXTURES, 'token.js')], { cwd: ROOT, env });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    const code = await new Promise((resolve) => child.on('close', resolve));
    const lines = out.split('\n').filter((l) => l.includes('{')).map((l) => JSON.parse(
      l.slice(l.indexOf('{'))));
    expect(code, out).toBe(0);
    expect(lines).toHaveLength(2);
    for (const l of lines) expect(l).toMatchObject({ outcome: 'ok', sum: 3, hasToken: true });
  }, 40_000);
});
