// SPDX-License-Identifier: Apache-2.0
// Loss functions as native kernels (cpp/loss): the loss and its gradient with respect to the
// predictions in one synchronous call, as torch.nn.functional.mse_loss and cross_entropy.
import { fromNative, NodecclRangeError, NodecclTypeError } from './errors';
import { native } from './native';
import { checkOptions, describeValue } from './options';

/** The loss's value and, when asked for, its gradient with respect to the predictions. */
export interface LossResult {
  /** The loss (accumulated in float64). */
  loss: number;
  /** d loss / d predictions, float32, shaped like the predictions; null when not asked for. */
  grad: Float32Array | null;
}

/** Options shared by the losses. */
export interface LossOptions {
  /** 'mean' (default) or 'sum' over elements (MSE) or rows (cross-entropy). */
  reduction?: 'mean' | 'sum';
  /**
   * Where to write the gradient: a Float32Array of the predictions' length, `true` (default)
   * to allocate one, or `false` for the loss only.
   */
  grad?: Float32Array | boolean;
}

/** Options of {@link softmaxCrossEntropy}. */
export interface CrossEntropyOptions extends LossOptions {
  /** Rows with this label count for nothing and get a zero gradient. Default -100 (torch). */
  ignoreIndex?: number;
}

function callNative<T>(fn: (n: ReturnType<typeof native>) => T): T {
  const n = native();
  try {
    return fn(n);
  } catch (e) {
    throw fromNative(e);
  }
}

function floats(who: string, what: string, v: unknown): Float32Array {
  if (v instanceof Float32Array) return v;
  throw new NodecclTypeError(`${who}: ${what} must be a Float32Array, got ${describeValue(v)}`);
}

function gradTarget(who: string, g: LossOptions['grad'], n: number): Float32Array | null {
  if (g === false) return null;
  if (g === undefined || g === true) return new Float32Array(n);
  return floats(who, 'options.grad', g);
}

/**
 * Mean squared error: sum (p - t)^2, divided by n for 'mean'; gradient 2 (p - t) (/ n).
 * @example const { loss, grad } = mseLoss(pred, target);
 */
export function mseLoss(pred: Float32Array, target: Float32Array,
                        options: LossOptions = {}): LossResult {
  const who = 'mseLoss';
  checkOptions(who, options, ['reduction', 'grad']);
  const p = floats(who, 'pred', pred);
  const t = floats(who, 'target', target);
  const grad = gradTarget(who, options.grad, p.length);
  const loss = callNative((n) => n.mseLoss(p, t, options.reduction ?? 'mean', grad));
  return { loss, grad };
}

/**
 * Softmax cross-entropy of `logits` (rows x classes, row-major) against one class index per
 * row, with the log-sum-exp taken from each row's maximum (no overflow for any finite logits).
 * Gradient: softmax(logits) - onehot(label), divided by the counted rows for 'mean'.
 * Labels outside [0, classes) other than ignoreIndex throw NodecclRangeError naming the row.
 */
export function softmaxCrossEntropy(logits: Float32Array, labels: Int32Array | readonly number[],
                                    classes: number,
                                    options: CrossEntropyOptions = {}): LossResult {
  const who = 'softmaxCrossEntropy';
  checkOptions(who, options, ['reduction', 'grad', 'ignoreIndex']);
  const x = floats(who, 'logits', logits);
  const l = labels instanceof Int32Array ? labels : Int32Array.from(labels);
  if (!Number.isInteger(classes) || classes < 1 || x.length !== l.length * classes) {
    throw new NodecclRangeError(`${who}: logits has ${x.length} elements; with ${l.length} ` +
      `labels and ${classes} classes it needs labels.length x classes = ${l.length * classes}`);
  }
  const grad = gradTarget(who, options.grad, x.length);
  const loss = callNative((n) => n.softmaxCrossEntropy(x, l, classes, options.reduction ?? 'mean',
    options.ignoreIndex ?? -100, grad));
  return { loss, grad };
}
