// SPDX-License-Identifier: Apache-2.0
// nodeccl-run: starts the ranks of a job on this host (`-np N`), or, under mpirun or srun, turns
// the launcher's variables into RANK/WORLD_SIZE/... for the one command it starts. It prefixes
// output lines with the rank, forwards signals, and stops every rank when one fails.
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as net from 'node:net';
import * as os from 'node:os';
import { Command, InvalidArgumentError, Option } from 'commander';
import { detectLauncher, resolveWorld, type WorldInfo } from '../env';
import { version } from '../../package.json';

const NAME = 'nodeccl-run';
/** Seconds a stopped rank gets between SIGTERM and SIGKILL, unless --grace says otherwise. */
const DEFAULT_GRACE_S = 5;
/** After a rank exits, how long its output pipes may stay open (held by a grandchild). */
const PIPE_LINGER_MS = 2000;
/** A line longer than this is written out in pieces rather than buffered without bound. */
const MAX_LINE_BYTES = 1 << 20;
const FORWARDED_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

interface CliOptions {
  np?: number;
  masterAddr?: string;
  masterPort?: number;
  prefix: boolean;
  grace: number;
  servers?: number;
}

// ---- arguments --------------------------------------------------------------------------------

function parseCount(value: string): number {
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new InvalidArgumentError('the number of ranks must be an integer >= 1, e.g. -np 4.');
  }
  return n;
}

function parsePort(value: string): number {
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > 65535) {
    throw new InvalidArgumentError('a TCP port is an integer from 1 to 65535.');
  }
  return n;
}

function parseHost(value: string): string {
  if (value.trim() === '') throw new InvalidArgumentError('give a host name or IP address.');
  return value.trim();
}

function parseSeconds(value: string): number {
  const s = /^\d+(\.\d+)?$/.test(value) ? Number(value) : NaN;
  if (!Number.isFinite(s)) throw new InvalidArgumentError('give a number of seconds >= 0.');
  return s;
}

// mpirun spells the rank count `-np`; commander reads that as `-n p`. Rewrite it to `--np` among
// the launcher's own options (the command's arguments, after the first positional, are kept).
function normalizeArgv(args: readonly string[]): string[] {
  const out = args.slice();
  const takesValue = new Set(['-n', '--np', '--master-addr', '--master-port', '--grace',
    '--servers']);
  for (let i = 0; i < out.length; i++) {
    const a = out[i];
    if (a === '--' || a === '-' || !a.startsWith('-')) break;
    if (a === '-np') out[i] = '--np';
    else if (a.startsWith('-np=')) out[i] = `--np=${a.slice(4)}`;
    if (takesValue.has(out[i])) i++;
  }
  return out;
}

function makeProgram(): Command {
  return new Command(NAME)
    .description('Runs <command> as the ranks of one nodeccl job. Each rank gets RANK, ' +
      'WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT. Under mpirun ' +
      'or srun it starts one rank per process those launchers start, and needs no -np.')
    .usage('-np <N> [options] <command...>')
    .addOption(new Option('-n, --np <N>', 'number of ranks to start on this host (also -np)')
      .argParser(parseCount))
    .addOption(new Option('--master-addr <host>', "address of rank 0's store")
      .default('127.0.0.1').argParser(parseHost))
    .addOption(new Option('--master-port <port>', "port of rank 0's store " +
      '(default: a free port; 29500 under mpirun/srun)').argParser(parsePort))
    .addOption(new Option('--servers <S>', 'also start S parameter servers (NODECCL_ROLE=' +
      'server); the -np ranks become workers (NODECCL_ROLE=worker)').argParser(parseCount))
    .option('--no-prefix', 'do not prefix output lines with "[rank] "')
    .addOption(new Option('--grace <seconds>', 'time a stopped rank gets between SIGTERM and ' +
      'SIGKILL').default(DEFAULT_GRACE_S).argParser(parseSeconds))
    .argument('<command...>', 'the program to run and its arguments')
    .passThroughOptions()
    .showHelpAfterError(`(run ${NAME} --help for usage)`)
    .version(version, '-V, --version');
}

