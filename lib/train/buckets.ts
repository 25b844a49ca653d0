// SPDX-License-Identifier: Apache-2.0
// Fusion buckets: packs a list of gradient sizes into a few contiguous buffers, in the order a
// backward pass produces them (last parameter first), so that each can be all-reduced whole.
// Cost: O(number of gradients) to plan; no data is touched.

/** The default bucket capacity, 25 MiB, as PyTorch DDP's `bucket_cap_mb`. */
export const DEFAULT_BUCKET_BYTES = 25 * 1024 * 1024;

/** Where one gradient lives: its bucket and its element offset inside that bucket. */
export interface GradSlot {
  bucket: number;
  offset: number;
}

/** A plan: the gradients of each bucket (in bucket order) and the element count of each. */
export interface BucketPlan {
  /** `members[b]` lists the gradient indices packed into bucket b, in packing order. */
  members: number[][];
  /** `lengths[b]` is bucket b's element count (the sum of its members' sizes). */
  lengths: number[];
  /** `slots[i]` says where gradient i lives. */
  slots: GradSlot[];
}

/**
 * Packs gradients of `sizes` elements (float32, 4 bytes each) into buckets of at most
 * `bucketBytes` bytes, walking the gradients from the last to the first: backpropagation
 * produces the last layer's gradient first, so bucket 0 fills (and can be sent) first.
 *
 * A gradient larger than the capacity gets a bucket of its own; a bucket is never empty
 * unless every size is zero (then there is one bucket of length 0, so a step still has one
 * collective and all ranks stay in step).
 */
export function planBuckets(sizes: readonly number[], bucketBytes: number): BucketPlan {
  const capacity = Math.max(1, Math.floor(bucketBytes / 4));
  const members: number[][] = [];
  const lengths: number[] = [];
  const slots: GradSlot[] = new Array(sizes.length);

  // Start a new bucket when the next gradient would overflow the current, non-empty one.
  for (let i = sizes.length - 1; i >= 0; i--) {
    const b = members.length - 1;
    if (b < 0 || (lengths[b] > 0 && lengths[b] + sizes[i] > capacity)) {
      members.push([]);
      lengths.push(0);
    }
    const cur = members.length - 1;
    slots[i] = { bucket: cur, offset: lengths[cur] };
    members[cur].push(i);
    lengths[cur] += sizes[i];
  }
  if (members.length === 0) {
    members.push([]);
    lengths.push(0);
  }
  return { members, lengths, slots };
}
