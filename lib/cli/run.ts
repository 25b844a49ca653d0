// SPDX-License-Identifier: Apache-2.0
// nodeccl-run: starts the ranks of a job on this host (`-np N`), on several hosts (`-H a:2,b:2`
// or `--hostfile`, one node-rank launcher per host started through ssh or another --rsh), as
// one node of a job whose other nodes someone else starts (`--nnodes/--node-rank`), or, under
// mpirun or srun, turns the launcher's variables into RANK/WORLD_SIZE/... for the one command it
// starts. It prefixes output lines with the rank, forwards signals, and stops every rank when
// one fails.
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { DEFAULT_MASTER_PORT, detectLauncher, resolveWorld, type WorldInfo } from '../env';
import {
  HostListError, isLocalHost, isLoopbackName, isThisMachine, layOut, parseHostList,
  readHostfile, rshArgv, shellQuote, type NodePlan,
} from './hosts';
import { version } from '../../package.json';

const NAME = 'nodeccl-run';
/** Seconds a stopped rank gets between SIGTERM and SIGKILL, unless --grace says otherwise. */
const DEFAULT_GRACE_S = 5;
/** Extra time a host's launcher gets over the grace to stop its own ranks before SIGKILL. */
const HOST_EXTRA_GRACE_MS = 2000;
/** After a rank exits, how long its output pipes may stay open (held by a grandchild). */
const PIPE_LINGER_MS = 2000;
/** A line longer than this is written out in pieces rather than buffered without bound. */
const MAX_LINE_BYTES = 1 << 20;
const FORWARDED_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
const DEFAULT_RSH = 'ssh -o BatchMode=yes {host} {cmd}';

/** How this launcher names itself in messages; a node's launcher adds its node and host. */
let who = NAME;

interface CliOptions {
  np?: number;
  masterAddr?: string;
  masterPort?: number;
  prefix: boolean;
  grace: number;
  servers?: number;
  oversubscribe?: boolean;
  host?: string;
  hostfile?: string;
  rsh: string;
  export?: string[];
  nnodes?: number;
  nodeRank?: number;
  nprocPerNode?: number;
  rankOffset?: number;
  worldSize?: number;
  tokenStdin?: boolean;
}

// ---- arguments --------------------------------------------------------------------------------

function parseCount(value: string): number {
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new InvalidArgumentError('the number of ranks must be an integer >= 1, e.g. -np 4.');
  }
  return n;
}

function parsePositive(value: string): number {
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('give an integer >= 1.');
  return n;
}

function parseIndex(value: string): number {
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n)) throw new InvalidArgumentError('give an integer >= 0.');
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

function parseExport(value: string, previous: string[] | undefined): string[] {
  if (!/^[A-Za-z_][A-Za-z0-9_]*(=.*)?$/.test(value)) {
    throw new InvalidArgumentError('give a variable as NAME or NAME=VALUE, e.g. -x ' +
      'OMP_NUM_THREADS.');
  }
  return [...(previous ?? []), value];
}

