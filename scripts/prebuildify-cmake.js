#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// prebuildify only knows how to call node-gyp ("node-gyp rebuild --release ..."); this script
// stands in for it and builds with cmake-js instead (incrementally, into build/Release, where
// prebuildify then finds, strips and copies nodeccl.node into prebuilds/<platform>-<arch>/).
'use strict';
const { spawnSync } = require('node:child_process');

const args = process.argv.slice(2);
if (args[0] !== 'rebuild') {
  console.error(`prebuildify-cmake: expected "rebuild" from prebuildify, got: ${args.join(' ')}`);
  process.exit(2);
}
const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
const mode = args.includes('--debug') ? ['--debug'] : [];
const r = spawnSync(process.execPath, [cmakeJs, 'compile', '--out', 'build', ...mode],
  { stdio: 'inherit' });
process.exit(r.status === null ? 1 : r.status);
