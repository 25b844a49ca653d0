// SPDX-License-Identifier: Apache-2.0
// Tests run against the built addon (build/Release) and the TypeScript sources.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/setup/global.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Multi-process tests start several node processes: keep files sequential on 2 cores.
    fileParallelism: false,
    pool: 'forks',
  },
});
