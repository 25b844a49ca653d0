// SPDX-License-Identifier: Apache-2.0
// Test helper: runs a script as N real processes over loopback (the environment nodeccl-run
// would give them) and collects each rank's exit status and output.
import { type ChildProcess, spawn } from 'node:child_process';
import * as net from 'node:net';
import * as path from 'node:path';

export const ROOT = path.resolve(__dirname, '..', '..');
export const FIXTURES = path.join(ROOT, 'test', 'fixtures');

export interface RankResult {
  rank: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** A TCP port that was free a moment ago (bind port 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export interface RunOptions {
  args?: string[];
  env?: Record<string, string>;
  /** Per-rank extra environment. */
  rankEnv?: (rank: number) => Record<string, string>;
  /** Kill every rank still running after this long (default 60 s). */
  timeoutMs?: number;
  /** Called once every rank has started, with the child processes. */
  onStart?: (children: ChildProcess[]) => void;
}

/** Runs `script` (a path under test/fixtures or absolute) as `n` ranks. */
export async function runRanks(script: string, n: number, options: RunOptions = {}):
    Promise<RankResult[]> {
  const port = await freePort();
  const file = path.isAbsolute(script) ? script : path.join(FIXTURES, script);
  const children: ChildProcess[] = [];
  const results: Promise<RankResult>[] = [];
  for (let rank = 0; rank < n; rank++) {
    const env = {
      ...process.env, RANK: String(rank), WORLD_SIZE: String(n), LOCAL_RANK: String(rank),
      MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), ...options.env,
      ...(options.rankEnv ? options.rankEnv(rank) : {}),
    };
    const child = spawn(process.execPath, [file, ...(options.args ?? [])],
      { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    results.push(new Promise((resolve) => {
      let stdout = '';
      let stderr = '';
      child.stdout?.on('data', (d) => { stdout += d; });
      child.stderr?.on('data', (d) => { stderr += d; });
      child.on('close', (code, signal) => resolve({ rank, code, signal, stdout, stderr }));
    }));
  }
  options.onStart?.(children);
  const timer = setTimeout(() => children.forEach((c) => c.kill('SIGKILL')),
    options.timeoutMs ?? 60_000);
  try {
    return await Promise.all(results);
  } finally {
    clearTimeout(timer);
  }
}

/** Parses the last line of a rank's stdout that is a JSON object. */
export function lastJson(r: RankResult): Record<string, unknown> {
  const lines = r.stdout.trim().split('\n').reverse();
  for (const line of lines) {
    if (line.startsWith('{')) return JSON.parse(line) as Record<string, unknown>;
  }
  throw new Error(`rank ${r.rank} printed no JSON (exit ${r.code}, signal ${r.signal}).\n` +
    `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
}
