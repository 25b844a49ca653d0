// SPDX-License-Identifier: Apache-2.0
// Hostile bytes against a live job for a bounded time: random bursts, truncated frames, huge
// length prefixes and slow-loris connections hit every port the job listens on (the store, and
// rank 0's transport listener while it waits for rank 1). The job must complete init, keep
// every all-reduce and store round trip correct, its RSS must stay bounded, and no attacking
// connection may be left hanging after the attack. Run with and without a job token; without
// one the attacker can pass the authentication exchange, so its frames reach the store's parser
// (which must refuse frames over 64 MiB and bytes past NODECCL_STORE_MAX_BUFFERED_MB) and the
// transport's hello check.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FIXTURES, freePort, ROOT } from '../helpers/world';

const FUZZ_MS = 2500;  // per mode; the whole file stays near 10 s
const MAX_FRAME = 64 << 20;  // cpp/store/protocol.h kMaxFrameBytes
const BUFFERED_MB = 16;  // the job's NODECCL_STORE_MAX_BUFFERED_MB, below the attack's bytes

// The TCP ports process `pid` is listening on (its socket inodes matched against /proc/net/tcp).
function listeningPorts(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]);
    } catch { /* closed meanwhile */ }
  }
  const ports: number[] = [];
  for (const line of fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length > 9 && f[3] === '0A' && inodes.has(f[9])) {
      ports.push(parseInt(f[1].split(':')[1], 16));
    }
  }
  return ports;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Every attacking connection still open 1 s after the attack window is counted and closed, so
// that the test stays bounded whatever a server does; `held` reports how many there were (a
// server that neither answers nor drops a connection is holding it).
let attackEnd = 0;
let held = 0;
function bound(s: net.Socket, port = 0): void {
  const t = setTimeout(() => {
    if (!s.destroyed) {
      held++;
      if (process.env.FUZZ_DEBUG) console.log(`held: port ${port} bytesRead ${s.bytesRead}`);
      s.destroy();
    }
  }, Math.max(0, attackEnd - Date.now()) + 1000);
  s.on('close', () => clearTimeout(t));
}

// One connection that writes `chunks` (with `gapMs` between them) and then closes; errors from
// a server that drops us are the expected outcome, so they end the attack quietly.
function attack(port: number, chunks: Buffer[], gapMs = 0): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    bound(s, port);
    s.on('error', () => resolve());
    s.on('close', () => resolve());
    s.on('connect', async () => {
      for (const c of chunks) {
        if (s.destroyed) break;
        s.write(c);
        if (gapMs > 0) await sleep(gapMs);
      }
      s.end();
      setTimeout(() => s.destroy(), 200);
    });
  });
}

// Like attack(), but first answers the authentication challenge as a process without a token
// does (common/auth.h: magic, hasToken 0, a nonce, a zero MAC), so that without a job token the
// hostile bytes reach the store's frame parser and the transport's hello check.
function attackAuthed(port: number, chunks: Buffer[], gapMs = 0): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    bound(s, port);
    let got = Buffer.alloc(0);
    let answered = false;
    s.on('error', () => resolve());
    s.on('close', () => resolve());
    s.on('data', async (d: Buffer) => {
      if (answered) return;
      got = Buffer.concat([got, d]);
      if (got.length < 21) return;
      answered = true;
      s.write(Buffer.concat([got.subarray(0, 4), Buffer.from([0]), randomBytes(16),
        Buffer.alloc(32)]));
      await sleep(20);  // the 33-byte verdict arrives meanwhile (ignored)
      for (const c of chunks) {
        if (s.destroyed) break;
        s.write(c);
        if (gapMs > 0) await sleep(gapMs);
      }
      s.end();
      setTimeout(() => s.destroy(), 200);
    });
  });
}

function frameHeader(len: number, id: number, code: number): Buffer {
  const b = Buffer.alloc(9);
  b.writeUInt32LE(len >>> 0, 0);
  b.writeUInt32LE(id, 4);
  b[8] = code;
  return b;
}

