// SPDX-License-Identifier: Apache-2.0
// Atomic checkpoint files for the parameter servers: the state is serialized (v8, so
// Float32Arrays keep every bit), written to a temporary file in the same folder, fsynced,
// renamed over the old file, and the folder fsynced. A crash at any point leaves either the
// previous checkpoint or the new one, never a mix: rename(2) replaces the name atomically.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as v8 from 'node:v8';
import { NodecclError } from '../errors';
import { writeFileAtomic } from '../atomic-write';

/** Marks our files; loading anything else fails clearly. */
export const CHECKPOINT_FORMAT = 'nodeccl.ps/1';

/** Suffix of temporary files: `<file>.tmp-<pid>`; leftovers of a crash are ignored. */
const TMP_INFIX = '.tmp-';

function ioError(what: string, file: string, e: unknown): NodecclError {
  const why = e instanceof Error ? e.message : String(e);
  return new NodecclError('ERR_NODECCL_IO', `parameter server checkpoint: ${what} ${file} ` +
    `failed: ${why}; check that the folder exists, is writable and has space`);
}

/**
 * Writes `state` to `file` atomically and durably (temp + fsync + rename + fsync of the
 * folder). Synchronous, so the state cannot change while it is written.
 * @throws NodecclError ERR_NODECCL_IO naming the file; the previous checkpoint is kept.
 */
export function writeCheckpoint(file: string, state: Record<string, unknown>): void {
  const bytes = v8.serialize({ format: CHECKPOINT_FORMAT, ...state });
  const tmp = `${file}${TMP_INFIX}${process.pid}`;
  try {
    writeFileAtomic(file, bytes, tmp);
  } catch (e) {
    throw ioError('writing', file, e);
  }
  removeStaleTemps(file);
}

/** Removes temporary files of `file` left by writers that died (not a live one's own). */
function removeStaleTemps(file: string): void {
  const dir = path.dirname(path.resolve(file));
  const prefix = `${path.basename(file)}${TMP_INFIX}`;
  for (const name of fs.readdirSync(dir)) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(name.slice(prefix.length));
    let alive = pid === process.pid;
    try {
      if (!alive && Number.isSafeInteger(pid) && pid > 0) alive = process.kill(pid, 0);
    } catch {
      alive = false;
    }
    if (!alive) fs.rmSync(path.join(dir, name), { force: true });
  }
}

/**
 * Reads a checkpoint written by writeCheckpoint, or returns null when `file` does not exist.
 * Temporary files are never read, so a write cut short leaves the previous state readable.
 * @throws NodecclError ERR_NODECCL_IO when the file exists but is not a nodeccl checkpoint.
 */
export function readCheckpoint(file: string): Record<string, unknown> | null {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw ioError('reading', file, e);
  }
  let state: unknown;
  try {
    state = v8.deserialize(bytes);
  } catch (e) {
    throw ioError('decoding', file, e);
  }
  const format = (state as { format?: unknown } | null)?.format;
  if (format !== CHECKPOINT_FORMAT) {
    throw ioError('checking', file, new Error(`its format is ${JSON.stringify(format)}, ` +
      `expected '${CHECKPOINT_FORMAT}'`));
  }
  return state as Record<string, unknown>;
}
