// SPDX-License-Identifier: Apache-2.0
// Knowledge distillation (Hinton, Vinyals and Dean, 2015): a native loss that trains a student
// on the teacher's softened outputs and the true labels at once, with its gradient in one call:
//   L = alpha * T^2 * KL(softmax(t / T) || softmax(s / T)) + (1 - alpha) * CE(softmax(s), y),
// averaged over the rows of a batch.
import { NodecclRangeError, NodecclTypeError } from '../errors';
import { checkOptions, describeValue } from '../options';
import { callNative, compressNative, float32Of } from './native';

/** Options of {@link distillationLoss}. */
export interface DistillationOptions {
  /** Classes per row (the logits are [rows x classes], row-major). Required. */
  classes: number;
  /** Softening temperature T > 0. Default 4. */
  temperature?: number;
  /** Weight of the teacher term, in [0, 1]; the labels get 1 - alpha. Default 0.9. */
  alpha?: number;
  /**
   * Where to write dL/d(student logits): a Float32Array of the student's length, or `true` to
   * allocate one, or `false` to skip the gradient. Default true.
   */
  grad?: Float32Array | boolean;
}

/** {@link distillationLoss}'s result. */
export interface DistillationResult {
  /** alpha * soft + (1 - alpha) * hard. */
  loss: number;
  /** Mean of T^2 * KL(teacher_T || student_T) over rows. */
  soft: number;
  /** Mean cross-entropy of the student against the labels. */
  hard: number;
  /** dL/d(student logits), or null when not asked for. */
  grad: Float32Array | null;
}

/**
 * The distillation loss of `student` logits against `teacher` logits and `labels`, and its
 * gradient with respect to the student logits (worked in float64, gradient rounded to float32).
 *
 * @throws NodecclRangeError for mismatched lengths, a label outside [0, classes), a
 *   temperature <= 0, an alpha outside [0, 1], or a non-finite logit.
 */
export function distillationLoss(student: Float32Array, teacher: Float32Array,
                                 labels: Int32Array | Uint8Array | readonly number[],
                                 options: DistillationOptions): DistillationResult {
  const o = checkOptions('distillationLoss()', options,
    ['classes', 'temperature', 'alpha', 'grad']);
  const s = float32Of(student, 'distillationLoss(): student');
  const t = float32Of(teacher, 'distillationLoss(): teacher');
  if (!Number.isSafeInteger(o.classes) || o.classes < 1) {
    throw new NodecclRangeError(
      `distillationLoss(): classes must be a whole number >= 1, got ${describeValue(o.classes)}`);
  }
  const y = labels instanceof Int32Array ? labels : Int32Array.from(labels as ArrayLike<number>);
  if (y.length * o.classes !== s.length) {
    throw new NodecclRangeError(`distillationLoss(): ${y.length} labels x ${o.classes} classes ` +
      `needs ${y.length * o.classes} student logits, got ${s.length}`);
  }
  let grad: Float32Array | null = null;
  if (o.grad instanceof Float32Array) grad = o.grad;
  else if (o.grad === undefined || o.grad === true) grad = new Float32Array(s.length);
  else if (o.grad !== false) {
    throw new NodecclTypeError('distillationLoss(): grad must be a Float32Array or a boolean, ' +
      `got ${describeValue(o.grad)}`);
  }
  const r = callNative(() => compressNative().compressDistillLoss(s, t, y, o.classes,
    o.temperature ?? 4, o.alpha ?? 0.9, grad));
  return { loss: r.loss, soft: r.soft, hard: r.hard, grad };
}
