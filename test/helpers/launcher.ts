// SPDX-License-Identifier: Apache-2.0
// Running nodeccl-run as a real process in tests: which build of the CLI to run, the test
// runner's environment without any launcher's variables, and launch() collecting its output.
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const ROOT = path.resolve(__dirname, '..', '..');
const DIST_RUN = path.join(ROOT, 'dist', 'cli', 'run.js');
const SOURCES = ['lib/cli/run.ts', 'lib/cli/hosts.ts', 'lib/env.ts', 'lib/errors.ts',
  'lib/options.ts'];

/**
 * dist/cli/run.js when it is newer than the sources; otherwise the CLI built alone into
 * build-test/<dir>/ (lib/index.ts may not build while other modules are in progress, and each
 * test file builds into a folder of its own so that files running at once do not collide).
 */
export function launcherScript(dir: string): string {
  const mtime = (p: string) => fs.statSync(path.join(ROOT, p)).mtimeMs;
  const fresh = fs.existsSync(DIST_RUN) &&
    SOURCES.every((s) => mtime(s) <= fs.statSync(DIST_RUN).mtimeMs);
  if (fresh) return DIST_RUN;
  execFileSync('npx', ['tsup', 'lib/cli/run.ts', '--format', 'cjs', '-d', `build-test/${dir}`,
    '--no-config', '--silent', '--target', 'node18'], { cwd: ROOT, stdio: 'inherit' });
  return path.join(ROOT, 'build-test', dir, 'run.js');
}

export interface Launch {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface LaunchOptions {
  env?: Record<string, string>;
  /** Called with the whole stdout so far after each chunk; may signal the launcher. */
  onStdout?: (stdout: string, pid: number) => void;
}

const LAUNCHER_VARS = new RegExp('^(RANK|WORLD_SIZE|LOCAL_RANK|LOCAL_WORLD_SIZE|NODE_RANK|' +
  'GROUP_RANK|MASTER_ADDR|MASTER_PORT|NODECCL_.*|OMPI_.*|PMI_.*|SLURM_.*|MPI_LOCAL.*)$');

/**
 * The test runner's environment without any launcher's variables (NODECCL_ADDON is kept, so
 * that a development addon reaches the ranks).
 */
export function cleanEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && (k === 'NODECCL_ADDON' || !LAUNCHER_VARS.test(k))) env[k] = v;
  }
  return env;
}

/** Runs `node <runJs> ...args` from the repository root; killed after 30 s. */
export function launch(runJs: string, args: string[], options: LaunchOptions = {}):
    Promise<Launch> {
  const started = Date.now();
  const child = spawn(process.execPath, [runJs, ...args], {
    cwd: ROOT, env: { ...cleanEnv(), ...options.env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => {
    stdout += s;
    options.onStdout?.(stdout, child.pid!);
  });
  child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s; });
  const guard = setTimeout(() => child.kill('SIGKILL'), 30_000);
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(guard);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started });
    });
  });
}

/** Whether process `pid` still exists. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