// mpirun spells the rank count `-np`; commander reads that as `-n p`. Rewrite it to `--np` among
// the launcher's own options (the command's arguments, after the first positional, are kept).
function normalizeArgv(args: readonly string[]): string[] {
  const out = args.slice();
  const takesValue = new Set(['-n', '--np', '--master-addr', '--master-port', '--grace',
    '--servers', '-H', '--host', '--hostfile', '--rsh', '-x', '--export', '--nnodes',
    '--node-rank', '--nproc-per-node', '--rank-offset', '--world-size']);
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
      'WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, NODE_RANK (and GROUP_RANK), MASTER_ADDR, ' +
      'MASTER_PORT and NODECCL_TOKEN. Under mpirun or srun it starts one rank per process ' +
      'those launchers start, and needs no -np.\n\n' +
      'Several hosts: -H a:2,b:2 (or --hostfile) starts a launcher on each host through ' +
      '--rsh (ssh by default), with the job token on its stdin, never on a command line. Or ' +
      'start one launcher per host yourself with --nnodes/--node-rank/--nproc-per-node; ' +
      'then export the same NODECCL_TOKEN on every host (a token generated on one host ' +
      'cannot reach the others) and give every host the same --master-addr/--master-port.')
    .usage('-np <N> [options] <command...>\n       nodeccl-run -H <host:slots,...> [options] ' +
      '<command...>\n       nodeccl-run --nnodes <H> --node-rank <k> --nproc-per-node <L> ' +
      '--master-addr <A> <command...>')
    .addOption(new Option('-n, --np <N>', 'number of ranks (also -np); with -H, the first N ' +
      'slots').argParser(parseCount))
    .addOption(new Option('--master-addr <host>', "address of rank 0's store (default: " +
      '127.0.0.1; the first host with -H)').argParser(parseHost))
    .addOption(new Option('--master-port <port>', "port of rank 0's store " +
      '(default: a free port on this host; else 29500)').argParser(parsePort))
    .addOption(new Option('-H, --host <list>', 'hosts and their slots, e.g. a:2,b:2 (a alone: ' +
      '1 slot); ranks are numbered host by host'))
    .addOption(new Option('--hostfile <file>', 'hosts from a file: `host slots=N` or `host:N` ' +
      'lines, # comments'))
    .addOption(new Option('--rsh <template>', 'command that runs {cmd} (one shell command ' +
      'line) on {host}; hosts naming this machine are started directly')
      .default(DEFAULT_RSH))
    .addOption(new Option('-x, --export <NAME[=VALUE]>', 'pass this variable to the ranks on ' +
      'every host (NODECCL_* variables are passed anyway); repeatable').argParser(parseExport))
    .addOption(new Option('--nnodes <H>', 'number of hosts (nodes) in the job; with ' +
      '--node-rank, start one launcher per host yourself').argParser(parsePositive))
    .addOption(new Option('--node-rank <k>', 'this host\'s node number, 0..nnodes-1')
      .argParser(parseIndex))
    .addOption(new Option('--nproc-per-node <L>', 'ranks on this host (default 1)')
      .argParser(parsePositive))
    .addOption(new Option('--rank-offset <R>', 'global rank of this host\'s first rank ' +
      '(default node-rank * nproc-per-node; for hosts with different rank counts)')
      .argParser(parseIndex))
    .addOption(new Option('--world-size <W>', 'ranks in the whole job (default nnodes * ' +
      'nproc-per-node)').argParser(parsePositive))
    .addOption(new Option('--token-stdin', 'read the job token from the first line of stdin, ' +
      'and stop the ranks when stdin closes (how -H starts each host)'))
    .addOption(new Option('--servers <S>', 'also start S parameter servers (NODECCL_ROLE=' +
      'server); the -np ranks become workers (NODECCL_ROLE=worker)').argParser(parseCount))
    .addOption(new Option('--oversubscribe', 'allow more than max(64, 8 x CPUs) ranks on ' +
      'this host'))
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
  /** A host's launcher rather than a rank: what to run, and how messages name it. */
  host?: HostUnit;
}

/** A node-rank launcher that the -H launcher starts on one host. */
interface HostUnit {
  argv: string[];
  /** The first line of its stdin (the job token); stdin then stays open until we end. */
  stdinLine: string;
  /** `host b (node 1, ranks 2..3)`. */
  what: string;
  /** Added to the message when it exits with this code (ssh's 255: could not connect). */
  hints: Record<number, string>;
}

