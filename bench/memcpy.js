// SPDX-License-Identifier: Apache-2.0
// Single-core memcpy bandwidth per message size, the ceiling the collectives bench plots: on one
// host every byte a collective delivers is copied at least once by some core.
'use strict';

const { median } = require('./peers/plan');

/**
 * GB/s (10^9 B/s) of Buffer#copy (libc memmove) from one buffer to another for each size, the
 * median of 5 trials; a trial repeats the copy until it has moved at least 64 MiB. Both buffers
 * are written first so that page faults stay out of the timing. Small sizes include the ~0.1 us
 * cost of a call from JS, so the ceiling there is conservative.
 */
function measureMemcpy(sizes) {
  const max = Math.max(...sizes);
  const src = Buffer.alloc(max, 1);
  const dst = Buffer.alloc(max, 2);
  const out = {};
  for (const bytes of sizes) {
    const reps = Math.max(1, Math.min(1e6, Math.ceil((64 * 2 ** 20) / bytes)));
    const trials = [];
    for (let t = 0; t < 5; t++) {
      const t0 = process.hrtime.bigint();
      for (let r = 0; r < reps; r++) src.copy(dst, 0, 0, bytes);
      trials.push(Number(process.hrtime.bigint() - t0) / reps);  // ns per copy
    }
    out[bytes] = bytes / median(trials);  // bytes per ns = GB/s
  }
  return out;
}

module.exports = { measureMemcpy };
