// SPDX-License-Identifier: Apache-2.0
// vitest global setup: the tests use the built addon and dist/ (fixtures `require('nodeccl')`).
// `npm test` builds both first; a bare `npx vitest` builds what is missing.
import { execSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export default function setup(): void {
  const root = path.resolve(__dirname, '..', '..');
  if (!fs.existsSync(path.join(root, 'build', 'Release', 'nodeccl.node'))) {
    execSync('npm run build:native', { cwd: root, stdio: 'inherit' });
  }
  if (!fs.existsSync(path.join(root, 'dist', 'index.js'))) {
    execSync('npm run build:ts', { cwd: root, stdio: 'inherit' });
  }
}
