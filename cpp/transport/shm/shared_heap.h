// SPDX-License-Identifier: Apache-2.0
// A rank's shared heap: memory for the arrays its user allocates with allocShared, which every
// peer on the host has mapped too, so that a collective can read and write them in place
// instead of copying them through a window (coll/allreduce_shared.cc). It is the second part
// of the rank's window file (shm_transport.h), sparse like the first: only what is allocated
// uses memory, backed with fallocate when allocated (so a full /dev/shm is an error here,
// never a SIGBUS later) and handed back with a hole punch when freed.
//
// Allocation: first fit over whole 4 KiB pages (a page backed or punched belongs to one array
// only), with free ranges merged when released. The first page is the control page: the word
// a rank sets when it gives up on a call (gaveUp), which peers working in its arrays check.
//
// Lifetime: the heap is shared_ptr-owned by its transport and by every array allocated from
// it, so arrays stay valid after the communicator is destroyed (which closes the heap's file
// descriptor); the mapping goes when the last of them is released. Peers' heaps are reached
// only through the transport, never kept.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace nodeccl {

class SharedHeap {
 public:
  static constexpr size_t kPage = 4096;

  // Takes `fd` (a descriptor of the window file, closed by the heap) and maps `bytes` of it
  // from `fileOffset`. Throws kIo when the mapping or the control page cannot be made.
  SharedHeap(int fd, size_t fileOffset, size_t bytes);
  ~SharedHeap();
  SharedHeap(const SharedHeap&) = delete;
  SharedHeap& operator=(const SharedHeap&) = delete;

  // `bytes` (rounded up to whole pages, at least one: pageBytes), zero-filled and page
  // aligned; null with *why when the heap has no free range that large, /dev/shm cannot back
  // it, or a collective failed (gaveUp).
  void* allocate(size_t bytes, std::string* why);
  // Hands back what allocate returned (its pages are punched out of the file; after a failed
  // call, once gaveUp is set, they are kept and never handed out again).
  void release(void* p);
  static size_t pageBytes(size_t bytes) {
    return bytes == 0 ? kPage : (bytes + kPage - 1) / kPage * kPage;
  }

  // When the transport closes: no more allocations, and the file's descriptor is closed now
  // (released arrays are then not punched out; their memory goes with the mapping).
  void detach();

  // Offset from base() of [p, p + bytes) when that range lies in one allocation, else -1.
  int64_t offsetOf(const void* p, size_t bytes) const;
  unsigned char* base() const { return base_; }
  size_t bytes() const { return bytes_; }

  // The control word of the heap mapped at `base` (this rank's or a peer's): nonzero once its
  // rank gave up on a collective that worked in its arrays (see coll/staged.h).
  static std::atomic<uint64_t>& gaveUp(unsigned char* base) {
    return *reinterpret_cast<std::atomic<uint64_t>*>(base);
  }

 private:
  int fd_;
  size_t fileOffset_;
  size_t bytes_;
  unsigned char* base_ = nullptr;
  mutable std::mutex mu_;
  std::map<size_t, size_t> free_;  // offset -> bytes, merged
  std::map<size_t, size_t> used_;  // offset -> bytes, as allocated
};

}  // namespace nodeccl
