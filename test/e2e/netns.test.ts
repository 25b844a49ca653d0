// SPDX-License-Identifier: Apache-2.0
// Two "hosts" made of network namespaces joined by a veth pair (as root; skipped with the reason
// printed where namespaces cannot be made): a 2-rank TCP job gets correct results over the link
// (shaped with `tc netem` delay and 1% packet loss where the kernel has netem), and when the
// link is then taken down, both ranks fail with a clear error well within the operation timeout.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES, ROOT } from '../helpers/world';

const tag = String(process.pid % 100000);
const NS = [`nccl-a-${tag}`, `nccl-b-${tag}`];
const VETH = [`ncva${tag}`, `ncvb${tag}`];
const ADDR = ['10.231.7.1', '10.231.7.2'];
const OP_TIMEOUT_MS = 3000;

function sh(...args: string[]): void {
  execFileSync(args[0], args.slice(1), { stdio: 'pipe' });
}

// Builds the two namespaces; returns why it could not, or null.
function makeHosts(): string | null {
  if (process.getuid?.() !== 0) return 'not root';
  try {
    for (const ns of NS) sh('ip', 'netns', 'add', ns);
    sh('ip', 'link', 'add', VETH[0], 'type', 'veth', 'peer', 'name', VETH[1]);
    for (let i = 0; i < 2; i++) {
      sh('ip', 'link', 'set', VETH[i], 'netns', NS[i]);
      sh('ip', 'netns', 'exec', NS[i], 'ip', 'addr', 'add', `${ADDR[i]}/24`, 'dev', VETH[i]);
      sh('ip', 'netns', 'exec', NS[i], 'ip', 'link', 'set', VETH[i], 'up');
      sh('ip', 'netns', 'exec', NS[i], 'ip', 'link', 'set', 'lo', 'up');
    }
  } catch (e) {
    return `cannot create network namespaces here: ${(e as Error).message.split('\n')[0]}`;
  }
  // Shape host A's side: 2 ms delay and 1% loss (TCP must retransmit; results must hold). Some
  // kernels lack the netem qdisc: the link then stays unshaped and the test says so.
  try {
    sh('ip', 'netns', 'exec', NS[0], 'tc', 'qdisc', 'add', 'dev', VETH[0], 'root', 'netem',
      'delay', '2ms', 'loss', '1%');
    shaped = true;
  } catch (e) {
    console.log('netns test: tc netem is not available in this kernel ' +
      `(${(e as Error).message.split('\n').slice(-2).join(' ').trim()}); the link is unshaped`);
  }
  return null;
}

function removeHosts(): void {
  for (const ns of NS) {
    try { sh('ip', 'netns', 'del', ns); } catch { /* not made */ }
  }
}

let why: string | null = null;
let shaped = false;
beforeAll(() => {
  why = makeHosts();
  if (why) console.log(`netns tests skipped: ${why}`);
});
afterAll(removeHosts);

interface Line { [k: string]: unknown }

function startRank(rank: number, port: number, lines: Line[][]): ChildProcess {
  const child = spawn('ip', ['netns', 'exec', NS[rank], process.execPath,
    path.join(FIXTURES, 'netns-rank.js')], {
    cwd: ROOT,
    env: { ...process.env, RANK: String(rank), WORLD_SIZE: '2', MASTER_ADDR: ADDR[0],
      MASTER_PORT: String(port), NODECCL_TRANSPORT: 'tcp', OP_TIMEOUT_MS: String(OP_TIMEOUT_MS),
      NODECCL_TOKEN: `netns-${tag}` },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let buf = '';
  child.stdout!.on('data', (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line.startsWith('{')) lines[rank].push(JSON.parse(line) as Line);
    }
  });
  return child;
}

describe('two hosts over a veth link', () => {
  it('give correct results over the link (shaped where netem exists), then fail when cut',
    async (ctx) => {
    if (why) ctx.skip();
    const lines: Line[][] = [[], []];
    const children = [0, 1].map((r) => startRank(r, 29000 + (process.pid % 1000), lines));
    const exited = children.map((c) => new Promise<number | null>((res) => c.on('close', res)));
    const killer = setTimeout(() => children.forEach((c) => c.kill('SIGKILL')), 60_000);
    try {
      // Wait until both finished the shaped phase.
      while (!lines.every((l) => l.some((x) => x.ready) || l.some((x) => x.fatal))) {
        await new Promise((r) => setTimeout(r, 50));
      }
      for (const l of lines) {
        expect(l.find((x) => x.fatal)).toBeUndefined();
        expect(l.find((x) => x.phase === 'shaped')?.wrong).toBe(0);
      }
      console.log(`20 all-reduces of 256 KiB over the ${shaped ? 'shaped (2 ms, 1% loss)' :
        'unshaped'} link: ${lines.map((l) => l.find((x) => x.phase)?.ms).join(' / ')} ms`);
      const cut = Date.now();
      sh('ip', 'netns', 'exec', NS[0], 'ip', 'link', 'set', VETH[0], 'down');
      await Promise.all(exited);
      for (const l of lines) {
        const end = l.find((x) => x.outcome === 'error');
        expect(end, JSON.stringify(l)).toBeDefined();
        expect(['ERR_NODECCL_TIMEOUT', 'ERR_NODECCL_PEER_LOST', 'ERR_NODECCL_ABORTED'])
          .toContain(end!.code);
        expect(String(end!.message)).toMatch(/rank [01]/);
        // Within the 3 s operation timeout plus the time to notice (generous on 2 cores).
        expect(Number(end!.at) - cut).toBeLessThan(OP_TIMEOUT_MS + 5000);
        console.log(`link cut: ${end!.code} after ${Number(end!.at) - cut} ms: ${end!.message}`);
      }
    } finally {
      clearTimeout(killer);
    }
  }, 90_000);
});