const TORCHRUN_VARS = ['RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'LOCAL_WORLD_SIZE'];

function rankEnv(world: Omit<WorldInfo, 'source' | 'variables'>, nodeRank = 0):
  NodeJS.ProcessEnv {
  return {
    ...process.env,
    RANK: String(world.rank),
    WORLD_SIZE: String(world.size),
    LOCAL_RANK: String(world.localRank),
    LOCAL_WORLD_SIZE: String(world.localSize),
    NODE_RANK: String(nodeRank),
    GROUP_RANK: String(nodeRank),  // torchrun's name for the same number
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

/** The mpirun/srun launcher whose variables are set (RANK and friends are ours to set). */
function outerLauncher(): string | undefined {
  const env = { ...process.env };
  for (const name of TORCHRUN_VARS) delete env[name];
  return detectLauncher(env);
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
  // A typo such as -np 100000 must not fork a process storm before anyone can stop it.
  const cpus = os.availableParallelism?.() ?? os.cpus().length;
  const most = Math.max(64, 8 * cpus);
  if (opts.np > most && opts.oversubscribe !== true) {
    fail(`-np ${opts.np} would start ${opts.np} processes on this host, which has ` +
      `${cpus} CPUs (the limit is ${most}, 8 per CPU); pass --oversubscribe ` +
      'if you mean it, or spread the ranks over hosts with -H');
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

// ---- node-rank mode: this host's share of a job that spans several hosts -------------------

function envPort(fail: (msg: string) => never): number | undefined {
  const raw = process.env.MASTER_PORT?.trim();
  if (raw === undefined || raw === '') return undefined;
  const n = /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!(n >= 1 && n <= 65535)) {
    fail(`MASTER_PORT=${JSON.stringify(raw)} is not a TCP port (1 to 65535); fix it or pass ` +
      '--master-port');
  }
  return n;
}

// Ranks rankOffset..rankOffset+L-1 of a world of W, on this host. The store's address must be
// given (127.0.0.1 would reach a different store on every host) and the port agreed on in
// advance: a port that is free here says nothing about node 0's host, so 29500 is the default.
function plansForNode(opts: CliOptions, fail: (msg: string) => never): RankPlan[] {
  const nnodes = opts.nnodes!;
  if (opts.np !== undefined) {
    fail('-np does not combine with --nnodes: give the number of ranks on this host with ' +
      '--nproc-per-node');
  }
  const last = nnodes - 1;
  const nodeRank = opts.nodeRank ?? (nnodes === 1 ? 0
    : fail(`--nnodes ${nnodes} needs --node-rank <k>: this host's number, 0..${last}`));
  if (nodeRank >= nnodes) {
    fail(`--node-rank ${nodeRank} is not below --nnodes ${nnodes}; nodes are numbered 0..${last}`);
  }
  const localSize = opts.nprocPerNode ?? 1;
  const size = opts.worldSize ?? nnodes * localSize;
  const offset = opts.rankOffset ?? nodeRank * localSize;
  if (offset + localSize > size) {
    fail(`this node's ranks ${offset}..${offset + localSize - 1} (--rank-offset ${offset}, ` +
      `--nproc-per-node ${localSize}) do not fit in a world of ${size} ranks (--world-size, ` +
      'default nnodes * nproc-per-node); check the flags');
  }
  const masterAddr = opts.masterAddr ?? (process.env.MASTER_ADDR?.trim() || (nnodes === 1
    ? '127.0.0.1' : fail(`--nnodes ${nnodes} needs --master-addr <address of node 0's host> ` +
      '(or MASTER_ADDR), the same on every host')));
  const masterPort = opts.masterPort ?? envPort(fail) ?? DEFAULT_MASTER_PORT;
  return Array.from({ length: localSize }, (_, localRank) => {
    const rank = offset + localRank;
    const env = rankEnv({ rank, size, localRank, localSize, masterAddr, masterPort }, nodeRank);
    return { rank, env };
  });
}

// The job token of a node: from stdin (-H started us), else NODECCL_TOKEN, else a fresh one
// when this is the only node; else none, with a warning, since one generated here could not
// reach the other hosts' ranks.
async function nodeToken(opts: CliOptions): Promise<string | undefined> {
  if (opts.tokenStdin) return (await readFirstLine()) || undefined;
  if (process.env.NODECCL_TOKEN) return process.env.NODECCL_TOKEN;
  if (opts.nnodes === 1) return randomBytes(32).toString('hex');
  process.stderr.write(`${who}: warning: NODECCL_TOKEN is not set, so the ranks connect ` +
    'without a job token (anyone who can reach the ports can join); export the same ' +
    'NODECCL_TOKEN on every host, e.g. NODECCL_TOKEN=$(openssl rand -hex 32)\n');
  return undefined;
}

// Reads the first line of stdin. The rest of stdin is then only drained: its end means that
// whoever started us (the -H launcher, through ssh) is gone.
function readFirstLine(): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (d: Buffer) => {
      text += d.toString('utf8');
      const nl = text.indexOf('\n');
      if (nl < 0) return;
      process.stdin.off('data', onData).off('end', onEnd);
      watchStdin();
      resolve(text.slice(0, nl).trim());
    };
    const onEnd = () => reject(new Error('--token-stdin: stdin ended before the token line; ' +
      'pipe the job token in, e.g. echo "$NODECCL_TOKEN" | nodeccl-run --token-stdin ...'));
    process.stdin.on('data', onData).on('end', onEnd);
  });
}

// ---- host lists: one node-rank launcher per host ----------------------------------------------

function readNodes(opts: CliOptions, fail: (msg: string) => never): NodePlan[] {
  try {
    const hosts = opts.host !== undefined ? parseHostList(opts.host)
      : readHostfile(opts.hostfile!);
    return layOut(hosts, opts.np);
  } catch (e) {
    if (e instanceof HostListError) fail(e.message);
    throw e;
  }
}

/** What the ranks on every host get: NODECCL_* settings (never the token), then -x ones. */
function exportedEnv(opts: CliOptions, fail: (msg: string) => never): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && k.startsWith('NODECCL_') && k !== 'NODECCL_TOKEN' &&
        k !== 'NODECCL_LAUNCHER') out[k] = v;
  }
  for (const x of opts.export ?? []) {
    const eq = x.indexOf('=');
    const name = eq < 0 ? x : x.slice(0, eq);
    const value = eq < 0 ? process.env[x] : x.slice(eq + 1);
    if (name === 'NODECCL_TOKEN') {
      fail('-x NODECCL_TOKEN would put the token on a command line, where ps shows it; set ' +
        'NODECCL_TOKEN in the environment instead (it reaches every host through stdin)');
    }
    if (value === undefined) fail(`-x ${x}: ${x} is not set here; give -x ${x}=VALUE`);
    out[name] = value;
  }
  return out;
}

