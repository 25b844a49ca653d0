// SPDX-License-Identifier: Apache-2.0
// Validation of option bags shared by every public function: unknown keys are rejected with a
// did-you-mean suggestion, so a typo such as `{ dtyp: 'float16' }` fails loudly instead of
// being ignored.
import { NodecclTypeError } from './errors';

/**
 * Optimal string alignment distance (Levenshtein plus adjacent transpositions), so that
 * `flaot32` is one edit from `float32`. Inputs are short option and dtype names.
 */
export function editDistance(a: string, b: string): number {
  // d[i][j] = distance between a[0..i) and b[0..j), kept as three rolling rows.
  let prev2: number[] = [];
  let prev: number[] = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur: number[] = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d = Math.min(d, prev2[j - 2] + 1);
      }
      cur.push(d);
    }
    prev2 = prev;
    prev = cur;
  }
  return prev[b.length];
}

/**
 * The candidate closest to `value`, or undefined when none is plausibly what was meant.
 * Case is ignored (`worldsize` suggests `worldSize`); up to a third of the letters, and at
 * least one, may differ.
 */
export function didYouMean(value: string, candidates: readonly string[]): string | undefined {
  const v = value.toLowerCase();
  const limit = Math.max(1, Math.floor(v.length / 3));
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(v, c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return bestDistance <= limit ? best : undefined;
}

/** `; did you mean 'x'?` when a suggestion exists, otherwise the empty string. */
export function suggestionSuffix(value: string, candidates: readonly string[]): string {
  const s = didYouMean(value, candidates);
  return s === undefined ? '' : `; did you mean '${s}'?`;
}

/** Short, printable description of any value for error messages: `'abc'`, `3`, `Float64Array`. */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') {
    return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
  }
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  if (ArrayBuffer.isView(value)) return value.constructor.name;
  if (typeof value === 'object') return value.constructor?.name ?? 'an object';
  if (typeof value === 'function') return 'a function';
  return String(value);
}

/**
 * Checks that `options` is undefined or a plain object whose keys are all in `allowedKeys`,
 * and returns it (an empty object for undefined).
 *
 * @param fnName - how the caller is named in messages, e.g. `'tensor()'`.
 * @throws NodecclTypeError when `options` is not an object, or names an unknown key; the
 *   message lists the allowed keys and suggests the closest one.
 *
 * @example
 * ```ts
 * const opts = checkOptions('tensor()', options, ['dtype', 'shape']);
 * ```
 */
export function checkOptions<T extends object>(
  fnName: string, options: T | undefined, allowedKeys: readonly string[],
): T {
  if (options === undefined) return {} as T;
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new NodecclTypeError(
      `${fnName}: options must be an object such as { ${allowedKeys[0] ?? ''}: ... }, ` +
      `got ${describeValue(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (!allowedKeys.includes(key)) {
      const allowed = allowedKeys.length > 0 ? allowedKeys.join(', ') : '(none)';
      const hint = suggestionSuffix(key, allowedKeys) || '.';
      throw new NodecclTypeError(
        `${fnName}: unknown option '${key}'${hint} Allowed options: ${allowed}.`);
    }
  }
  return options;
}
