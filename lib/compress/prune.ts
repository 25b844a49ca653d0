// SPDX-License-Identifier: Apache-2.0
// Magnitude pruning (Han et al., 2015): the smallest-|w| fraction of the weights is set to zero,
// per tensor or across tensors at once, and a mask keeps them at zero through fine-tuning.
// Optimizers know nothing of masks, so the mask is applied after every step (maskedStep).
import type { Float32Like } from '../optim';
import { NodecclRangeError, NodecclTypeError } from '../errors';
import { checkOptions, describeValue } from '../options';
import { callNative, compressNative, float32Of } from './native';

/** Options of {@link magnitudePrune}. */
export interface PruneOptions {
  /** Fraction of the elements to prune, in [0, 1]; the count is round(sparsity * n), exact. */
  sparsity: number;
  /**
   * `'global'` (default): one threshold across every tensor, so layers lose different
   * fractions; `'tensor'`: each tensor loses exactly `sparsity` of its own elements.
   */
  scope?: 'global' | 'tensor';
}

/** Anything with the optimizers' `step(grads)` (SGD, Adam, ... from lib/optim.ts). */
export interface Steppable {
  step(grads: readonly (Float32Like | null | undefined)[]): void;
}

/**
 * Keep-masks of a list of tensors: 1 keeps the element, 0 holds it at zero. Masks are matched
 * to tensors by position.
 */
export class PruneMask {
  /** One Uint8Array per tensor. */
  readonly masks: Uint8Array[];

  constructor(masks: Uint8Array[]) {
    if (!Array.isArray(masks) || masks.some((m) => !(m instanceof Uint8Array))) {
      throw new NodecclTypeError(
        `PruneMask: masks must be an array of Uint8Array, got ${describeValue(masks)}`);
    }
    this.masks = masks;
  }

  /** Zeroes the pruned elements of `tensors` (in place); call it after each optimizer step. */
  apply(tensors: readonly Float32Like[]): void {
    const data = this.check('apply', tensors);
    callNative(() => compressNative().compressApplyMask(data, this.masks));
  }

  /**
   * One masked optimizer step: the pruned gradients are zeroed (so no momentum builds up
   * there), the optimizer steps, and the pruned weights are zeroed again (stateful optimizers
   * may still move them with moments from before pruning).
   */
  maskedStep(optimizer: Steppable, params: readonly Float32Like[],
             grads: readonly Float32Like[]): void {
    this.apply(grads);
    optimizer.step(grads);
    this.apply(params);
  }

  /** The fraction of elements the masks prune, over all tensors together. */
  sparsity(): number {
    let zeros = 0;
    let total = 0;
    for (const m of this.masks) {
      for (let i = 0; i < m.length; i++) zeros += m[i] === 0 ? 1 : 0;
      total += m.length;
    }
    return total === 0 ? 0 : zeros / total;
  }

  private check(fn: string, tensors: readonly Float32Like[]): Float32Array[] {
    if (!Array.isArray(tensors) || tensors.length !== this.masks.length) {
      throw new NodecclRangeError(
        `PruneMask.${fn}: got ${describeValue(tensors)} but the mask covers ` +
        `${this.masks.length} tensors; pass them in the order they were pruned`);
    }
    return tensors.map((t, i) => {
      const data = float32Of(t, `PruneMask.${fn}: tensors[${i}]`);
      if (data.length !== this.masks[i].length) {
        throw new NodecclRangeError(`PruneMask.${fn}: tensors[${i}] has ${data.length} ` +
          `elements but its mask has ${this.masks[i].length}; pass the pruned tensors in order`);
      }
      return data;
    });
  }
}

/**
 * Builds keep-masks that remove the `sparsity` fraction of smallest-magnitude elements, and
 * zeroes those elements of `tensors` in place. Ties at the threshold are pruned in order, so
 * the count is exact and the result deterministic.
 *
 * @throws NodecclRangeError for a sparsity outside [0, 1] or a NaN weight (naming where).
 * @example
 * ```ts
 * const mask = magnitudePrune([w1, w2], { sparsity: 0.9 });
 * for (...) { computeGrads(); mask.maskedStep(opt, [w1, w2], [g1, g2]); }
 * ```
 */
export function magnitudePrune(tensors: readonly Float32Like[], options: PruneOptions): PruneMask {
  const o = checkOptions('magnitudePrune()', options, ['sparsity', 'scope']);
  const scope = o.scope ?? 'global';
  if (scope !== 'global' && scope !== 'tensor') {
    throw new NodecclTypeError(
      `magnitudePrune(): scope must be 'global' or 'tensor', got ${describeValue(scope)}`);
  }
  if (typeof o.sparsity !== 'number') {
    throw new NodecclTypeError(
      `magnitudePrune(): sparsity must be a number in [0, 1], got ${describeValue(o.sparsity)}`);
  }
  if (!Array.isArray(tensors)) {
    throw new NodecclTypeError(
      `magnitudePrune(): tensors must be an array, got ${describeValue(tensors)}`);
  }
  const data = tensors.map((t, i) => float32Of(t, `magnitudePrune(): tensors[${i}]`));
  const masks = data.map((d) => new Uint8Array(d.length));
  const nat = compressNative();
  callNative(() => {
    if (scope === 'global') nat.compressMagnitudeMask(data, o.sparsity, masks);
    else data.forEach((d, i) => nat.compressMagnitudeMask([d], o.sparsity, [masks[i]]));
  });
  const mask = new PruneMask(masks);
  mask.apply(data);
  return mask;
}
