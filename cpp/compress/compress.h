// SPDX-License-Identifier: Apache-2.0
// Model-compression kernels: magnitude pruning masks, bitmap sparse storage, b-bit index
// packing, 1-D k-means weight sharing, int8/int4 quantization with per-channel or per-block
// scales, and the knowledge-distillation loss. Each lives in its own file (named below) whose
// header states its cost; all are synchronous, keep no state, and check their arguments before
// writing anything, throwing nodeccl::Error(kInvalidArgument) with the offending value.
//
// Thread safety: none of these functions share state; callers must not write the same arrays
// from two threads at once.
#pragma once

#include <cstddef>
#include <cstdint>

namespace nodeccl {
namespace compress {

// ---- magnitude pruning (prune.cc) ------------------------------------------------------------

// Keep-masks (1 keep, 0 pruned) over `count` tensors, pruning exactly
// round(sparsity * total) of the elements with the smallest |w| across all of them together
// (global pruning; pass one tensor for per-tensor pruning). Ties at the threshold are pruned in
// order (tensor by tensor, index by index), so the count is exact and the result deterministic.
// NaN weights are refused. Returns the number pruned.
size_t magnitudeMask(const float* const* tensors, const size_t* sizes, size_t count,
                     double sparsity, uint8_t* const* masks);

// Zeroes every element whose mask byte is 0, in each of `count` tensors.
void applyMask(float* const* tensors, const uint8_t* const* masks, const size_t* sizes,
               size_t count);

// ---- bitmap sparse storage (sparse.cc) ---------------------------------------------------------

// How many elements of x[0..n) are stored by sparseEncode (all but +0 and -0).
size_t countNonzero(const float* x, size_t n);

// Bit i of `bitmap` (LSB first, ceil(n / 8) bytes) is set when x[i] != 0; the nonzeros go to
// `values` in order. `capacity` is the length of `values`; it must hold countNonzero(x, n).
// Returns the number written.
size_t sparseEncode(const float* x, size_t n, uint8_t* bitmap, float* values, size_t capacity);

// The inverse: out[i] = next value where bit i is set, else 0. Throws when the bitmap's set bits
// do not number `nnz` or bits past n are set (a corrupted or mismatched record).
void sparseDecode(const uint8_t* bitmap, const float* values, size_t nnz, size_t n, float* out);

// ---- b-bit packing (bitpack.cc) -----------------------------------------------------------

// Bytes that n codes of `bits` bits take when packed: ceil(n * bits / 8).
size_t packedBytes(size_t n, int bits);

// Packs codes[0..n) (each < 2^bits, bits 1..8) into out, LSB first, with no padding between
// codes; the last byte's unused high bits are 0.
void packBits(const uint8_t* codes, size_t n, int bits, uint8_t* out);

// The inverse of packBits.
void unpackBits(const uint8_t* packed, size_t n, int bits, uint8_t* codes);

// ---- k-means weight sharing (kmeans.cc) --------------------------------------------------------

struct KMeansOptions {
  int k = 16;             // clusters, 1..256 (2^b shared values for b bits)
  uint64_t seed = 1;      // k-means++ sampling seed: same seed, same input, same result
  int maxIterations = 100;
};

struct KMeansResult {
  int iterations = 0;     // Lloyd iterations run (stops early when no assignment changes)
  double inertia = 0;     // sum of squared distances of the points to their centroid
};

// Clusters x[0..n) into k shared values: k-means++ seeding, then Lloyd iterations. Writes the
// centroids ascending to centroids[0..k) and each point's centroid index to codes[0..n).
// With fewer than k distinct values some centroids repeat. Refuses NaN or infinite input.
KMeansResult kmeans1d(const float* x, size_t n, const KMeansOptions& o, float* centroids,
                      uint8_t* codes);

// ---- int8 / int4 quantization (quantize.cc) ---------------------------------------------------

// How a [rows x cols] row-major tensor is cut into groups sharing one scale: per channel along
// `axis` (0: one scale per row, 1: one per column) when blockSize is 0, otherwise contiguous
// blocks of blockSize elements of the flattened tensor (the last one may be shorter).
struct QuantLayout {
  size_t rows = 0;
  size_t cols = 0;
  int axis = 0;
  size_t blockSize = 0;
};

// Number of scales the layout needs.
size_t quantGroups(const QuantLayout& l);

// Bytes of the quantized values: n for 8 bits, ceil(n / 2) for 4 bits.
size_t quantBytes(size_t n, int bits);

// Symmetric quantization: scale = max|x| / qmax per group (qmax 127 for 8 bits, 7 for 4), and
// q = round-half-even(x / scale) clamped to [-qmax, qmax] (0 for an all-zero group, whose scale
// is 0). 8 bits: one int8 per element; 4 bits: two's-complement nibbles, the even element in the
// low nibble. Refuses NaN or infinite input.
void quantize(const float* x, const QuantLayout& l, int bits, float* scales, uint8_t* q);

// x = q * scale for every element.
void dequantize(const uint8_t* q, const float* scales, const QuantLayout& l, int bits,
                float* out);

// ---- distillation loss (distill.cc) -------------------------------------------------------------

struct DistillOptions {
  double temperature = 4.0;  // T > 0 softens both distributions
  double alpha = 0.5;        // weight of the soft (teacher) term; 1 - alpha weighs the labels
};

struct DistillResult {
  double loss = 0;  // alpha * soft + (1 - alpha) * hard
  double soft = 0;  // mean over rows of T^2 * KL(softmax(t / T) || softmax(s / T))
  double hard = 0;  // mean over rows of the cross-entropy of softmax(s) with the label
};

// Hinton et al.'s distillation loss of student logits s against teacher logits t (both
// [rows x classes]) and integer labels, and, when grad is not null, its gradient with respect
// to s: (alpha * T * (softmax(s/T) - softmax(t/T)) + (1 - alpha) * (softmax(s) - onehot)) / rows.
DistillResult distillLoss(const float* student, const float* teacher, const int32_t* labels,
                          size_t rows, size_t classes, const DistillOptions& o, float* grad);

}  // namespace compress
}  // namespace nodeccl
