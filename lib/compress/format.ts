// SPDX-License-Identifier: Apache-2.0
// The compressed model file: named dense, sparse, shared and quantized tensors behind a small
// JSON header, sealed with a SHA-256 checksum (node:crypto), written atomically (temp file,
// fsync, rename, fsync of the folder) and read back only when every check passes.
//
// Layout (little-endian):
//   0   8  magic "NCCLCMPZ"
//   8   4  version (1)
//   12  4  H, the header's byte length
//   16  8  L, the whole file's byte length (a uint64)
//   24  H  header: UTF-8 JSON { format, metadata, tensors: [{ name, kind, shape, ..., parts }] },
//          each part an [offset, byteLength] pair into the payload
//   ..     payload: the parts' bytes back to back
//   L-32   SHA-256 of bytes [0, L - 32)
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { NodecclError, NodecclTypeError } from '../errors';
import { describeValue } from '../options';
import { checkShape, elementCount } from './native';
import { decompress, matrixView, type CompressedTensor } from './types';
import { writeFileAtomic } from '../atomic-write';

/** A model as the file stores it: tensors by name (in insertion order) and free metadata. */
export interface CompressedModel {
  tensors: Record<string, CompressedTensor>;
  /** Any JSON-serializable value (architecture, accuracy, ...). */
  metadata?: unknown;
}

const MAGIC = 'NCCLCMPZ';
const VERSION = 1;
const FIXED = 24;
const DIGEST = 32;
const FORMAT = 'nodeccl.compressed/1';

// The parts of each record kind, in file order, with the bytes each must have.
type Parts = Record<string, Uint8Array>;

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

// LIMITATION: little-endian hosts only: parts are the raw bytes of Float32Arrays, and a
// big-endian host would read every float byte-swapped; refused rather than silently wrong.
function requireLittleEndian(fn: string): void {
  if (os.endianness() !== 'LE') {
    throw new NodecclError('ERR_NODECCL_INVALID_ARGUMENT',
      `${fn}: the compressed model format is little-endian and this host is big-endian`);
  }
}

// ---- writing ---------------------------------------------------------------------------------

/** The record's header fields (without parts) and its parts, after checking its sizes. */
function splitRecord(name: string, t: CompressedTensor): { fields: object; parts: Parts } {
  const shape = checkShape(t?.shape, `tensor '${name}': shape`);
  const n = elementCount(shape);
  decompress(t);  // runs every consistency check of the record's parts
  switch (t.kind) {
    case 'dense':
      if (t.values.length !== n) {
        throw new NodecclTypeError(`tensor '${name}': ${t.values.length} values for shape ` +
          `${JSON.stringify(shape)} (${n} elements)`);
      }
      return { fields: { kind: t.kind, shape }, parts: { values: bytesOf(t.values) } };
    case 'sparse':
      return { fields: { kind: t.kind, shape, nnz: t.values.length },
        parts: { bitmap: t.bitmap, values: bytesOf(t.values) } };
    case 'shared': {
      const parts: Parts = { codebook: bytesOf(t.codebook), indices: t.indices };
      if (t.bitmap) parts.bitmap = t.bitmap;
      return { fields: { kind: t.kind, shape, bits: t.bits, count: t.count,
        sparse: t.bitmap !== null }, parts };
    }
    case 'quantized':
      return { fields: { kind: t.kind, shape, bits: t.bits, axis: t.axis,
        blockSize: t.blockSize }, parts: { scales: bytesOf(t.scales), q: t.q } };
  }
}

/**
 * The bytes of a compressed model file.
 *
 * @throws NodecclTypeError/NodecclRangeError for a malformed record (naming the tensor).
 */
export function encodeCompressedModel(model: CompressedModel): Uint8Array {
  requireLittleEndian('encodeCompressedModel()');
  if (model === null || typeof model !== 'object' || typeof model.tensors !== 'object') {
    throw new NodecclTypeError('encodeCompressedModel(): model must be { tensors: { name: ' +
      `record, ... }, metadata? }, got ${describeValue(model)}`);
  }
  const entries: object[] = [];
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(model.tensors)) {
    const { fields, parts } = splitRecord(name, t);
    const where: Record<string, [number, number]> = {};
    for (const [part, bytes] of Object.entries(parts)) {
      where[part] = [offset, bytes.byteLength];
      chunks.push(bytes);
      offset += bytes.byteLength;
    }
    entries.push({ name, ...fields, parts: where });
  }
  const header = Buffer.from(JSON.stringify({ format: FORMAT, metadata: model.metadata ?? null,
    tensors: entries }), 'utf8');

  const total = FIXED + header.length + offset + DIGEST;
  const out = Buffer.alloc(total);
  out.write(MAGIC, 0, 'latin1');
  out.writeUInt32LE(VERSION, 8);
  out.writeUInt32LE(header.length, 12);
  out.writeBigUInt64LE(BigInt(total), 16);
  header.copy(out, FIXED);
  let at = FIXED + header.length;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  createHash('sha256').update(out.subarray(0, total - DIGEST)).digest().copy(out, total - DIGEST);
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/**
 * Writes `model` to `file` atomically: a temporary file in the same folder is written and
 * fsynced, then renamed over `file` and the folder fsynced, so a crash leaves either the old
 * file or the new one, never a torn mix. Returns the bytes written.
 *
 * @throws NodecclError ERR_NODECCL_IO naming the path and the system error.
 */
