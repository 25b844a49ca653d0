// SPDX-License-Identifier: Apache-2.0
// The parameter server's wire format and its zero-copy reader: each frame is a 16-byte header,
// a small JSON description, then a binary payload that the reader places straight into the
// destination arrays the receiver names after seeing the description (no intermediate buffer).
//
// Frame: u32 magic 'NCPS' | u32 metaBytes | u64 payloadBytes (little endian), then meta (UTF-8
// JSON), then payload. Cost per frame: one read of 16 bytes, one of the meta, then reads of
// at most the remaining payload bytes, each landing at its final address.
import * as net from 'node:net';

export const MAGIC = 0x5350434e; // 'NCPS' read as little-endian u32
export const HEADER_BYTES = 16;
/** A description larger than this is a corrupt or foreign stream, not a frame of ours. */
const MAX_META_BYTES = 1 << 20;

/** The JSON part of a frame; `t` names its type (hello, push, pull, ack, params, error, ...). */
export interface Meta {
  t: string;
  [field: string]: unknown;
}

/**
 * Chooses where a frame's payload goes: byte views (into tensors) whose lengths add up to
 * `payloadBytes`. Returning null discards the payload (read into a scratch buffer).
 */
export type PlaceFn = (meta: Meta, payloadBytes: number) => Uint8Array[] | null;
/** Called once a whole frame (payload included) has arrived. */
export type FrameFn = (meta: Meta) => void;

/** Encodes the header and meta of a frame carrying `payloadBytes` bytes after them. */
export function encodeHead(meta: Meta, payloadBytes: number): Buffer {
  const json = Buffer.from(JSON.stringify(meta), 'utf8');
  const head = Buffer.allocUnsafe(HEADER_BYTES + json.length);
  head.writeUInt32LE(MAGIC, 0);
  head.writeUInt32LE(json.length, 4);
  head.writeUInt32LE(payloadBytes % 2 ** 32, 8);
  head.writeUInt32LE(Math.floor(payloadBytes / 2 ** 32), 12);
  json.copy(head, HEADER_BYTES);
  return head;
}

/** A byte view of `length` floats of `array` from element `offset`, sharing its memory. */
export function bytesOf(array: Float32Array, offset = 0, length = array.length - offset):
    Uint8Array {
  return new Uint8Array(array.buffer, array.byteOffset + offset * 4, length * 4);
}

/**
 * Writes one frame: head, then each payload view as it is (Node keeps a reference and the
 * kernel copies from the tensor itself; nothing is concatenated). Resolves once written; the
 * views must not change before then.
 */
export function writeFrame(socket: net.Socket, meta: Meta, payload: readonly Uint8Array[] = []):
    Promise<void> {
  const bytes = payload.reduce((n, v) => n + v.byteLength, 0);
  return new Promise((resolve, reject) => {
    if (socket.destroyed || !socket.writable) {
      reject(new Error('the connection is closed'));
      return;
    }
    socket.cork();
    socket.write(encodeHead(meta, bytes));
    for (const v of payload) {
      if (v.byteLength > 0) socket.write(Buffer.from(v.buffer, v.byteOffset, v.byteLength));
    }
    socket.write(Buffer.alloc(0), (e) => (e ? reject(e) : resolve()));
    socket.uncork();
  });
}

type Phase = 'header' | 'meta' | 'payload';

/**
 * Parses a byte stream into frames. `next()` names the buffer the next read should fill (never
 * empty, never longer than what the current part still needs), and `consumed(n)` records that
 * `n` bytes landed there; so a socket's reads go straight to their final place. Not thread
 * safe; one reader per stream.
 */
export class FrameReader {
  private readonly header = Buffer.alloc(HEADER_BYTES);
  private readonly scratch = Buffer.alloc(1 << 16);
  private phase: Phase = 'header';
  private got = 0; // bytes of the current part received
  private meta: Buffer = Buffer.alloc(0);
  private current: Meta = { t: '' };
  private views: Uint8Array[] = [];
  private view = 0; // index into views
  private discard = 0; // payload bytes left to drop when views is empty
  /** The first malformed input seen; the owner closes the stream and reports it. */
  failure: Error | null = null;

  constructor(private readonly place: PlaceFn, private readonly onFrame: FrameFn) {}