// Runs every kind of attack against `ports` until `until`; `authed` also runs them past the
// authentication exchange (possible only when the job has no token).
async function fuzz(ports: number[], until: number, authed: boolean): Promise<number> {
  let sent = 0;
  attackEnd = until;
  held = 0;
  const loop = async (make: (port: number) => Promise<void>) => {
    await sleep(Math.random() * 50);
    while (Date.now() < until) {
      await Promise.all(ports.map(make));
      sent += ports.length;
    }
  };
  const rnd = (n: number) => Math.floor(Math.random() * n);
  const frames = (): Buffer[] => {
    const kind = rnd(5);
    if (kind === 0) return [randomBytes(1 + rnd(4096))];
    if (kind === 1) return [frameHeader(64, rnd(1 << 30), 1 + rnd(7)), randomBytes(rnd(60))];
    if (kind === 2) return [frameHeader(0xffffffff, 1, 1)];
    if (kind === 3) return [frameHeader(MAX_FRAME, 1, 1), randomBytes(1 << 20)];
    // A complete frame of a random command with a random body: lengths inside it lie.
    const body = randomBytes(rnd(256));
    return [frameHeader(5 + body.length, rnd(1000), rnd(10)), body];
  };
  const past = authed ? [
    loop((p) => attackAuthed(p, frames())),
    loop((p) => attackAuthed(p, frames())),
    // A frame of the largest allowed length, then more bytes than the store buffers in all.
    loop((p) => attackAuthed(p, [frameHeader(MAX_FRAME, 1, 1),
      ...Array.from({ length: BUFFERED_MB / 4 + 1 }, () => Buffer.alloc(4 << 20, 7))])),
    loop((p) => attackAuthed(p, [frameHeader(MAX_FRAME + 1, 1, 1), randomBytes(64)])),
    ...ports.flatMap((p) => Array.from({ length: 10 }, () =>
      attackAuthed(p, Array.from({ length: Math.ceil((until - Date.now()) / 250) },
        () => randomBytes(1)), 250))),
  ] : [];
  await Promise.all([
    ...past,
    // Random bursts.
    loop((p) => attack(p, [randomBytes(1 + rnd(4096))])),
    loop((p) => attack(p, [randomBytes(1 + rnd(64))])),
    // Truncated frames: a plausible header, then part of the body.
    loop((p) => attack(p, [frameHeader(64, rnd(1 << 30), 1 + rnd(7)), randomBytes(rnd(60))])),
    // Huge length prefixes: 4 GiB (rejected outright) and 64 MiB (the most a frame may claim)
    // followed by 1 MiB that is never completed.
    loop((p) => attack(p, [frameHeader(0xffffffff, 1, 1), randomBytes(64)])),
    loop((p) => attack(p, [frameHeader(MAX_FRAME, 1, 1), randomBytes(1 << 20)])),
    // Slow-loris: 20 connections per port sending one byte every 250 ms until the end.
    ...ports.flatMap((p) => Array.from({ length: 20 }, () =>
      attack(p, Array.from({ length: Math.ceil((until - Date.now()) / 250) },
        () => randomBytes(1)), 250))),
  ]);
  return sent;
}

function waitExit(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => child.on('exit', (code) => resolve(code)));
}

describe.each([['with a job token', 'fuzz-token-0123456789'], ['without a token', '']])(
  'fuzzing a live job %s', (_name, token) => {
    it('keeps serving the job, correctly, with bounded memory', async () => {
      const env: NodeJS.ProcessEnv = { ...process.env, MASTER_PORT: String(await freePort()),
        DELAY_MS: String(FUZZ_MS), RUN_MS: String(FUZZ_MS), NODECCL_DEBUG: 'warn',
        NODECCL_STORE_MAX_BUFFERED_MB: String(BUFFERED_MB) };
      delete env.NODECCL_TOKEN;
      if (token) env.NODECCL_TOKEN = token;
      const child = spawn(process.execPath, [path.join(FIXTURES, 'fuzz-target.js')],
        { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout!.on('data', (d) => { stdout += d; });
      child.stderr!.on('data', (d) => { stderr += d; });
      const exited = waitExit(child);

      // Find the ports once the store and rank 0's transport listener are up.
      let ports: number[] = [];
      for (let i = 0; i < 50 && ports.length < 2; i++) {
        await sleep(50);
        ports = listeningPorts(child.pid!);
      }
      expect(ports.length, 'store and transport listener').toBeGreaterThanOrEqual(2);
      // Attack while rank 1 has not joined yet, and through the run that follows.
      const sent = await fuzz(ports, Date.now() + 2 * FUZZ_MS - 300, !token);
      const code = await exited;
      const result = JSON.parse(stdout.trim().split('\n').pop() ?? '{}');
      const warnings = stderr.split('\n').filter((l) => / WARN /.test(l));
      const kinds = new Set(warnings.map((l) => l.replace(/^.* WARN /, '').replace(/\d+/g, 'N')));
      console.log(`${_name}: store port ${env.MASTER_PORT}, listening ports ` +
        `${ports.join(', ')}, ${sent} hostile connections; job ` +
        `${JSON.stringify(result)}; ${held} held open past the end; ${warnings.length} ` +
        `warnings: ${[...kinds].join(' | ')}`);
      expect(code, stderr.slice(-2000)).toBe(0);
      expect(result.errors).toEqual([]);
      expect(result.ops).toBeGreaterThan(10);
      // The servers said what they turned away (at NODECCL_DEBUG=warn).
      expect(warnings.length).toBeGreaterThan(0);
      if (!token) {
        // Past authentication, the store named its limits as it refused the attacker.
        expect(stderr).toMatch(/frames are \d+ bytes to 64 MiB/);
        expect(stderr).toMatch(new RegExp(`pass ${BUFFERED_MB} MiB buffered for all clients`));
      }
      // The slow connections were answered or dropped: none left hanging (rank 0's transport
      // handles strays side by side, each within its hello deadline, and closes its listener
      // once the mesh is built).
      expect(held).toBe(0);
      // The 64 MiB claims and the slow connections must not be paid for in memory: each one
      // buffers only what it actually sent, and all together at most BUFFERED_MB.
      expect(result.rssMax - result.rssStart).toBeLessThan(256);
    }, 30_000);
  });
