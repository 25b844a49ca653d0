// SPDX-License-Identifier: Apache-2.0
// Plain float32 matrix products for the tensor-parallel layers: row-major, accumulating in
// float32 in a fixed order (so a split layer rounds like the unsplit one, block by block).
//
// Cost: m * k * n multiply-adds each; the loops run i, p, j so the inner loop is contiguous.

/** out [m x n] = a [m x k] · b [k x n]. */
export function matmul(a: Float32Array, b: Float32Array, m: number, k: number, n: number,
                       out: Float32Array = new Float32Array(m * n)): Float32Array {
  out.fill(0);
  for (let i = 0; i < m; i++) {
    const o = i * n;
    for (let p = 0; p < k; p++) {
      const av = a[i * k + p];
      if (av === 0) continue;
      const bo = p * n;
      for (let j = 0; j < n; j++) out[o + j] += av * b[bo + j];
    }
  }
  return out;
}

/** out [k x n] = aᵀ · b for a [m x k], b [m x n] (a weight gradient: xᵀ · dy). */
export function matmulTA(a: Float32Array, b: Float32Array, m: number, k: number, n: number,
                         out: Float32Array = new Float32Array(k * n)): Float32Array {
  out.fill(0);
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < k; p++) {
      const av = a[i * k + p];
      if (av === 0) continue;
      const o = p * n;
      const bo = i * n;
      for (let j = 0; j < n; j++) out[o + j] += av * b[bo + j];
    }
  }
  return out;
}

/** out [m x k] = a · bᵀ for a [m x n], b [k x n] (an input gradient: dy · Wᵀ). */
export function matmulTB(a: Float32Array, b: Float32Array, m: number, n: number, k: number,
                         out: Float32Array = new Float32Array(m * k)): Float32Array {
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < k; p++) {
      let s = 0;
      for (let j = 0; j < n; j++) s += a[i * n + j] * b[p * n + j];
      out[i * k + p] = Math.fround(s);
    }
  }
  return out;
}

/** Columns [c0, c1) of a row-major [rows x cols] matrix, as a [rows x (c1 - c0)] copy. */
export function sliceColumns(a: Float32Array, rows: number, cols: number, c0: number,
                             c1: number): Float32Array {
  const w = c1 - c0;
  const out = new Float32Array(rows * w);
  for (let i = 0; i < rows; i++) out.set(a.subarray(i * cols + c0, i * cols + c1), i * w);
  return out;
}
