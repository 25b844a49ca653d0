// SPDX-License-Identifier: Apache-2.0
// Two "hosts" made of network namespaces (test/helpers/netns.ts; as root, skipped with the
// reason printed where namespaces cannot be made), one rank on each: a 2-rank TCP job gets
// correct results over links that drop 1% of packets (and are delayed where the kernel has
// `tc netem`), and when a link is then taken down, both ranks fail with a clear error well
// within the operation timeout.
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { haveCommand, makeHosts, type NetHosts } from '../helpers/netns';
import { FIXTURES, ROOT } from '../helpers/world';

const tag = String(process.pid % 100000);
const OP_TIMEOUT_MS = 3000;
let hosts: NetHosts | null = null;
let why: string | null = null;
let shaped = '';

// Two hosts; host A's link delayed 2 ms where the kernel has netem, and both links dropping 1%
// of packets (TCP must retransmit; results must hold) where iptables is installed.
beforeAll(() => {
  const made = makeHosts(2, 'n');
  if (typeof made === 'string') {
    why = made;
    console.log(`netns tests skipped: ${why}`);
    return;
  }
  hosts = made;
  const noDelay = made.delay(0, 2);
  if (noDelay) console.log(`netns test: ${noDelay}; the link is not delayed`);
  else shaped = '2 ms delay';
  if (haveCommand('iptables')) {
    made.loss(0, 1);
    made.loss(1, 1);
    shaped += `${shaped ? ', ' : ''}1% loss`;
  } else {
    console.log('netns test: iptables is missing (Debian package iptables); no packet loss');
  }
});
afterAll(() => hosts?.remove());

interface Line { [k: string]: unknown }

function startRank(h: NetHosts, rank: number, port: number, lines: Line[][]): ChildProcess {
  const argv = h.exec(rank, [process.execPath, path.join(FIXTURES, 'netns-rank.js')]);
  const child = spawn(argv[0], argv.slice(1), {
    cwd: ROOT,
    env: { ...process.env, RANK: String(rank), WORLD_SIZE: '2', MASTER_ADDR: h.addrs[0],
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
    if (!hosts) return ctx.skip();
    const h = hosts;
    const lines: Line[][] = [[], []];
    const children = [0, 1].map((r) => startRank(h, r, 29000 + (process.pid % 1000), lines));
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
      console.log(`20 all-reduces of 256 KiB over the ${shaped || 'unshaped'} link: ` +
        `${lines.map((l) => l.find((x) => x.phase)?.ms).join(' / ')} ms`);
      const cut = Date.now();
      h.cut(0);
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
