// SPDX-License-Identifier: Apache-2.0
// What a user gets from the registry: `npm pack`, install the tarball into an empty folder with
// install scripts disabled (so nothing can be compiled there), then run a 2-rank all-reduce
// with the installed nodeccl-run. Proves the package carries its prebuilt binary and dist/.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/world';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nodeccl-pack-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const SCRIPT = `
const nodeccl = require('nodeccl');
(async () => {
  const comm = await nodeccl.init();
  const x = new Float32Array([comm.rank + 1, 2]);
  await comm.allReduce(x, { op: 'sum' });
  console.log('result', comm.rank, JSON.stringify(Array.from(x)));
  await comm.destroy();
})().catch((e) => { console.error(e); process.exit(1); });
`;

describe('the packed package', () => {
  it('installs without scripts and runs a 2-rank all-reduce', () => {
    const prebuilt = path.join(ROOT, 'prebuilds', `${process.platform}-${process.arch}`);
    expect(fs.existsSync(prebuilt), 'run `npm run prebuildify` first (npm test does)').toBe(true);

    const packOut = execFileSync('npm', ['pack', '--ignore-scripts', '--json',
      '--pack-destination', tmp], { cwd: ROOT, encoding: 'utf8' });
    const tarball = path.join(tmp, JSON.parse(packOut)[0].filename as string);
    const files = (JSON.parse(packOut)[0].files as { path: string }[]).map((f) => f.path);
    expect(files).toContain('dist/index.js');
    expect(files.some((f) => f.startsWith('prebuilds/') && f.endsWith('.node'))).toBe(true);

    const app = path.join(tmp, 'app');
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, 'package.json'), '{"name":"app","private":true}\n');
    fs.writeFileSync(path.join(app, 'job.js'), SCRIPT);
    execFileSync('npm', ['install', '--ignore-scripts', '--no-audit', '--no-fund',
      '--prefer-offline', tarball], { cwd: app, stdio: 'pipe' });
    expect(fs.existsSync(path.join(app, 'node_modules', 'nodeccl', 'build'))).toBe(false);

    const run = spawnSync(path.join(app, 'node_modules', '.bin', 'nodeccl-run'),
      ['-np', '2', 'node', 'job.js'], { cwd: app, encoding: 'utf8', timeout: 60_000 });
    expect(run.status, run.stderr + run.stdout).toBe(0);
    expect(run.stdout).toMatch(/\[0\] result 0 \[3,4\]/);
    expect(run.stdout).toMatch(/\[1\] result 1 \[3,4\]/);
  });
});