// ---- the plan: which ranks to start, with which environment ------------------------------

interface RankPlan {
  rank: number;
  env: NodeJS.ProcessEnv;
  /** Output prefix and name in messages: the rank, or `s<i>` for parameter server i. */
  label?: string;
  /** A parameter-server worker: its failure does not stop the job (the servers carry on). */
  psWorker?: boolean;
  /** A parameter server: its failure stops the job after the grace, once the workers have
   * had time to report it themselves. */
  psServer?: boolean;
}

const TORCHRUN_VARS = ['RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'LOCAL_WORLD_SIZE'];

function rankEnv(world: Omit<WorldInfo, 'source' | 'variables'>): NodeJS.ProcessEnv {
  return {
    ...process.env,
    RANK: String(world.rank),
    WORLD_SIZE: String(world.size),
    LOCAL_RANK: String(world.localRank),
    LOCAL_WORLD_SIZE: String(world.localSize),
    MASTER_ADDR: world.masterAddr,
    MASTER_PORT: String(world.masterPort),
    NODECCL_LAUNCHER: '1',
  };
}

/** A port that was free a moment ago (the OS picks it when we bind port 0). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

// Under mpirun/srun: one rank, this process's, from the launcher's variables. RANK and friends
// in our own environment are ignored: we are the one who sets them for the child.
function plansUnderLauncher(opts: CliOptions, fail: (msg: string) => never): RankPlan[] | null {
  const env = { ...process.env };
  for (const name of TORCHRUN_VARS) delete env[name];
  const launcher = detectLauncher(env);
  if (launcher === undefined) return null;
  let world: WorldInfo;
  try {
    world = resolveWorld({ masterAddr: opts.masterAddr, masterPort: opts.masterPort }, env);
  } catch (e) {
    fail(e instanceof Error ? e.message : String(e));
  }
  if (opts.np !== undefined && opts.np !== world.size) {
    const sizeVar = Object.keys(world.variables).find((v) => /SIZE|NTASKS|NPROCS/.test(v));
    fail(`-np ${opts.np} disagrees with the ${world.size} ranks started by ${launcher} ` +
      `(${sizeVar ?? 'its world size'}=${world.size}); leave out -np under mpirun or srun, ` +
      'which decide the number of ranks');
  }
  return [{ rank: world.rank, env: rankEnv(world) }];
}

async function plansLocal(opts: CliOptions, fail: (msg: string) => never): Promise<RankPlan[]> {
  if (opts.np === undefined) {
    fail(`-np <N> is required: the number of ranks to start, e.g. ${NAME} -np 4 node train.js`);
  }
  const masterAddr = opts.masterAddr ?? '127.0.0.1';
  const masterPort = opts.masterPort ?? await freePort();
  const size = opts.np;
  // One job token for the ranks started here (the store and every connection prove it), unless
  // the user set one. Not under mpirun/srun: there each rank's launcher would invent its own.
  const token = process.env.NODECCL_TOKEN || randomBytes(32).toString('hex');
  const plans: RankPlan[] = Array.from({ length: size }, (_, rank) => ({
    rank,
    env: { ...rankEnv({ rank, size, localRank: rank, localSize: size, masterAddr, masterPort }),
      NODECCL_TOKEN: token },
  }));
  return opts.servers === undefined ? plans
    : withServers(plans, opts.servers, masterAddr, masterPort);
}

// A parameter-server job: S servers (labelled s0, s1, ...) beside the N workers, every process
// told its role and where the servers' store is (served by server 0 on a port of its own, so
// that the workers may still run init() among themselves on MASTER_PORT).
async function withServers(workers: RankPlan[], servers: number, masterAddr: string,
                           masterPort: number): Promise<RankPlan[]> {
  const ps = {
    NODECCL_NUM_SERVERS: String(servers), NODECCL_NUM_WORKERS: String(workers.length),
    NODECCL_PS_ADDR: masterAddr, NODECCL_PS_PORT: String(await freePort()),
  };
  const serverEnv: NodeJS.ProcessEnv = { ...workers[0].env, ...ps, NODECCL_ROLE: 'server' };
  for (const name of TORCHRUN_VARS) delete serverEnv[name]; // servers are not ranks
  const serverPlans: RankPlan[] = Array.from({ length: servers }, (_, s) => ({
    rank: workers.length + s, label: `s${s}`, psServer: true,
    env: { ...serverEnv, NODECCL_SERVER_RANK: String(s) },
  }));
  for (const w of workers) {
    Object.assign(w.env, ps, { NODECCL_ROLE: 'worker' });
    w.psWorker = true;
  }
  return [...serverPlans, ...workers];
}

// ---- output: whole lines, each prefixed with its rank -----------------------------------------

/** Buffers one stream of one rank and writes it out line by line with a prefix. */
class LineWriter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly prefix: Buffer, private readonly out: NodeJS.WriteStream) {}

  write(chunk: Buffer): void {
    let start = 0;
    for (let nl = chunk.indexOf(10); nl >= 0; nl = chunk.indexOf(10, start)) {
      this.emit(chunk.subarray(start, nl + 1));
      start = nl + 1;
    }
    if (start < chunk.length) {
      this.pending.push(chunk.subarray(start));
      this.pendingBytes += chunk.length - start;
      if (this.pendingBytes > MAX_LINE_BYTES) this.flush();
    }
  }

  /** Writes out a partial last line, ending it with a newline. */
  flush(): void {
    if (this.pendingBytes > 0) this.emit(Buffer.from('\n'));
  }

  // One write per line, so lines of different ranks never interleave. Writes to pipes, files
  // and terminals are synchronous on Linux, so output is never queued without bound here.
  private emit(tail: Buffer): void {
    const parts = [this.prefix, ...this.pending, tail];
    this.pending = [];
    this.pendingBytes = 0;
    this.out.write(Buffer.concat(parts));
  }
}

