// SPDX-License-Identifier: Apache-2.0
// Connection set-up shared by parameter servers and workers. Every server–worker pair has two
// TCP connections, each carrying bulk data one way only and dialed by its reader: Node's
// `onread` (reads straight into a tensor) exists for sockets one dials, not for accepted ones.
// The dialer sends one small `ident` frame first so that the acceptor knows who it is.
import * as net from 'node:net';
import { NodecclError } from '../errors';
import { attachReader, connectReader, FrameReader, type Meta } from './frame';

/** Keys of the store: where server s and worker w listen. */
export const serverKey = (s: number): string => `nodeccl/ps/server/${s}`;
export const workerKey = (w: number): string => `nodeccl/ps/worker/${w}`;

/** Splits `host:port` (the host may itself hold colons, as IPv6 does). */
export function splitAddress(addr: string): { host: string; port: number } {
  const at = addr.lastIndexOf(':');
  return { host: addr.slice(0, at), port: Number(addr.slice(at + 1)) };
}

/**
 * Listens on `bind` (any free port) and hands each accepted socket, once its `ident` frame has
 * arrived, to `onIdent`. Resolves to the server and its port.
 */
export async function listenForIdents(bind: string,
    onIdent: (meta: Meta, socket: net.Socket) => void): Promise<{ server: net.Server;
      port: number }> {
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    let identified = false;
    socket.on('error', () => undefined); // the owner watches 'close'
    attachReader(socket, new FrameReader(() => null, (meta) => {
      if (identified || meta.t !== 'ident') {
        socket.destroy(new Error(`unexpected '${meta.t}' frame on an accepted connection`));
        return;
      }
      identified = true;
      onIdent(meta, socket);
    }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) => reject(new NodecclError('ERR_NODECCL_IO',
      `parameter server: cannot listen on ${bind}: ${e.message}; set NODECCL_LISTEN_HOST to ` +
      'an address of this host')));
    server.listen(0, bind, () => resolve());
  });
  return { server, port: (server.address() as net.AddressInfo).port };
}

/** Dials `addr` with reads going to `reader`; resolves once connected (or rejects in time). */
export function dial(addr: string, reader: FrameReader, zeroCopy: boolean, timeoutMs: number,
                     who: string): Promise<net.Socket> {
  const { host, port } = splitAddress(addr);
  return new Promise((resolve, reject) => {
    const socket = connectReader(host, port, reader, zeroCopy);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new NodecclError('ERR_NODECCL_TIMEOUT', `parameter server: connecting to ${who} ` +
        `at ${addr} took more than ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.setNoDelay(true);
      resolve(socket);
    });
    socket.once('error', (e) => {
      clearTimeout(timer);
      reject(new NodecclError('ERR_NODECCL_PEER_LOST', `parameter server: cannot connect to ` +
        `${who} at ${addr}: ${e.message}`));
    });
  });
}

/** A promise with a deadline: rejects with ERR_NODECCL_TIMEOUT saying `what` after `ms`. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: () => string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new NodecclError('ERR_NODECCL_TIMEOUT',
      `${what()} (waited ${ms} ms)`)), ms);
    p.then((v) => { clearTimeout(timer); resolve(v); },
      (e: unknown) => { clearTimeout(timer); reject(e); });
  });
}