export function saveCompressedModel(file: string, model: CompressedModel): number {
  const bytes = encodeCompressedModel(model);
  const target = path.resolve(file);
  const tmp = path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.` +
    `${randomBytes(4).toString('hex')}.tmp`);
  try {
    writeFileAtomic(target, bytes, tmp);
  } catch (e) {
    throw new NodecclError('ERR_NODECCL_IO', `saveCompressedModel(): could not write ` +
      `${target}: ${(e as Error).message}`);
  }
  return bytes.length;
}

// ---- reading ---------------------------------------------------------------------------------

function corrupt(where: string, what: string): NodecclError {
  return new NodecclError('ERR_NODECCL_IO', `${where}: ${what}`);
}

// The fixed fields: magic, version, header length, and the declared total against the real one.
function checkFrame(bytes: Uint8Array, where: string): number {
  const min = FIXED + DIGEST;
  if (bytes.length < min) {
    throw corrupt(where, `truncated: ${bytes.length} bytes, shorter than the smallest valid ` +
      `file (${min} bytes)`);
  }
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = buf.toString('latin1', 0, 8);
  if (magic !== MAGIC) {
    throw corrupt(where, `not a nodeccl compressed model (magic ${JSON.stringify(magic)}, ` +
      `expected ${JSON.stringify(MAGIC)})`);
  }
  const version = buf.readUInt32LE(8);
  if (version !== VERSION) {
    throw corrupt(where, `format version ${version} is not supported (this nodeccl reads ` +
      `version ${VERSION}); save it again with this version`);
  }
  const declared = buf.readBigUInt64LE(16);
  if (declared > BigInt(bytes.length)) {
    throw corrupt(where, `truncated: ${bytes.length} bytes but the header declares ${declared}; ` +
      'the write or copy was cut short');
  }
  if (declared < BigInt(bytes.length)) {
    throw corrupt(where, `${BigInt(bytes.length) - declared} unexpected bytes after the ` +
      `declared end (${declared} bytes); the file was appended to or is not one model`);
  }
  const headerLength = buf.readUInt32LE(12);
  if (FIXED + headerLength + DIGEST > bytes.length) {
    throw corrupt(where, `header length ${headerLength} runs past the end of the file`);
  }
  return headerLength;
}

function checkDigest(bytes: Uint8Array, where: string): void {
  const stored = Buffer.from(bytes.subarray(bytes.length - DIGEST)).toString('hex');
  const computed = createHash('sha256').update(bytes.subarray(0, bytes.length - DIGEST))
    .digest('hex');
  if (stored !== computed) {
    throw corrupt(where, `checksum mismatch (SHA-256 stored ${stored.slice(0, 16)}..., ` +
      `computed ${computed.slice(0, 16)}...): the file is corrupted`);
  }
}

// Expected byte length of each part of a record, from its header fields.
function expectedParts(e: Record<string, unknown>, n: number): Record<string, number> {
  const whole = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
  switch (e.kind) {
    case 'dense':
      return { values: 4 * n };
    case 'sparse':
      if (!whole(e.nnz) || (e.nnz as number) > n) throw new Error(`nnz ${e.nnz} is invalid`);
      return { bitmap: Math.ceil(n / 8), values: 4 * (e.nnz as number) };
    case 'shared': {
      const bits = e.bits as number;
      if (!Number.isInteger(bits) || bits < 2 || bits > 8) throw new Error(`bits ${bits}`);
      if (!whole(e.count) || (e.count as number) > n) throw new Error(`count ${e.count}`);
      const parts: Record<string, number> = { codebook: 4 * 2 ** bits,
        indices: Math.ceil(((e.count as number) * bits) / 8) };
      if (e.sparse === true) parts.bitmap = Math.ceil(n / 8);
      else if (e.count !== n) throw new Error(`count ${e.count} for ${n} dense elements`);
      return parts;
    }
    case 'quantized': {
      const bits = e.bits;
      const block = e.blockSize as number;
      if ((bits !== 8 && bits !== 4) || (e.axis !== 0 && e.axis !== 1) || !whole(block)) {
        throw new Error(`bits ${bits}, axis ${e.axis}, blockSize ${block}`);
      }
      const [rows, cols] = matrixView(e.shape as number[]);
      const groups = block > 0 ? Math.ceil(n / block) : e.axis === 0 ? rows : cols;
      return { scales: 4 * groups, q: bits === 8 ? n : Math.ceil(n / 2) };
    }
    default:
      throw new Error(`unknown kind ${JSON.stringify(e.kind)}`);
  }
}

// A copy of part `name` of a record (copies are aligned, so Float32Array views are safe).
function takePart(payload: Uint8Array, e: Record<string, unknown>, name: string,
                  want: number): Uint8Array {
  const where = (e.parts as Record<string, unknown>)?.[name];
  if (!Array.isArray(where) || where.length !== 2) throw new Error(`part '${name}' is missing`);
  const [off, len] = where as number[];
  if (len !== want) throw new Error(`part '${name}' has ${len} bytes, expected ${want}`);
  if (!Number.isSafeInteger(off) || off < 0 || off + len > payload.length) {
    throw new Error(`part '${name}' [${off}, +${len}) lies outside the payload`);
  }
  return payload.slice(off, off + len);
}

function buildRecord(payload: Uint8Array, e: Record<string, unknown>): CompressedTensor {
  const shape = checkShape(e.shape, 'shape');
  const n = elementCount(shape);
  const want = expectedParts(e, n);
  const p: Record<string, Uint8Array> = {};
  for (const [name, bytes] of Object.entries(want)) p[name] = takePart(payload, e, name, bytes);
  const f32 = (u: Uint8Array) => new Float32Array(u.buffer, u.byteOffset, u.byteLength / 4);
  switch (e.kind) {
    case 'dense':
      return { kind: 'dense', shape, values: f32(p.values) };
    case 'sparse':
      return { kind: 'sparse', shape, bitmap: p.bitmap, values: f32(p.values) };
    case 'shared':
      return { kind: 'shared', shape, bits: e.bits as number, codebook: f32(p.codebook),
        count: e.count as number, indices: p.indices, bitmap: p.bitmap ?? null };
    default:
      return { kind: 'quantized', shape, bits: e.bits as 8 | 4, axis: e.axis as 0 | 1,
        blockSize: e.blockSize as number, scales: f32(p.scales), q: p.q };
  }
}

/**
 * Parses and checks the bytes of a compressed model file: frame, length, checksum, header and
 * every record (each is expanded once to prove its parts agree).
 *
 * @param source - named in error messages (a path); default 'compressed model'.
 * @throws NodecclError ERR_NODECCL_IO saying what is wrong: truncated, trailing bytes, wrong
 *   magic or version, checksum mismatch, or a malformed header or record (naming it).
 */
export function decodeCompressedModel(bytes: Uint8Array, source = 'compressed model'):
  CompressedModel {
  requireLittleEndian('decodeCompressedModel()');
  if (!(bytes instanceof Uint8Array)) {
    throw new NodecclTypeError(
      `decodeCompressedModel(): bytes must be a Uint8Array, got ${describeValue(bytes)}`);
  }
  const headerLength = checkFrame(bytes, source);
  checkDigest(bytes, source);
  let header: { format?: unknown; metadata?: unknown; tensors?: unknown };
  try {
    header = JSON.parse(Buffer.from(bytes.subarray(FIXED, FIXED + headerLength)).toString('utf8'));
  } catch (e) {
    throw corrupt(source, `header is not valid JSON (${(e as Error).message})`);
  }
  if (header?.format !== FORMAT || !Array.isArray(header.tensors)) {
    throw corrupt(source, `header format ${JSON.stringify(header?.format)} is not ${FORMAT}`);
  }
  const payload = bytes.subarray(FIXED + headerLength, bytes.length - DIGEST);
  const tensors: Record<string, CompressedTensor> = {};
  for (const [i, e] of (header.tensors as Record<string, unknown>[]).entries()) {
    const name = typeof e?.name === 'string' ? e.name : `#${i}`;
    try {
      tensors[name] = buildRecord(payload, e);
      decompress(tensors[name]);
    } catch (err) {
      throw corrupt(source, `tensor '${name}' is malformed: ${(err as Error).message}`);
    }
  }
  return { tensors, metadata: header.metadata ?? undefined };
}

/**
 * Reads and checks a file written by {@link saveCompressedModel}.
 *
 * @throws NodecclError ERR_NODECCL_IO naming the path: unreadable, truncated, corrupted.
 */
export function loadCompressedModel(file: string): CompressedModel {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw new NodecclError('ERR_NODECCL_IO', `loadCompressedModel(): could not read ${file}: ` +
      `${(e as Error).message}`);
  }
  return decodeCompressedModel(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length),
    file);
}
