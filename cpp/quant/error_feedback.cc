// SPDX-License-Identifier: Apache-2.0
// Error feedback for lossy codecs (Seide et al. 2014; Karimireddy et al. 2019): what a step
// could not send is added to the next step's gradient, so nothing is lost, only delayed.
//   a = grad + residual           (float64)
//   send encode(float32(a))
//   residual = a - decode(sent)   (float64)
// Then sent_1 + ... + sent_T + residual_T = grad_1 + ... + grad_T exactly, as long as the
// float64 additions are exact, which holds unless magnitudes differ by more than 2^29.
// Cost: per element read 4 + 8, write 8 bytes, plus one encode and one decode (in `scratch`).
#include "common/error.h"
#include "quant/codec.h"

namespace nodeccl {
namespace quant {

void encodeWithFeedback(const Codec& c, const float* grad, double* residual, size_t n,
                        uint8_t* out, size_t outBytes, float* scratch) {
  validate(c);
  if (outBytes != encodedBytes(c, n)) {
    throw Error(ErrorCode::kInvalidArgument,
                strcat("error feedback (", codecName(c.kind), "): the output has ", outBytes,
                       " bytes but ", n, " elements encode to ", encodedBytes(c, n)));
  }
  float* a32 = scratch;
  float* sent = scratch + n;
  for (size_t i = 0; i < n; ++i) {
    residual[i] += static_cast<double>(grad[i]);
    a32[i] = static_cast<float>(residual[i]);
  }
  encode(c, a32, n, out, outBytes);
  decode(c, out, outBytes, sent, n, false);
  for (size_t i = 0; i < n; ++i) residual[i] -= static_cast<double>(sent[i]);
}

}  // namespace quant
}  // namespace nodeccl
