// SPDX-License-Identifier: Apache-2.0
// Which parameter server holds which part of which parameter: a pure function of the declared
// keys, their lengths and the number of servers, computed identically by every process.
//
// A key of at least `servers × SPLIT_MIN_ELEMENTS` floats is cut into `servers` contiguous ranges
// of near-equal length (range j on server j), so one large tensor spreads its traffic over all
// servers; a smaller key goes whole to server fnv1a(key) mod servers (hash sharding, as ps-lite
// does), where splitting would only add messages. O(keys) time.

/** A key shorter than `servers ×` this many floats is not split (64 KiB per part at least). */
export const SPLIT_MIN_ELEMENTS = 16_384;

/** A declared parameter: its name and length in floats. */
export interface KeySpec {
  key: string;
  length: number;
}

/** One contiguous part of one key, held by one server. */
export interface Shard {
  /** Index in the plan's `shards`. */
  index: number;
  key: string;
  server: number;
  /** First element of the key in this shard, and the number of elements. */
  offset: number;
  length: number;
}

/** Every shard, and for each server the indices of its shards in plan order. */
export interface ShardPlan {
  servers: number;
  keys: KeySpec[];
  shards: Shard[];
  byServer: number[][];
}

/** 32-bit FNV-1a of the UTF-16 code units of `s`: stable across processes and versions. */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** The shard plan of `keys` (in the given order) over `servers` servers. */
export function planShards(keys: readonly KeySpec[], servers: number): ShardPlan {
  const shards: Shard[] = [];
  const byServer: number[][] = Array.from({ length: servers }, () => []);
  const add = (key: string, server: number, offset: number, length: number) => {
    byServer[server].push(shards.length);
    shards.push({ index: shards.length, key, server, offset, length });
  };
  for (const { key, length } of keys) {
    if (servers > 1 && length >= servers * SPLIT_MIN_ELEMENTS) {
      // Range j is [floor(j·L/S), floor((j+1)·L/S)): lengths differ by at most one.
      for (let j = 0; j < servers; j++) {
        const begin = Math.floor((j * length) / servers);
        add(key, j, begin, Math.floor(((j + 1) * length) / servers) - begin);
      }
    } else {
      add(key, fnv1a(key) % servers, 0, length);
    }
  }
  return { servers, keys: keys.map((k) => ({ ...k })), shards, byServer };
}
