// SPDX-License-Identifier: Apache-2.0
// Direct-exchange all-reduce, the small-message path, as an object that can be driven two ways:
// to completion on the worker thread (finish), or without ever blocking (tryFinish, through the
// shared-memory transport), so that the binding can complete a tiny all-reduce on the calling
// thread when the peers are already there and hand the rest to the worker when they are not.
#pragma once

#include <cstddef>
#include <vector>

#include "comm/communicator.h"
#include "common/dtype.h"

namespace nodeccl {

// True when allReduce picks the direct exchange for this call (NODECCL_ALGO, else by size).
bool allReduceUsesDirect(const Communicator& comm, size_t count, DataType dtype);

class DirectAllReduce {
 public:
  // Checks the arguments and begins the operation (comm.beginOp): from here on it must be
  // finished, by tryFinish returning true or by finish. Throws like allReduce.
  DirectAllReduce(Communicator& comm, void* data, size_t count, DataType dtype, ReduceOp op,
                  Millis timeout);

  // Moves every message that can move now without waiting; true once the result is in
  // `data`. Only with the shared-memory transport (else returns false and does nothing).
  bool tryFinish();

  // Completes the operation, blocking as needed (any transport).
  void finish();

 private:
  void combine();
  unsigned char* slot(int r);

  Communicator& comm_;
  unsigned char* data_;
  size_t count_;
  size_t bytes_;
  DataType dtype_;
  ReduceOp op_;
  std::vector<char> sent_, received_;  // per exchange distance k = 1..n-1
  bool done_ = false;
};

}  // namespace nodeccl
