// SPDX-License-Identifier: Apache-2.0
// JS-side debug logging with the same switches and line format as the native core:
// NODECCL_DEBUG=warn|info|trace, NODECCL_DEBUG_SUBSYS=init,store,... (default all); lines go to
// stderr as "host:pid rank/size [subsys] LEVEL message", or appended to NODECCL_DEBUG_FILE (a
// path template: %r rank, %p pid, %h host, %% percent; the native core writes to the same file).
// Off by default; cheap when off.
import * as fs from 'node:fs';
import * as os from 'node:os';

const LEVELS = { none: 0, warn: 1, info: 2, trace: 3 } as const;
export type LogLevel = 'warn' | 'info' | 'trace';

function level(): number {
  const v = (process.env.NODECCL_DEBUG ?? '').toLowerCase();
  return v === '' ? 0 : (LEVELS as Record<string, number>)[v] ?? 1;
}

function subsysEnabled(subsys: string): boolean {
  const v = process.env.NODECCL_DEBUG_SUBSYS;
  return !v || v.split(',').map((s) => s.trim()).includes(subsys);
}

/**
 * Expands a NODECCL_DEBUG_FILE template for `rank` as the native core does: %r the rank (RANK
 * from the environment, else "x", when no rank is known yet), %p the pid, %h the host name.
 */
export function logFilePath(template: string, rank: number): string {
  return template.replace(/%(.?)/g, (all, c: string) => {
    if (c === 'r') return rank >= 0 ? String(rank) : process.env.RANK || 'x';
    if (c === 'p') return String(process.pid);
    if (c === 'h') return os.hostname();
    if (c === '%') return '%';
    return all;
  });
}

const files = new Map<string, number>();  // path -> fd, opened once in append mode

// Writes a line to stderr or the debug file; falls back to stderr (saying why, once) when the
// file cannot be opened.
function write(rank: number, line: string): void {
  const template = process.env.NODECCL_DEBUG_FILE;
  if (!template) {
    process.stderr.write(line);
    return;
  }
  const path = logFilePath(template, rank);
  let fd = files.get(path);
  if (fd === undefined) {
    try {
      fd = fs.openSync(path, 'a');
    } catch (e) {
      process.stderr.write(`nodeccl: cannot open NODECCL_DEBUG_FILE ${path}: ` +
        `${(e as Error).message}; logging to stderr\n`);
      fd = 2;
    }
    files.set(path, fd);
  }
  fs.writeSync(fd, line);
}

/** Logs one line when NODECCL_DEBUG selects `lvl` and `subsys`; rank -1 prints "-/-". */
export function log(lvl: LogLevel, subsys: string, rank: number, size: number,
                    message: () => string): void {
  if (level() < LEVELS[lvl] || !subsysEnabled(subsys)) return;
  const who = rank < 0 ? '-/-' : `${rank}/${size}`;
  write(rank, `${os.hostname()}:${process.pid} ${who} [${subsys}] ` +
    `${lvl.toUpperCase()} ${message()}\n`);
}