  /** The buffer the next read should fill. */
  next(): Uint8Array {
    if (this.phase === 'header') return this.header.subarray(this.got);
    if (this.phase === 'meta') return this.meta.subarray(this.got);
    if (this.view < this.views.length) return this.views[this.view].subarray(this.got);
    return this.scratch.subarray(0, Math.min(this.scratch.length, this.discard));
  }

  /** Records `n` bytes received into the buffer last returned by next(). */
  consumed(n: number): void {
    this.got += n;
    if (this.phase === 'header') {
      if (this.got === HEADER_BYTES) this.endHeader();
    } else if (this.phase === 'meta') {
      if (this.got === this.meta.length) this.endMeta();
    } else if (this.view < this.views.length) {
      if (this.got === this.views[this.view].byteLength) {
        this.view++;
        this.got = 0;
        this.skipEmptyViews();
      }
    } else {
      this.discard -= n;
      this.got = 0;
      if (this.discard === 0) this.endFrame();
    }
  }

  /** Copies an arbitrary chunk through next()/consumed(): the path for streams without onread. */
  feed(chunk: Uint8Array): void {
    let at = 0;
    while (at < chunk.length && this.failure === null) {
      const dst = this.next();
      const n = Math.min(dst.length, chunk.length - at);
      dst.set(chunk.subarray(at, at + n));
      at += n;
      this.consumed(n);
    }
  }

  private endHeader(): void {
    const magic = this.header.readUInt32LE(0);
    const metaBytes = this.header.readUInt32LE(4);
    if (magic !== MAGIC || metaBytes === 0 || metaBytes > MAX_META_BYTES) {
      this.fail(`bad frame header (magic 0x${magic.toString(16)}, meta ${metaBytes} bytes)`);
      return;
    }
    this.meta = Buffer.alloc(metaBytes);
    this.phase = 'meta';
    this.got = 0;
  }

  private endMeta(): void {
    const payload = this.header.readUInt32LE(8) + this.header.readUInt32LE(12) * 2 ** 32;
    try {
      this.current = JSON.parse(this.meta.toString('utf8')) as Meta;
    } catch {
      this.fail('a frame description is not valid JSON');
      return;
    }
    const views = payload > 0 ? this.place(this.current, payload) : [];
    const placed = (views ?? []).reduce((n, v) => n + v.byteLength, 0);
    if (views !== null && placed !== payload) {
      this.fail(`a '${this.current.t}' frame carries ${payload} bytes but ${placed} were ` +
        'expected; both sides must declare the same parameters');
      return;
    }
    this.views = views ?? [];
    this.discard = views === null ? payload : 0;
    this.view = 0;
    this.phase = 'payload';
    this.got = 0;
    this.skipEmptyViews();
  }

  private skipEmptyViews(): void {
    while (this.view < this.views.length && this.views[this.view].byteLength === 0) this.view++;
    if (this.view === this.views.length && this.discard === 0) this.endFrame();
  }

  private endFrame(): void {
    const meta = this.current;
    this.phase = 'header';
    this.got = 0;
    this.views = [];
    this.onFrame(meta);
  }

  private fail(message: string): void {
    this.failure ??= new Error(message);
    this.phase = 'header';
    this.got = 0;
  }
}

/**
 * Connects to `host:port` with reads going straight into the reader's buffers (Node's
 * `onread` with a buffer generator: libuv fills the view the reader names, no copy). With
 * `zeroCopy` false, data arrives in Node's own chunks and is copied: kept to measure the gain.
 */
export function connectReader(host: string, port: number, reader: FrameReader,
                              zeroCopy: boolean): net.Socket {
  if (!zeroCopy) {
    const s = net.connect({ host, port });
    s.on('data', (chunk: Buffer) => {
      reader.feed(chunk);
      if (reader.failure !== null) s.destroy(reader.failure);
    });
    return s;
  }
  const socket: net.Socket = net.connect({
    host, port,
    onread: {
      buffer: () => reader.next(),
      callback: (n: number) => {
        reader.consumed(n);
        if (reader.failure === null) return true;
        socket.destroy(reader.failure);
        return false;
      },
    },
  });
  return socket;
}

/** Reads frames from an accepted socket (copying: Node's servers take no `onread`). */
export function attachReader(socket: net.Socket, reader: FrameReader): void {
  socket.on('data', (chunk: Buffer) => {
    reader.feed(chunk);
    if (reader.failure !== null) socket.destroy(reader.failure);
  });
}