// ---- running the ranks -------------------------------------------------------------------

interface RankState {
  rank: number;
  label: string;
  psWorker: boolean;
  psServer: boolean;
  child: ChildProcess;
  exited: boolean;
  closed: boolean;
  code: number | null;
  signal: NodeJS.Signals | null;
  startError?: Error;
  writers: LineWriter[];
  onClosed: () => void;
}

function signalNumber(signal: NodeJS.Signals): number {
  return os.constants.signals[signal] ?? 1;
}

function describeEnd(s: RankState): string {
  if (s.startError !== undefined) {
    return `could not start: ${s.startError.message}; check that the command exists, is ` +
      'executable and is on PATH';
  }
  if (s.signal !== null) return `was killed by ${s.signal}`;
  return `exited with code ${s.code}`;
}

function exitCodeOf(s: RankState): number {
  if (s.startError !== undefined) {
    const code = (s.startError as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? 127 : code === 'EACCES' ? 126 : 1;
  }
  if (s.signal !== null) return 128 + signalNumber(s.signal);
  return s.code ?? 1;
}

class Job {
  private readonly ranks: RankState[] = [];
  private firstFailure: RankState | undefined;
  private userSignal: NodeJS.Signals | undefined;
  private killTimer: NodeJS.Timeout | undefined;
  private stopping = false;
  private readonly signalHandlers = new Map<NodeJS.Signals, () => void>();

  constructor(
    private readonly command: readonly string[],
    private readonly opts: CliOptions,
    private readonly done: (code: number, signal?: NodeJS.Signals) => void,
  ) {}

  start(plans: readonly RankPlan[]): void {
    for (const sig of FORWARDED_SIGNALS) {
      const handler = () => this.onSignal(sig);
      this.signalHandlers.set(sig, handler);
      process.on(sig, handler);
    }
    for (const plan of plans) this.ranks.push(this.spawnRank(plan));
  }

  private spawnRank(plan: RankPlan): RankState {
    // Rank 0 may read our stdin, unless it is a terminal: children run in their own process
    // group (so one Ctrl-C reaches them once, through us), and reading a terminal from a
    // background group would stop them.
    const first = plan.rank === 0 && plan.label === undefined;
    const stdin = first && !process.stdin.isTTY ? 'inherit' : 'ignore';
    const out = this.opts.prefix ? 'pipe' : 'inherit';
    const stdio: StdioOptions = [stdin, out, out];
    const child = spawn(this.command[0], this.command.slice(1), {
      env: plan.env, stdio, detached: true,
    });
    const state: RankState = {
      rank: plan.rank, label: plan.label ?? String(plan.rank), psWorker: plan.psWorker === true,
      psServer: plan.psServer === true,
      child, exited: false, closed: false, code: null, signal: null,
      writers: [], onClosed: () => undefined,
    };
    if (this.opts.prefix) this.attachOutput(state);
    child.on('error', (e) => {
      if (child.pid !== undefined) return;  // only a failed spawn concerns us
      state.startError = e;
      this.onExit(state, null, null);
      this.onClose(state);
    });
    child.on('exit', (code, signal) => this.onExit(state, code, signal));
    child.on('close', () => this.onClose(state));
    return state;
  }

  private attachOutput(state: RankState): void {
    const prefix = Buffer.from(`[${state.label}] `);
    const streams = [[state.child.stdout, process.stdout], [state.child.stderr, process.stderr]];
    for (const [from, to] of streams as [NodeJS.ReadableStream | null, NodeJS.WriteStream][]) {
      if (from === null) continue;
      const writer = new LineWriter(prefix, to);
      state.writers.push(writer);
      from.on('data', (chunk: Buffer) => writer.write(chunk));
    }
  }

  private onExit(state: RankState, code: number | null, signal: NodeJS.Signals | null): void {
    if (state.exited) return;
    Object.assign(state, { exited: true, code, signal });
    const failed = state.startError !== undefined || signal !== null || code !== 0;
    if (failed && state.psWorker && !this.stopping &&
        this.userSignal === undefined) {
      // The parameter servers carry on with the other workers; the exit code still says so.
      this.firstFailure ??= state;
      process.stderr.write(`${NAME}: worker ${state.label} ${describeEnd(state)}; the ` +
        'parameter servers and the other workers carry on\n');
    } else if (failed && !this.stopping && this.userSignal === undefined) {
      if (this.firstFailure === undefined || this.firstFailure.psWorker) this.firstFailure = state;
      this.stopping = true;
      // Workers fail on their own within seconds when a server dies, each with a clear error.
      if (state.psServer) setTimeout(() => this.stopOthers('SIGTERM'), this.opts.grace * 1000);
      else this.stopOthers('SIGTERM');
    }
    // A grandchild that keeps our pipes open must not keep the launcher alive.
    if (!state.closed) {
      setTimeout(() => {
        state.child.stdout?.destroy();
        state.child.stderr?.destroy();
        this.onClose(state);
      }, PIPE_LINGER_MS).unref();
    }
    this.maybeFinish();
  }

  private onClose(state: RankState): void {
    if (state.closed || !state.exited) return;
    state.closed = true;
    for (const w of state.writers) w.flush();
    if (state === this.firstFailure && !state.psWorker) {
      const running = this.ranks.filter((s) => s !== state && !s.exited &&
        s.child.pid !== undefined).length;
      const pid = state.child.pid === undefined ? '' : ` (pid ${state.child.pid})`;
      process.stderr.write(`${NAME}: rank ${state.label}${pid} ${describeEnd(state)}` +
        (running > 0 ? `; stopping the other ${running} running rank(s)\n` : '\n'));
    }
    this.maybeFinish();
  }

  private signalRank(state: RankState, sig: NodeJS.Signals): void {
    const pid = state.child.pid;
    if (state.exited || pid === undefined) return;
    try {
      process.kill(-pid, sig);  // its whole process group: wrappers' children too
    } catch {
      try {
        state.child.kill(sig);
      } catch {
        // Already gone.
      }
    }
  }

  // Sends `sig` to every running rank, then SIGKILL to those still running after the grace.
  private stopOthers(sig: NodeJS.Signals): void {
    for (const s of this.ranks) this.signalRank(s, sig);
    if (this.killTimer === undefined) {
      this.killTimer = setTimeout(() => {
        for (const s of this.ranks) this.signalRank(s, 'SIGKILL');
      }, this.opts.grace * 1000);
    }
  }

  private onSignal(sig: NodeJS.Signals): void {
    if (this.userSignal !== undefined) {
      // A second signal: the user does not want to wait for a graceful exit.
      for (const s of this.ranks) this.signalRank(s, 'SIGKILL');
      return;
    }
    this.userSignal = sig;
    this.stopOthers(sig);
  }

  private maybeFinish(): void {
    if (!this.ranks.every((s) => s.exited && s.closed)) return;
    if (this.killTimer !== undefined) clearTimeout(this.killTimer);
    for (const [sig, handler] of this.signalHandlers) process.off(sig, handler);
    if (this.userSignal !== undefined) {
      this.done(128 + signalNumber(this.userSignal), this.userSignal);
    } else {
      this.done(this.firstFailure === undefined ? 0 : exitCodeOf(this.firstFailure));
    }
  }
}

// ---- main ----------------------------------------------------------------------------------

// Exits once stdout and stderr have drained; a signal that stopped the job is re-raised so
// that our parent sees how we ended (a shell loop stops on Ctrl-C only if we die of SIGINT).
function finish(code: number, signal?: NodeJS.Signals): void {
  process.stdout.write('', () => process.stderr.write('', () => {
    if (signal !== undefined) process.kill(process.pid, signal);
    process.exit(code);
  }));
}

// Parses `argv` (without node and the script) and runs the job.
async function main(argv: readonly string[]): Promise<void> {
  const program = makeProgram();
  program.parse(normalizeArgv(argv), { from: 'user' });
  const opts = program.opts<CliOptions>();
  const command = program.args;
  const fail = (msg: string): never => program.error(`${NAME}: ${msg}`);
  if (command.length === 0 || command[0] === '') {
    fail(`no command given; e.g. ${NAME} -np 2 node train.js`);
  }
  // --master-addr has a default for --help; under mpirun, MASTER_ADDR may still set it.
  const addrGiven = program.getOptionValueSource('masterAddr') === 'cli';
  const planOpts = { ...opts, masterAddr: addrGiven ? opts.masterAddr : undefined };
  const underLauncher = plansUnderLauncher(planOpts, fail);
  if (underLauncher !== null && opts.servers !== undefined) {
    // LIMITATION: under mpirun/srun each process is one rank of that launcher's world; giving
    // some of them the server role would mean splitting that world, which the launcher cannot do.
    fail('--servers works only when nodeccl-run starts the processes itself (-np N); under ' +
      'mpirun or srun, set NODECCL_ROLE, NODECCL_SERVER_RANK, NODECCL_NUM_SERVERS, ' +
      'NODECCL_NUM_WORKERS and NODECCL_PS_PORT for each process yourself');
  }
  const plans = underLauncher ?? await plansLocal(planOpts, fail);
  new Job(command, opts, finish).start(plans);
}

// Our own stdout or stderr closing (`nodeccl-run ... | head`) must not kill the launcher and
// orphan the ranks; their output is dropped instead.
for (const stream of [process.stdout, process.stderr]) stream.on('error', () => undefined);

main(process.argv.slice(2)).catch((e: unknown) => {
  process.stderr.write(`${NAME}: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exit(1);
});
