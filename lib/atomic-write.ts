// SPDX-License-Identifier: Apache-2.0
// Durable, atomic file replacement shared by checkpoints and model files: write a temporary file
// in the same folder, fsync it, rename it over the target, then fsync the folder. A crash leaves
// the old file or the new one, never a torn mix.
import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * Replaces `target` with `bytes` through the temporary path `tmp` (same folder as `target`).
 * Throws the system error as is (callers wrap it with their own context); `tmp` is removed.
 */
export function writeFileAtomic(target: string, bytes: Uint8Array, tmp: string): void {
  let fd = -1;
  try {
    fd = fs.openSync(tmp, 'w', 0o644);
    for (let at = 0; at < bytes.length;) at += fs.writeSync(fd, bytes, at, bytes.length - at);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = -1;
    fs.renameSync(tmp, target);
  } catch (e) {
    if (fd >= 0) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  // The rename is durable once the folder's entry is on disk (best effort: not every platform
  // can open a folder for fsync, and the data itself is already synced).
  try {
    const dfd = fs.openSync(path.dirname(path.resolve(target)), 'r');
    try { fs.fsyncSync(dfd); } finally { fs.closeSync(dfd); }
  } catch { /* see above */ }
}
