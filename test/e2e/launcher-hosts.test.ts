// SPDX-License-Identifier: Apache-2.0
// nodeccl-run over several hosts, as real processes: host lists (-H, --hostfile) started through
// a stand-in for ssh that runs the "remote" command here and records its argv, node-rank mode
// (two launchers forming one job with a real all-reduce), and a 2-host x 2-rank job over network
// namespaces (as root; skipped with the reason printed where namespaces cannot be made).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAlive, launch as launchCli, launcherScript, type LaunchOptions }
  from '../helpers/launcher';
import { makeHosts, type NetHosts } from '../helpers/netns';
import { FIXTURES, freePort } from '../helpers/world';

const NODE = process.execPath;
const RSH = path.join(FIXTURES, 'hosts-rsh.js');
const ALLREDUCE = path.join(FIXTURES, 'hosts-allreduce.js');

let runJs = '';
let tmp = '';

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nodeccl-hosts-'));
  runJs = launcherScript('cli-hosts');
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const launch = (args: string[], options?: LaunchOptions) => launchCli(runJs, args, options);

/** `[r] {json}` lines of stdout as [rank, object]; any other line fails the test. */
function prefixedJson(stdout: string): [number, Record<string, string>][] {
  return stdout.split('\n').filter((l) => l !== '').map((line) => {
    const m = /^\[(\d+)\] (\{.*\})$/.exec(line);
    if (m === null) throw new Error(`not a prefixed JSON line: ${JSON.stringify(line)}`);
    return [Number(m[1]), JSON.parse(m[2]) as Record<string, string>];
  });
}

