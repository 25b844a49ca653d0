// SPDX-License-Identifier: Apache-2.0
// The shared heap's allocator (see shared_heap.h).
#include "transport/shm/shared_heap.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>

#include "common/error.h"

namespace nodeccl {

static_assert(std::atomic<uint64_t>::is_always_lock_free, "shared atomics must be lock-free");

SharedHeap::SharedHeap(int fd, size_t fileOffset, size_t bytes)
    : fd_(fd), fileOffset_(fileOffset), bytes_(bytes / kPage * kPage) {
  void* p = bytes_ >= 2 * kPage
                ? ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                         static_cast<off_t>(fileOffset))
                : MAP_FAILED;
  if (p == MAP_FAILED ||
      ::fallocate(fd, 0, static_cast<off_t>(fileOffset), static_cast<off_t>(kPage)) != 0) {
    std::string why = strcat("shared heap of ", bytes_, " bytes: ", std::strerror(errno));
    if (p != MAP_FAILED) ::munmap(p, bytes_);
    ::close(fd);
    throw Error(ErrorCode::kIo, why);
  }
  base_ = static_cast<unsigned char*>(p);
  new (base_) std::atomic<uint64_t>(0);
  free_[kPage] = bytes_ - kPage;
}

SharedHeap::~SharedHeap() {
  ::munmap(base_, bytes_);
  detach();
}

void SharedHeap::detach() {
  std::lock_guard<std::mutex> lock(mu_);
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void* SharedHeap::allocate(size_t bytes, std::string* why) {
  const size_t want = pageBytes(bytes);
  std::lock_guard<std::mutex> lock(mu_);
  if (fd_ < 0) {
    *why = "the communicator was destroyed";
    return nullptr;
  }
  if (gaveUp(base_).load() != 0) {
    *why = "a collective on this communicator failed (shared arrays are not handed out after)";
    return nullptr;
  }
  for (auto it = free_.begin(); it != free_.end(); ++it) {
    if (it->second < want) continue;
    const size_t at = it->first;
    if (::fallocate(fd_, 0, static_cast<off_t>(fileOffset_ + at), static_cast<off_t>(want)) !=
        0) {
      *why = strcat("cannot back ", want, " bytes of shared memory: ", std::strerror(errno),
                    " (is /dev/shm full? `df -h /dev/shm`; a container may need --shm-size)");
      return nullptr;
    }
    const size_t rest = it->second - want;
    free_.erase(it);
    if (rest > 0) free_[at + want] = rest;
    used_[at] = want;
    return base_ + at;
  }
  size_t largest = 0;
  for (const auto& f : free_) largest = f.second > largest ? f.second : largest;
  *why = strcat("the shared heap has no free range of ", want, " bytes (largest free: ", largest,
                " of ", bytes_, "; the heap is this rank's share of half of /dev/shm, at most "
                "8 GiB, or NODECCL_SHM_WINDOW_MB); drop other shared arrays (their memory comes "
                "back when they are garbage-collected) or use a plain one");
  return nullptr;
}

void SharedHeap::release(void* p) {
  std::lock_guard<std::mutex> lock(mu_);
  const size_t at = static_cast<size_t>(static_cast<unsigned char*>(p) - base_);
  auto it = used_.find(at);
  NODECCL_CHECK(it != used_.end());
  size_t start = at, len = it->second;
  used_.erase(it);
  // After a failed call a late peer may still write one chunk into an array it was working
  // in (allreduce_shared.cc): its pages stay as they are and are never handed out again.
  if (gaveUp(base_).load() != 0) return;
  if (fd_ >= 0) {
    ::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                static_cast<off_t>(fileOffset_ + start), static_cast<off_t>(len));
  }
  // Merge with the free ranges on either side.
  auto next = free_.lower_bound(start);
  if (next != free_.end() && next->first == start + len) {
    len += next->second;
    next = free_.erase(next);
  }
  if (next != free_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == start) {
      start = prev->first;
      len += prev->second;
      free_.erase(prev);
    }
  }
  free_[start] = len;
}

int64_t SharedHeap::offsetOf(const void* p, size_t bytes) const {
  const auto* q = static_cast<const unsigned char*>(p);
  if (q < base_ + kPage || q >= base_ + bytes_) return -1;
  const size_t at = static_cast<size_t>(q - base_);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = used_.upper_bound(at);
  if (it == used_.begin()) return -1;
  --it;
  if (at + bytes > it->first + it->second) return -1;
  return static_cast<int64_t>(at);
}

}  // namespace nodeccl
