// SPDX-License-Identifier: Apache-2.0
// JS-side debug logging with the same switches and line format as the native core:
// NODECCL_DEBUG=warn|info|trace, NODECCL_DEBUG_SUBSYS=init,store,... (default all); lines go to
// stderr as "host:pid rank/size [subsys] LEVEL message". Off by default; cheap when off.
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

/** Logs one line when NODECCL_DEBUG selects `lvl` and `subsys`; rank -1 prints "-/-". */
export function log(lvl: LogLevel, subsys: string, rank: number, size: number,
                    message: () => string): void {
  if (level() < LEVELS[lvl] || !subsysEnabled(subsys)) return;
  const who = rank < 0 ? '-/-' : `${rank}/${size}`;
  process.stderr.write(`${os.hostname()}:${process.pid} ${who} [${subsys}] ` +
    `${lvl.toUpperCase()} ${message()}\n`);
}
