// SPDX-License-Identifier: Apache-2.0
// Builds lib/ into dist/: ESM + CJS + .d.ts for the library, CJS for the launcher CLI.
import { defineConfig } from 'tsup';

export default defineConfig([
  {
    entry: { index: 'lib/index.ts' },
    format: ['esm', 'cjs'],
    dts: true,
    shims: true,
    sourcemap: true,
    clean: false,
    target: 'node18',
    outDir: 'dist',
  },
  {
    entry: { 'cli/run': 'lib/cli/run.ts' },
    format: ['cjs'],
    sourcemap: true,
    clean: false,
    target: 'node18',
    outDir: 'dist',
    banner: { js: '#!/usr/bin/env node' },
  },
]);