interface HostJob {
  nnodes: number;
  size: number;
  masterAddr: string;
  masterPort: number;
  env: Record<string, string>;
}

// The launcher of one host, in node-rank mode. On this machine it is started directly; on
// another through the --rsh template, as one shell line that enters our working directory and
// runs the same node and nodeccl-run (the hosts must share their paths, as with mpirun).
function hostUnit(node: NodePlan, job: HostJob, opts: CliOptions, command: readonly string[],
                  token: string): HostUnit {
  const flags = ['--nnodes', job.nnodes, '--node-rank', node.nodeRank, '--nproc-per-node',
    node.count, '--rank-offset', node.firstRank, '--world-size', job.size, '--master-addr',
    job.masterAddr, '--master-port', job.masterPort, '--grace', opts.grace, '--token-stdin',
    ...(opts.prefix ? [] : ['--no-prefix'])].map(String);
  const launcher = [process.execPath, path.resolve(__filename), ...flags, '--', ...command];
  const lastRank = node.firstRank + node.count - 1;
  const what = `host ${node.host} (node ${node.nodeRank}, ` + (node.count === 1
    ? `rank ${node.firstRank})` : `ranks ${node.firstRank}..${lastRank})`);
  if (isLocalHost(node.host)) return { argv: launcher, stdinLine: token, what, hints: {} };
  const vars = Object.entries(job.env).map(([k, v]) => shellQuote(`${k}=${v}`));
  const line = `cd ${shellQuote(process.cwd())} && exec ` +
    (vars.length > 0 ? `env ${vars.join(' ')} ` : '') + launcher.map(shellQuote).join(' ');
  const argv = rshArgv(opts.rsh, node.host, line);
  const hints: Record<number, string> = path.basename(argv[0]) !== 'ssh' ? {} : {
    255: `ssh exits with 255 when it cannot connect or log in: check that ` +
      `\`ssh -o BatchMode=yes ${node.host} true\` works without a password`,
  };
  return { argv, stdinLine: token, what, hints };
}

