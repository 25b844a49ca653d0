// SPDX-License-Identifier: Apache-2.0
// Checks shared by the optimizers: hyperparameter rules, the shape of a fused call's tensor list
// (present pointers, whole step counts, no overlapping arrays within a tensor), number printing.
#include <charconv>
#include <cmath>
#include <cstdint>
#include <vector>

#include "common/error.h"
#include "optim/optim.h"

namespace nodeccl {
namespace optim {

AdamOptions adamwDefaults() {
  AdamOptions o;
  o.weightDecay = 1e-2;
  o.decoupled = true;
  return o;
}

std::string formatNumber(double x) {
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), x);
  return std::string(buf, res.ptr);
}

void requireOption(bool ok, const char* who, const char* name, double value, const char* rule) {
  if (ok) return;
  throw Error(ErrorCode::kInvalidArgument,
              strcat(who, ": ", name, " must be ", rule, ", got ", formatNumber(value)));
}

namespace {

// Step counts stay below 2^53 - 1 so that adding one is exact in float64.
constexpr double kMaxStep = 9007199254740991.0;

struct Span {
  const char* name;
  uintptr_t begin;
  uintptr_t end;
};

// Within one tensor the kernels take every array as `restrict`: refuse overlapping memory.
void checkNoOverlap(const char* who, size_t index, const std::vector<Span>& spans) {
  for (size_t a = 0; a < spans.size(); ++a) {
    for (size_t b = a + 1; b < spans.size(); ++b) {
      if (spans[a].begin < spans[b].end && spans[b].begin < spans[a].end) {
        throw Error(ErrorCode::kInvalidArgument,
                    strcat(who, ": ", spans[a].name, "[", index, "] and ", spans[b].name, "[",
                           index, "] share memory; each must be a separate array"));
      }
    }
  }
}

// The pointer arrays themselves must be present whenever there is a tensor to update.
void checkListPointers(const char* who, const ParamList& list, const StateArrays* states,
                       size_t numStates) {
  if (list.count == 0) return;
  if (!list.params || !list.grads || !list.sizes || !list.steps) {
    throw Error(ErrorCode::kInvalidArgument,
                strcat(who, ": params, grads, sizes and steps are required for ", list.count,
                       " tensors"));
  }
  for (size_t k = 0; k < numStates; ++k) {
    if (!states[k].arrays) {
      throw Error(ErrorCode::kInvalidArgument,
                  strcat(who, ": ", states[k].name, " is required by these options"));
    }
  }
}

}  // namespace

void checkParamList(const char* who, const ParamList& list, const StateArrays* states,
                    size_t numStates) {
  checkListPointers(who, list, states, numStates);
  std::vector<Span> spans;
  for (size_t i = 0; i < list.count; ++i) {
    // Whole, non-negative and exactly incrementable step counts.
    double s = list.steps[i];
    if (!(s >= 0 && s < kMaxStep && std::floor(s) == s)) {
      throw Error(ErrorCode::kInvalidArgument,
                  strcat(who, ": steps[", i, "] is ", formatNumber(s),
                         "; a step count must be a whole number in [0, 2^53 - 1)"));
    }

    // Every array of a non-empty tensor is present and apart from the others.
    size_t n = list.sizes[i];
    if (n == 0) continue;
    size_t bytes = n * sizeof(float);
    spans.clear();
    spans.push_back({"params", reinterpret_cast<uintptr_t>(list.params[i]), 0});
    spans.push_back({"grads", reinterpret_cast<uintptr_t>(list.grads[i]), 0});
    for (size_t k = 0; k < numStates; ++k) {
      spans.push_back({states[k].name, reinterpret_cast<uintptr_t>(states[k].arrays[i]), 0});
    }
    for (Span& sp : spans) {
      if (sp.begin == 0) {
        throw Error(ErrorCode::kInvalidArgument,
                    strcat(who, ": ", sp.name, "[", i, "] is null but tensor ", i, " has ", n,
                           " elements"));
      }
      sp.end = sp.begin + bytes;
    }
    checkNoOverlap(who, i, spans);
  }
}

}  // namespace optim
}  // namespace nodeccl