async function waitUntil(ok: () => boolean, ms: number): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end;) {
    if (ok()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return ok();
}

const PRINT_ENV = `const e = process.env; console.log(JSON.stringify({
  RANK: e.RANK, WORLD_SIZE: e.WORLD_SIZE, LOCAL_RANK: e.LOCAL_RANK,
  LOCAL_WORLD_SIZE: e.LOCAL_WORLD_SIZE, NODE_RANK: e.NODE_RANK, GROUP_RANK: e.GROUP_RANK,
  MASTER_ADDR: e.MASTER_ADDR, MASTER_PORT: e.MASTER_PORT, NODECCL_TOKEN: e.NODECCL_TOKEN,
  FOO: e.FOO, pid: String(process.pid) }))`;

/** A fake rsh that records its argv in `log`, then runs the command here. */
function fakeRsh(log: string): string {
  return `'${NODE}' '${RSH}' '${log}' {host} {cmd}`;
}

function rshCalls(log: string): { host: string; argv: string[] }[] {
  return fs.readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
}

describe('nodeccl-run -H / --hostfile through --rsh', () => {
  it('starts one launcher per host, numbers ranks host by host, hides the token', async () => {
    const log = path.join(tmp, 'rsh-1.log');
    const r = await launch(['-H', 'hostA:2,hostB:1', '--rsh', fakeRsh(log), '--master-addr',
      '127.0.0.1', '-x', 'FOO=bar', NODE, '-e', PRINT_ENV], {
      env: { NODECCL_FORWARD_ME: 'yes' },
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const ranks = prefixedJson(r.stdout).sort((a, b) => a[0] - b[0]);
    expect(ranks.map(([k]) => k)).toEqual([0, 1, 2]);
    const { MASTER_PORT: port, NODECCL_TOKEN: token } = ranks[0][1];
    expect(token).toMatch(/^[0-9a-f]{64}$/);
    // hostA runs ranks 0 and 1 (node 0), hostB rank 2 (node 1).
    const expected = [['0', '0', '2', '0'], ['1', '1', '2', '0'], ['2', '0', '1', '1']];
    ranks.forEach(([k, env], i) => {
      const [rank, localRank, localSize, node] = expected[i];
      expect(String(k)).toBe(rank);
      expect(env).toMatchObject({
        RANK: rank, WORLD_SIZE: '3', LOCAL_RANK: localRank, LOCAL_WORLD_SIZE: localSize,
        NODE_RANK: node, GROUP_RANK: node, MASTER_ADDR: '127.0.0.1', MASTER_PORT: port,
        NODECCL_TOKEN: token, FOO: 'bar',
      });
    });
    // Each host was started once through the rsh, with its name; the one command line names
    // the forwarded settings but never the token (ps shows argv; the token went by stdin).
    const calls = rshCalls(log).sort((a, b) => a.host.localeCompare(b.host));
    expect(calls.map((c) => c.host)).toEqual(['hostA', 'hostB']);
    for (const c of calls) {
      expect(c.argv).toHaveLength(3);
      expect(c.argv.join(' ')).not.toContain(token);
      expect(c.argv[2]).toContain('NODECCL_FORWARD_ME=yes');
      expect(c.argv[2]).toContain('--token-stdin');
    }
  });

  it('reads a hostfile, and -np takes the first slots', async () => {
    const file = path.join(tmp, 'hosts');
    fs.writeFileSync(file, '# two hosts\nhostA slots=1   # the first\n\n  hostB:2\n');
    const log = path.join(tmp, 'rsh-2.log');
    const r = await launch(['--hostfile', file, '-np', '2', '--rsh', fakeRsh(log),
      '--master-addr', '127.0.0.1', NODE, '-e', PRINT_ENV]);
    expect(r.code).toBe(0);
    const ranks = prefixedJson(r.stdout).sort((a, b) => a[0] - b[0]);
    expect(ranks.map(([, e]) => [e.RANK, e.NODE_RANK, e.LOCAL_RANK, e.LOCAL_WORLD_SIZE,
      e.WORLD_SIZE])).toEqual([['0', '0', '0', '1', '2'], ['1', '1', '0', '1', '2']]);
    expect(rshCalls(log).map((c) => c.host).sort()).toEqual(['hostA', 'hostB']);
  });

  it('starts a host naming this machine directly, and warns of a loopback master', async () => {
    const log = path.join(tmp, 'rsh-local.log');
    fs.writeFileSync(log, '');
    const r = await launch(['-H', 'localhost:1,hostB:1', '--rsh', fakeRsh(log), NODE, '-e',
      PRINT_ENV]);
    expect(r.code).toBe(0);
    // Without --master-addr the store is at the first host, `localhost`: wrong for hostB.
    expect(r.stderr).toContain('warning: the first host, localhost, is the store\'s address');
    const ranks = prefixedJson(r.stdout).sort((a, b) => a[0] - b[0]);
    expect(ranks.map(([, e]) => [e.RANK, e.NODE_RANK, e.MASTER_ADDR])).toEqual([
      ['0', '0', 'localhost'], ['1', '1', 'localhost']]);
    expect(rshCalls(log).map((c) => c.host)).toEqual(['hostB']);
  });

  it('stops the other hosts when a rank fails, naming the host and the rank', async () => {
    const log = path.join(tmp, 'rsh-3.log');
    const script = `console.log(JSON.stringify({ pid: process.pid }));
      if (process.env.RANK === '2') setTimeout(() => process.exit(3), 300);
      else setInterval(() => {}, 1000);`;
    const r = await launch(['-H', 'hostA:2,hostB:1', '--rsh', fakeRsh(log), '--master-addr',
      '127.0.0.1', '--grace', '1', NODE, '-e', script]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/node 1 on .*\): rank 2 \(pid \d+\) exited with code 3/);
    expect(r.stderr).toContain('nodeccl-run: host hostB (node 1, rank 2) exited with code 3; ' +
      'stopping the other 1 running host launcher(s)');
    const pids = prefixedJson(r.stdout).map(([, o]) => Number(o.pid));
    expect(pids).toHaveLength(3);
    expect(await waitUntil(() => pids.every((p) => !isAlive(p)), 3000)).toBe(true);
  });

  it('stops a host\'s ranks when the launcher that started it goes away', async () => {
    // The host's launcher sees its stdin end (as when ssh dies) and stops its ranks.
    const log = path.join(tmp, 'rsh-4.log');
    const script = 'console.log(JSON.stringify({ pid: process.pid })); setInterval(() => {}, 1000)';
    const pids: number[] = [];
    const r = await launch(['-H', 'hostA:2', '--rsh', fakeRsh(log), '--master-addr',
      '127.0.0.1', NODE, '-e', script], {
      onStdout: (out, pid) => {
        if (pids.length > 0 || out.split('\n').length < 3) return;
        pids.push(...prefixedJson(out).map(([, o]) => Number(o.pid)));
        process.kill(pid, 'SIGKILL');
      },
    });
    expect(r.signal).toBe('SIGKILL');
    expect(pids).toHaveLength(2);
    expect(await waitUntil(() => pids.every((p) => !isAlive(p)), 5000)).toBe(true);
  });

  it('reports ssh failing to connect, naming the host', async () => {
    // A fake ssh on PATH that fails as ssh does when it cannot connect (exit code 255).
    const bin = path.join(tmp, 'bin');
    fs.mkdirSync(bin, { recursive: true });
    fs.writeFileSync(path.join(bin, 'ssh'), '#!/bin/sh\necho "ssh: connect to host $3: ' +
      'Connection refused" >&2\nexit 255\n', { mode: 0o755 });
    const r = await launch(['-H', 'deadhost:1', '--master-port', '29999', NODE, '-e', '1'], {
      env: { PATH: `${bin}:${process.env.PATH}` },
    });
    expect(r.code).toBe(255);
    expect(r.stderr).toContain('host deadhost (node 0, rank 0) exited with code 255 (ssh ' +
      'exits with 255 when it cannot connect or log in');
  });

  it('explains malformed host lists, hostfiles and flags', async () => {
    const bad = path.join(tmp, 'bad-hosts');
    fs.writeFileSync(bad, 'hostA slots=2\nhostB slots=two\n');
    const cases: [string[], Record<string, string>, string][] = [
      [['-H', 'a:2,b:x'], {}, '-H: malformed slot count in "b:x"'],
      [['-H', 'a:2,,b'], {}, '-H: empty entry in "a:2,,b"'],
      [['-H', 'a:0'], {}, 'host "a:0" has 0 slots'],
      [['-H', 'a:2,b:1', '-np', '4'], {}, '-np 4 exceeds the 3 slot(s) of the host list'],
      [['--hostfile', path.join(tmp, 'missing')], {},
        `cannot read hostfile ${path.join(tmp, 'missing')}: ENOENT`],
      [['--hostfile', bad], {}, `${bad}:2: malformed slot count in "slots=two"`],
      [['--node-rank', '1'], {}, '--node-rank: for node-rank mode, which needs --nnodes'],
      [['--nnodes', '2', '--node-rank', '2'], {}, '--node-rank 2 is not below --nnodes 2'],
      [['-H', 'a:2'], { OMPI_COMM_WORLD_RANK: '0', OMPI_COMM_WORLD_SIZE: '2' },
        "-H/--hostfile cannot be used inside a job of Open MPI's mpirun"],
    ];
    const results = await Promise.all(cases.map(([args, env]) =>
      launch([...args, NODE, '-e', '1'], { env })));
    results.forEach((r, i) => {
      expect(r.code, cases[i][2]).not.toBe(0);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain(cases[i][2]);
    });
  });
});

describe('nodeccl-run --nnodes/--node-rank', () => {
  it('forms one 4-rank job from two launchers, with a correct all-reduce', async () => {
    const port = String(await freePort());
    const env = { NODECCL_TOKEN: 'hosts-test-token' };
    const node = (k: number) => launch(['--nnodes', '2', '--node-rank', String(k),
      '--nproc-per-node', '2', '--master-addr', '127.0.0.1', '--master-port', port, NODE,
      ALLREDUCE], { env });
    const results = await Promise.all([node(0), node(1)]);
    const ranks: Record<string, string>[] = [];
    for (const r of results) {
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      for (const [k, o] of prefixedJson(r.stdout)) {
        expect(o.rank).toBe(k);
        ranks.push(o);
      }
    }
    ranks.sort((a, b) => Number(a.rank) - Number(b.rank));
    // Rank r contributes r + 1: 1 + 2 + 3 + 4 = 10 in every element.
    expect(ranks.map((o) => [o.rank, o.size, o.sum, o.wrong, o.localRank, o.nodeRank,
      o.hasToken])).toEqual([[0, 4, 10, 0, '0', '0', true], [1, 4, 10, 0, '1', '0', true],
      [2, 4, 10, 0, '0', '1', true], [3, 4, 10, 0, '1', '1', true]]);
  });

  it('warns when no NODECCL_TOKEN is set for several nodes, and defaults the port', async () => {
    const r = await launch(['--nnodes', '2', '--node-rank', '1', '--master-addr', '10.0.0.1',
      NODE, '-e', PRINT_ENV]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('warning: NODECCL_TOKEN is not set');
    const [[rank, env]] = prefixedJson(r.stdout);
    expect(rank).toBe(1);
    expect(env).toMatchObject({ RANK: '1', WORLD_SIZE: '2', LOCAL_RANK: '0', NODE_RANK: '1',
      MASTER_ADDR: '10.0.0.1', MASTER_PORT: '29500' });
    expect(env.NODECCL_TOKEN).toBeUndefined();
  });
});

describe('nodeccl-run -H over network namespaces', () => {
  let hosts: NetHosts | string = 'not made yet';
  beforeAll(() => {
    hosts = makeHosts(2, 'l');
    if (typeof hosts === 'string') {
      console.log(`launcher netns test skipped: ${hosts}`);
      // CI runs as root with iproute2 installed: there the hosts must be made.
      if (process.env.CI === 'true' && process.getuid?.() === 0) {
        throw new Error(`CI as root must create network namespaces: ${hosts}`);
      }
    }
  });
  afterAll(() => {
    if (typeof hosts !== 'string') hosts.remove();
  });

  it('runs a 2-host x 2-rank job over the bridge with a correct all-reduce', async (ctx) => {
    if (typeof hosts === 'string') ctx.skip();
    const h = hosts as NetHosts;
    // TCP across the hosts' links: namespaces share this machine's hostname and /dev/shm,
    // so without NODECCL_TRANSPORT=tcp the ranks might take shared memory between "hosts".
    const r = await launch(['-H', `${h.names[0]}:2,${h.names[1]}:2`, '--rsh',
      'ip netns exec {host} sh -c {cmd}', '--master-addr', h.addrs[0], NODE, ALLREDUCE], {
      env: { NODECCL_SOCKET_IFNAME: 'eth0', NODECCL_TRANSPORT: 'tcp' },
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const ranks = prefixedJson(r.stdout).map(([, o]) => o)
      .sort((a, b) => Number(a.rank) - Number(b.rank));
    expect(ranks.map((o) => [o.rank, o.size, o.sum, o.wrong, o.nodeRank])).toEqual([
      [0, 4, 10, 0, '0'], [1, 4, 10, 0, '0'], [2, 4, 10, 0, '1'], [3, 4, 10, 0, '1']]);
  }, 30_000);
});