async function plansForHosts(opts: CliOptions, command: readonly string[],
                             fail: (msg: string) => never): Promise<RankPlan[]> {
  const nodes = readNodes(opts, fail);
  const first = nodes[0].host;
  if (opts.masterAddr === undefined && isLoopbackName(first) &&
      nodes.some((n) => !isLocalHost(n.host))) {
    process.stderr.write(`${NAME}: warning: the first host, ${first}, is the store's address ` +
      'but names each host itself on the others; pass --master-addr <an address of this ' +
      'host that the others reach>\n');
  }
  const masterAddr = opts.masterAddr ?? first;
  const job: HostJob = {
    nnodes: nodes.length,
    size: nodes.reduce((s, n) => s + n.count, 0),
    masterAddr,
    // A free port can be found only when the store will run on this machine.
    masterPort: opts.masterPort ??
      (isThisMachine(masterAddr) ? await freePort() : DEFAULT_MASTER_PORT),
    env: exportedEnv(opts, fail),
  };
  const token = process.env.NODECCL_TOKEN || randomBytes(32).toString('hex');
  return nodes.map((node) => {
    let host: HostUnit;
    try {
      host = hostUnit(node, job, opts, command, token);
    } catch (e) {
      if (e instanceof HostListError) fail(e.message);
      throw e;
    }
    return { rank: node.firstRank, label: node.host, env: { ...process.env, ...job.env }, host };
  });
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
  /** How messages name it: `rank 3`, or `host b (node 1, ranks 2..3)`. */
  what: string;
  psWorker: boolean;
  psServer: boolean;
  /** A host's launcher (-H), not a rank. */
  isHost: boolean;
  hints: Record<number, string>;
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
  const hint = s.code === null ? undefined : s.hints[s.code];
  return `exited with code ${s.code}${hint === undefined ? '' : ` (${hint})`}`;
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

  /** Whoever started this launcher is gone (its stdin ended): stop the ranks as on SIGTERM. */
  hangUp(): void {
    if (this.userSignal !== undefined || this.ranks.every((s) => s.exited)) return;
    process.stderr.write(`${who}: stdin closed (the launcher that started this host is gone); ` +
      'stopping the ranks\n');
    this.onSignal('SIGTERM');
  }

  private spawnRank(plan: RankPlan): RankState {
    // Rank 0 may read our stdin, unless it is a terminal: children run in their own process
    // group (so one Ctrl-C reaches them once, through us), and reading a terminal from a
    // background group would stop them. A host's launcher reads the token from a pipe instead.
    const first = plan.rank === 0 && plan.label === undefined && !this.opts.tokenStdin;
    const stdin = plan.host ? 'pipe' : first && !process.stdin.isTTY ? 'inherit' : 'ignore';
    // A host's launcher prefixes its own ranks' lines; we still take whole lines from it.
    const out = this.opts.prefix || plan.host ? 'pipe' : 'inherit';
    const stdio: StdioOptions = [stdin, out, out];
    const argv = plan.host?.argv ?? this.command;
    const child = spawn(argv[0], argv.slice(1), { env: plan.env, stdio, detached: true });
    const label = plan.label ?? String(plan.rank);
    const state: RankState = {
      rank: plan.rank, label, what: plan.host?.what ?? `rank ${label}`,
      psWorker: plan.psWorker === true, psServer: plan.psServer === true,
      isHost: plan.host !== undefined, hints: plan.host?.hints ?? {},
      child, exited: false, closed: false, code: null, signal: null,
      writers: [], onClosed: () => undefined,
    };
    if (out === 'pipe') this.attachOutput(state, plan.host ? '' : `[${label}] `);
    if (plan.host) {
      // Left open: its end tells a remote launcher that we are gone.
      child.stdin?.on('error', () => undefined);
      child.stdin?.write(`${plan.host.stdinLine}\n`);
    }
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

  private attachOutput(state: RankState, prefixText: string): void {
    const prefix = Buffer.from(prefixText);
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
    state.child.stdin?.destroy();
    const failed = state.startError !== undefined || signal !== null || code !== 0;
    if (failed && state.psWorker && !this.stopping &&
        this.userSignal === undefined) {
      // The parameter servers carry on with the other workers; the exit code still says so.
      this.firstFailure ??= state;
      process.stderr.write(`${who}: worker ${state.label} ${describeEnd(state)}; the ` +
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
      // The pid of a host's ssh would say nothing: the host's launcher names its failed rank.
      const pid = state.child.pid === undefined || state.isHost ? ''
        : ` (pid ${state.child.pid})`;
      const units = state.isHost ? 'host launcher(s)' : 'rank(s)';
      process.stderr.write(`${who}: ${state.what}${pid} ${describeEnd(state)}` +
        (running > 0 ? `; stopping the other ${running} running ${units}\n` : '\n'));
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

  // Sends `sig` to every running rank, then SIGKILL to those still running after the grace
  // (a host's launcher gets a little longer, to stop its own ranks first).
  private stopOthers(sig: NodeJS.Signals): void {
    for (const s of this.ranks) this.signalRank(s, sig);
    if (this.killTimer === undefined) {
      const hosts = this.ranks.some((s) => s.isHost);
      this.killTimer = setTimeout(() => {
        for (const s of this.ranks) this.signalRank(s, 'SIGKILL');
      }, this.opts.grace * 1000 + (hosts ? HOST_EXTRA_GRACE_MS : 0));
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

const OUTER_NAMES: Record<string, string> = {
  openmpi: "Open MPI's mpirun", pmi: 'mpirun (MPICH, Intel MPI)', slurm: 'srun',
};

// Which way to run was asked for: a host list, one node of several, or ranks on this host
// (alone or under mpirun/srun). Refuses the combinations that mean nothing.
function checkMode(program: Command, opts: CliOptions, fail: (msg: string) => never):
  'hosts' | 'node' | 'local' {
  const hosts = opts.host !== undefined || opts.hostfile !== undefined;
  const node = opts.nnodes !== undefined;
  if (opts.host !== undefined && opts.hostfile !== undefined) {
    fail('give the hosts with -H or with --hostfile, not both');
  }
  if (hosts && node) {
    fail('-H/--hostfile start a launcher on every host themselves, while --nnodes/--node-rank ' +
      'are for starting one launcher per host yourself; give one or the other');
  }
  const nodeOnly: [string, unknown][] = [['--node-rank', opts.nodeRank], ['--nproc-per-node',
    opts.nprocPerNode], ['--rank-offset', opts.rankOffset], ['--world-size', opts.worldSize],
  ['--token-stdin', opts.tokenStdin]];
  const stray = nodeOnly.filter(([, v]) => v !== undefined).map(([n]) => n);
  if (!node && stray.length > 0) {
    fail(`${stray.join(', ')}: for node-rank mode, which needs --nnodes <number of hosts>, ` +
      `e.g. ${NAME} --nnodes 2 --node-rank 0 --nproc-per-node 4 --master-addr 10.0.0.1 ` +
      'node train.js');
  }
  if (!hosts && (program.getOptionValueSource('rsh') === 'cli' || opts.export !== undefined)) {
    fail('--rsh and -x apply only to jobs over a host list (-H or --hostfile)');
  }
  if ((hosts || node) && opts.servers !== undefined) {
    // LIMITATION: the parameter servers and their store are placed on this host by -np's
    // layout; placing them on a host list is not designed yet, so the two do not combine.
    fail('--servers works only with -np on one host; for several hosts, start the servers ' +
      'and workers yourself with NODECCL_ROLE and the NODECCL_PS_* variables');
  }
  const outer = hosts ? outerLauncher() : undefined;
  if (outer !== undefined) {
    fail(`-H/--hostfile cannot be used inside a job of ${OUTER_NAMES[outer] ?? outer}, whose ` +
      'variables are set here: that launcher already starts the processes on every host; ' +
      'drop -H, or run nodeccl-run outside it');
  }
  return hosts ? 'hosts' : node ? 'node' : 'local';
}

/** Whether stdin ended after the token line, and the job to stop when it does. */
const stdinWatch: { ended: boolean; job?: Job } = { ended: false };

function watchStdin(): void {
  const ended = () => {
    stdinWatch.ended = true;
    stdinWatch.job?.hangUp();
  };
  process.stdin.on('end', ended).on('close', ended).on('error', ended);
  process.stdin.resume();
}

// Parses `argv` (without node and the script) and runs the job.
async function main(argv: readonly string[]): Promise<void> {
  const program = makeProgram();
  program.parse(normalizeArgv(argv), { from: 'user' });
  const opts = program.opts<CliOptions>();
  const command = program.args;
  const fail = (msg: string): never => program.error(`${who}: ${msg}`);
  if (command.length === 0 || command[0] === '') {
    fail(`no command given; e.g. ${NAME} -np 2 node train.js`);
  }
  const mode = checkMode(program, opts, fail);
  let plans: RankPlan[];
  if (mode === 'hosts') {
    plans = await plansForHosts(opts, command, fail);
  } else if (mode === 'node') {
    who = `${NAME} (node ${opts.nodeRank ?? 0} on ${os.hostname()})`;
    plans = plansForNode(opts, fail);
    const token = await nodeToken(opts).catch((e: Error) => fail(e.message));
    for (const p of plans) {
      if (token === undefined) delete p.env.NODECCL_TOKEN;
      else p.env.NODECCL_TOKEN = token;
    }
  } else {
    const underLauncher = plansUnderLauncher(opts, fail);
    if (underLauncher !== null && opts.servers !== undefined) {
      // LIMITATION: under mpirun/srun each process is one rank of that launcher's world;
      // giving some of them the server role would mean splitting that world, which the
      // launcher cannot do.
      fail('--servers works only when nodeccl-run starts the processes itself (-np N); under ' +
        'mpirun or srun, set NODECCL_ROLE, NODECCL_SERVER_RANK, NODECCL_NUM_SERVERS, ' +
        'NODECCL_NUM_WORKERS and NODECCL_PS_PORT for each process yourself');
    }
    plans = underLauncher ?? await plansLocal(opts, fail);
  }
  const job = new Job(command, opts, finish);
  job.start(plans);
  stdinWatch.job = job;
  if (stdinWatch.ended) job.hangUp();
}

// Our own stdout or stderr closing (`nodeccl-run ... | head`) must not kill the launcher and
// orphan the ranks; their output is dropped instead.
for (const stream of [process.stdout, process.stderr]) stream.on('error', () => undefined);

main(process.argv.slice(2)).catch((e: unknown) => {
  process.stderr.write(`${NAME}: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exit(1);
});
