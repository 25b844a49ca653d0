// SPDX-License-Identifier: Apache-2.0
// Builds lib/ into dist/: ESM + CJS + .d.ts for the library, CJS for the launcher CLI.
import { defineConfig } from 'tsup';

export default defineConfig([
  {
    entry: { index: 'lib/index.ts', tfjs: 'lib/tfjs/index.ts' },
    format: ['esm', 'cjs'],
    dts: true,
    // Shared code goes into chunks that both entries load, so `nodeccl` and `nodeccl/tfjs`
    // share one copy of each class (instanceof works across them), in CJS as in ESM.
    splitting: true,
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
