// SPDX-License-Identifier: Apache-2.0
// Argument checks shared by the collectives. Each throws kInvalidArgument with a message that
// names the rank, the collective, the argument and its value, and says what to pass instead.
// They run before comm.beginOp, so a rejected call sends nothing and uses no operation number.
#pragma once

#include <cstddef>

#include "comm/communicator.h"
#include "common/dtype.h"

namespace nodeccl {

// `dtype` and `op` arrive from JS as integers: reject values outside the enums.
void checkDtype(const Communicator& comm, const char* coll, DataType dtype);
void checkOp(const Communicator& comm, const char* coll, ReduceOp op);

// Returns blocks * count * elemBytes, the byte size of a buffer of `blocks` blocks of `count`
// elements of `elemBytes` bytes each; throws when that overflows size_t.
size_t checkedBytes(const Communicator& comm, const char* coll, size_t count, size_t elemBytes,
                    size_t blocks = 1);

// A buffer argument (`arg` is its name) may be null only when it holds no elements.
void checkBuffer(const Communicator& comm, const char* coll, const char* arg, const void* data,
                 size_t count);

// All-gather's input and output, and reduce-scatter's output and input, may share memory only
// in the in-place layout: the one-block buffer (`part`, `block` bytes) is block r, this rank's,
// of the n-block one (`whole`). Any other overlap would make the call overwrite data that it,
// or a peer reading in place, has still to read: a wrong answer, so it is refused.
void checkPartOfWhole(const Communicator& comm, const char* coll, const char* partArg,
                      const void* part, const char* wholeArg, const void* whole, size_t block);

// A root may be any rank of the world; a point-to-point peer any rank but this one.
void checkRoot(const Communicator& comm, const char* coll, int root);
void checkPeer(const Communicator& comm, const char* coll, int peer);

// The start of a broadcast whatever its algorithm: checks the arguments, begins the
// operation, records `algo` (and traces the call); returns the bytes to broadcast.
size_t beginBroadcast(Communicator& comm, void* data, size_t count, DataType dtype, int root,
                      Millis timeout, const char* algo);

// A buffer of 0 elements may be null, but empty messages still travel (as headers) and the
// transport wants an address for them: substitute `empty`, a byte of the caller's.
inline void* orEmpty(void* data, unsigned char& empty) { return data ? data : &empty; }
inline const void* orEmpty(const void* data, unsigned char& empty) {
  return data ? data : &empty;
}

}  // namespace nodeccl
