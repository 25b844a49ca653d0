#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// Runs the core's C++ test binary built by `npm run build:native` (build/Release), passing on
// an optional name filter: `npm run test:cpp -- allreduce`.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const bin = path.join(__dirname, '..', 'build', 'Release', 'nodeccl_cpp_tests');
if (!fs.existsSync(bin)) {
  console.error(`run-cpp-tests: ${bin} is missing; run \`npm run build:native\` first`);
  process.exit(2);
}
const r = spawnSync(bin, process.argv.slice(2), { stdio: 'inherit' });
if (r.error) {
  console.error(`run-cpp-tests: could not start ${bin}: ${r.error.message}`);
  process.exit(2);
}
process.exit(r.status === null ? 1 : r.status);
