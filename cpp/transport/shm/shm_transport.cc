// SPDX-License-Identifier: Apache-2.0
// The shared-memory transport (see shm_transport.h): segment setup and unlinking, the ring
// copy loops, and the spin-then-futex wait with peer liveness checks.
#include "transport/shm/shm_transport.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <random>

#include "common/error.h"
#include "common/log.h"
#include "common/trace.h"
#include "transport/header.h"

namespace nodeccl {

// A (sender, receiver) ring. head: stream bytes written (sender only); tail: stream bytes
// consumed (receiver only). Each on its own cache line; the data follows.
struct ShmTransport::Channel {
  alignas(64) std::atomic<uint64_t> head;
  alignas(64) std::atomic<uint64_t> tail;
  alignas(64) unsigned char data[kRingBytes];
};

// A rank's segment: identification, its doorbell, then one Channel per sender rank.
struct ShmTransport::Segment {
  uint32_t magic;
  uint32_t size;
  uint64_t ringBytes;
  alignas(64) std::atomic<uint32_t> bell;  // futex word: bumped on every event for this rank
  std::atomic<uint32_t> sleepers;          // threads in FUTEX_WAIT on bell
  Channel channels[1];                     // really `size` of them
};

namespace {

using Clock = std::chrono::steady_clock;
constexpr uint32_t kSegMagic = 0x4d48534e;  // "NSHM"
// Spin this long on the ring counters before yielding the core, and yield this long before
// sleeping on the futex (oversubscribed ranks need the yields to let their peers run).
constexpr auto kSpinFor = std::chrono::microseconds(20);
constexpr auto kYieldFor = std::chrono::microseconds(200);
// Futex sleeps last at most this long; between them the peers' liveness is checked.
constexpr long kSliceNs = 5 * 1000 * 1000;

// A window reserves this much address space per rank, or its share of half of /dev/shm when
// that is smaller (the file is sparse: only what staged calls back with fallocate uses memory).
// The other half stays free for the rings, whose pages are taken when first touched (a full
// /dev/shm would make that touch a SIGBUS) and for other programs.
constexpr size_t kWindowMaxBytes = size_t(8) << 30;

static_assert(std::atomic<uint64_t>::is_always_lock_free, "shared atomics must be lock-free");
static_assert(kHeaderBytes <= ShmTransport::kSlotBytes, "header slot too small");
static_assert(ShmTransport::kRingBytes % 64 == 0, "ring must hold whole 64-byte slots");

size_t segmentBytes(int size) {
  return offsetof(ShmTransport::Segment, channels) +
         sizeof(ShmTransport::Channel) * static_cast<size_t>(size);
}

size_t streamBytes(size_t payload) { return ShmTransport::kSlotBytes + (payload + 63) / 64 * 64; }

long futexCall(std::atomic<uint32_t>* addr, int op, uint32_t val, const timespec* ts) {
  return ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(addr), op, val, ts, nullptr, 0);
}

inline void cpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

std::string randomName(int rank) {
  std::random_device rd;
  uint64_t r = (uint64_t(rd()) << 32) ^ rd();
  return strcat("/nodeccl-", ::getpid(), "-", rank, "-", std::hex, r);
}

// Maps `name` (created when `create`); returns null and sets *why on failure.
void* mapSegment(const std::string& name, size_t bytes, bool create, std::string* why) {
  int fd = create ? ::shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600)
                  : ::shm_open(name.c_str(), O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) {
    *why = strcat("shm_open(", name, ") failed: ", std::strerror(errno));
    return nullptr;
  }
  struct stat st {};
  if (create && ::ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    *why = strcat("ftruncate(", name, ", ", bytes, ") failed: ", std::strerror(errno),
                  "; is /dev/shm full?");
  } else if (!create && (::fstat(fd, &st) != 0 || size_t(st.st_size) != bytes)) {
    *why = strcat("segment ", name, " has ", st.st_size, " bytes, expected ", bytes);
  }
  void* p = why->empty() ? ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
                         : MAP_FAILED;
  if (p == MAP_FAILED && why->empty()) {
    *why = strcat("mmap of ", bytes, " bytes failed: ", std::strerror(errno));
  }
  ::close(fd);
  if (p == MAP_FAILED && create) ::shm_unlink(name.c_str());
  return p == MAP_FAILED ? nullptr : p;
}

}  // namespace

ShmTransport::ShmTransport(int rank, int size, std::unique_ptr<TcpTransport> liveness,
                           std::vector<int> members)
    : rank_(rank), size_(size), members_(std::move(members)),
      local_(static_cast<size_t>(size), -1), liveness_(std::move(liveness)),
      segs_(static_cast<size_t>(size), nullptr), segBytes_(static_cast<size_t>(size), 0),
      steps_(size) {
  if (members_.empty()) {
    for (int r = 0; r < size; ++r) members_.push_back(r);
  }
  for (size_t i = 0; i < members_.size(); ++i) local_[members_[i]] = static_cast<int>(i);
  NODECCL_CHECK(local_[rank] >= 0);
}

ShmTransport::~ShmTransport() { close(); }

// ---- setup --------------------------------------------------------------------------------

std::string ShmTransport::setup(Store& store, const std::string& keyPrefix, Millis timeout,
                                bool* anyFailed) {
  auto key = [&](const char* what, int r) { return strcat(keyPrefix, "/", what, "/", r); };
  const int n = static_cast<int>(members_.size());
  const size_t bytes = segmentBytes(n);

  // 1. Create and publish this rank's segment ("!reason" when it could not).
  std::string why;
  ownName_ = randomName(rank_);
  auto* own = static_cast<Segment*>(mapSegment(ownName_, bytes, true, &why));
  if (own != nullptr) {
    own->magic = kSegMagic;
    own->size = static_cast<uint32_t>(n);
    own->ringBytes = kRingBytes;
    segs_[rank_] = own;
    segBytes_[rank_] = bytes;
  } else {
    ownName_.clear();
  }
  store.set(key("shmseg", rank_), why.empty() ? ownName_ : "!" + why);
  // The window is optional: without one, staged collectives use their ring algorithms.
  std::string winWhy = why.empty() ? createWindow() : "no segment";
  store.set(key("shmwin", rank_), winWhy.empty() ? ownWinName_ : "!" + winWhy);

  // 2. Map every other rank's segment.
  std::vector<std::string> keys;
  for (int r : members_) keys.push_back(key("shmseg", r));
  store.wait(keys, timeout);
  for (int r : members_) {
    if (!why.empty()) break;
    if (r == rank_) continue;
    std::string name = store.get(key("shmseg", r), timeout);
    if (!name.empty() && name[0] == '!') {
      why = strcat("rank ", r, ": ", name.substr(1));
      break;
    }
    segs_[r] = static_cast<Segment*>(mapSegment(name, bytes, false, &why));
    segBytes_[r] = bytes;
    if (why.empty() && segs_[r]->magic != kSegMagic) {
      why = strcat("segment ", name, " of rank ", r, " is not a nodeccl segment");
    }
    if (!why.empty()) why = strcat("cannot map rank ", r, "'s segment: ", why);
  }
  for (int r : members_) {
    if (!why.empty() || !winWhy.empty()) break;
    std::string name = store.get(key("shmwin", r), timeout);
    winWhy = r == rank_ ? "" : mapWindow(r, name);
  }

  // 3. Once every rank has tried, nobody needs the names any more: unlink this rank's.
  // "ok" means segments and windows are mapped, "ok;..." segments only (windows unused).
  const std::string mine = !why.empty() ? "!" + why : winWhy.empty() ? "ok" : "ok;" + winWhy;
  store.set(key("shmmapped", rank_), mine);
  keys.clear();
  for (int r : members_) keys.push_back(key("shmmapped", r));
  store.wait(keys, timeout);
  if (!ownName_.empty()) ::shm_unlink(ownName_.c_str());
  ownName_.clear();
  if (!ownWinName_.empty()) ::shm_unlink(ownWinName_.c_str());
  ownWinName_.clear();
  *anyFailed = false;
  windowsOk_ = true;
  std::string firstWhy = why;
  for (int i = 0; i < n; ++i) {
    const int r = members_[i];
    std::string v = r == rank_ ? mine : store.get(keys[i], timeout);
    if (v.compare(0, 2, "ok") != 0) {
      *anyFailed = true;
      if (firstWhy.empty()) firstWhy = strcat("rank ", r, ": ", v.substr(1));
    } else if (v != "ok" && windowsOk_) {
      windowsOk_ = false;
      windowsWhy_ = strcat("rank ", r, ": ", v.substr(3));
      NODECCL_INFO("shm", rank_, size_, "no shared windows (rank ", r, ": ", v.substr(3),
                   "); staged collectives use their ring algorithms");
    }
  }
  if (*anyFailed) {
    std::lock_guard<std::mutex> lock(mu_);
    unmapAll();
  }
  return firstWhy;
}

// ---- windows ------------------------------------------------------------------------------

// Creates, sizes (sparse) and maps this rank's window; "" on success, else why not.
std::string ShmTransport::createWindow() {
  struct statvfs fs {};
  size_t bytes = kWindowMaxBytes;
  if (::statvfs("/dev/shm", &fs) == 0) {
    const size_t total = size_t(fs.f_blocks) * size_t(fs.f_frsize);
    bytes = std::min(bytes, total / 2 / members_.size());
  }
  if (const char* mb = std::getenv("NODECCL_SHM_WINDOW_MB"); mb != nullptr && *mb != '\0') {
    char* end = nullptr;
    unsigned long long v = std::strtoull(mb, &end, 10);
    if (*end != '\0') return strcat("NODECCL_SHM_WINDOW_MB='", mb, "' is not a whole number");
    bytes = std::min(bytes, size_t(v) << 20);
    NODECCL_INFO("shm", rank_, size_, "NODECCL_SHM_WINDOW_MB=", mb);
  }
  bytes = bytes / (size_t(4) << 20) * (size_t(4) << 20);  // halves stay 2 MiB aligned
  if (bytes == 0) {
    const char* mb = std::getenv("NODECCL_SHM_WINDOW_MB");
    return mb != nullptr && *mb != '\0'
               ? strcat("NODECCL_SHM_WINDOW_MB=", mb, " leaves no window: windows come in ",
                        "whole 4 MiB (two 2 MiB halves); set 4 or more, or unset it")
               : std::string("/dev/shm is too small for a window of 4 MiB");
  }
  std::string name = randomName(rank_) + "-w";
  int fd = ::shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) return strcat("shm_open(", name, ") failed: ", std::strerror(errno));
  // The file: the window (bytes), then the shared heap (as many bytes), both sparse.
  void* p = ::ftruncate(fd, static_cast<off_t>(2 * bytes)) == 0
                ? ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
                : MAP_FAILED;
  std::string why = p == MAP_FAILED ? strcat("window of ", bytes, " bytes: ",
                                             std::strerror(errno)) : "";
  if (why.empty()) {
    int heapFd = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    try {
      if (heapFd < 0) throw Error(ErrorCode::kIo, strcat("dup: ", std::strerror(errno)));
      heap_ = std::make_shared<SharedHeap>(heapFd, bytes, bytes);
    } catch (const Error& e) {
      why = e.what();
      ::munmap(p, bytes);
    }
  }
  if (!why.empty()) {
    ::close(fd);
    ::shm_unlink(name.c_str());
    return why;
  }
  winFd_ = fd;
  winBytes_ = bytes;
  winBase_.assign(static_cast<size_t>(size_), nullptr);
  winBase_[static_cast<size_t>(rank_)] = static_cast<unsigned char*>(p);
  ownWinName_ = name;
  return "";
}

// Maps `peer`'s window, published as `name` ("!why" when it has none); "" on success.
std::string ShmTransport::mapWindow(int peer, const std::string& name) {
  if (!name.empty() && name[0] == '!') return strcat("rank ", peer, " has none: ", name.substr(1));
  int fd = ::shm_open(name.c_str(), O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) return strcat("shm_open(", name, ") failed: ", std::strerror(errno));
  struct stat st {};
  std::string why;
  void* p = MAP_FAILED;
  if (::fstat(fd, &st) != 0 || size_t(st.st_size) != 2 * winBytes_) {
    why = strcat("rank ", peer, "'s window file has ", st.st_size, " bytes, this rank's ",
                 2 * winBytes_);
  } else {
    p = ::mmap(nullptr, 2 * winBytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) why = strcat("mmap of rank ", peer, "'s window: ", std::strerror(errno));
  }
  ::close(fd);
  if (p != MAP_FAILED) winBase_[static_cast<size_t>(peer)] = static_cast<unsigned char*>(p);
  return why;
}

bool ShmTransport::backWindow(int half, size_t bytes, std::string* why) {
  NODECCL_CHECK(windowsOk_ && (half == 0 || half == 1));
  if (bytes <= winBacked_[half]) return true;
  if (bytes > windowHalfBytes()) {
    *why = strcat("a staged call needs ", bytes, " bytes of window, more than the ",
                  windowHalfBytes(), " of half a window (a window is this rank's share of half "
                  "of /dev/shm, at most ", kWindowMaxBytes >> 30, " GiB, or "
                  "NODECCL_SHM_WINDOW_MB)");
    return false;
  }
  // Grow in steps of at least 2 MiB, so that a sweep of sizes does not call fallocate often.
  size_t want = std::min(windowHalfBytes(), std::max(bytes, winBacked_[half] + (size_t(2) << 20)));
  off_t at = static_cast<off_t>(size_t(half) * windowHalfBytes() + winBacked_[half]);
  int rc = ::fallocate(winFd_, 0, at, static_cast<off_t>(want - winBacked_[half]));
  if (rc != 0) {
    *why = strcat("fallocate of ", want, " bytes of shared window failed: ",
                  std::strerror(errno), " (is /dev/shm full?)");
    return false;
  }
  winBacked_[half] = want;
  return true;
}

// ---- rings --------------------------------------------------------------------------------

ShmTransport::Channel* ShmTransport::inbox(int from) const {
  return &segs_[rank_]->channels[local_[from]];
}

ShmTransport::Channel* ShmTransport::outbox(int to) const {
  return &segs_[to]->channels[local_[rank_]];
}

// Bumps peer's doorbell; a futex wake (a system call) only when it is asleep.
void ShmTransport::ring(int peer) {
  Segment* s = segs_[peer];
  s->bell.fetch_add(1);
  if (s->sleepers.load() > 0) futexCall(&s->bell, FUTEX_WAKE, INT_MAX, nullptr);
}

void ShmTransport::checkPeer(int peer, const char* what) const {
  if (peer < 0) return;
  if (peer >= size_ || peer == rank_ || local_[peer] < 0 || segs_.empty() ||
      segs_[peer] == nullptr) {
    throw Error(ErrorCode::kInvalidArgument,
                strcat("rank ", rank_, ": cannot ", what, " rank ", peer, "; peers are 0..",
                       size_ - 1, " other than this rank", peer < size_ && peer != rank_
                           ? " (the transport is closed: was the communicator destroyed?)"
                           : ""));
  }
}

// Copies as much of the send stream as the ring has room for.
void ShmTransport::progressSend(Side& s, const OpInfo& op) {
  Channel* c = outbox(s.peer);
  uint64_t head = c->head.load(std::memory_order_relaxed);
  size_t room = kRingBytes - static_cast<size_t>(head - c->tail.load(std::memory_order_acquire));
  const uint64_t start = head;
  while (!s.complete() && room > 0) {
    size_t at = static_cast<size_t>(head % kRingBytes), n;
    if (s.done < kSlotBytes) {
      if (room < kSlotBytes) break;  // positions are slot-aligned here: the slot is contiguous
      std::memcpy(c->data + at, s.hdr, kSlotBytes);
      n = kSlotBytes;
    } else if (s.done - kSlotBytes < s.bytes) {
      size_t off = s.done - kSlotBytes;
      n = std::min({room, s.bytes - off, kRingBytes - at});
      std::memcpy(c->data + at, s.buf + off, n);
    } else {
      n = std::min(room, s.total - s.done);  // padding: nothing to write
    }
    head += n;
    s.done += n;
    room -= n;
  }
  if (head != start) {
    c->head.store(head, std::memory_order_release);
    ring(s.peer);
  }
}

// Copies as much of the receive stream as has arrived; checks the header first.
void ShmTransport::progressRecv(Side& r, const OpInfo& op) {
  Channel* c = inbox(r.peer);
  uint64_t tail = c->tail.load(std::memory_order_relaxed);
  size_t avail = static_cast<size_t>(c->head.load(std::memory_order_acquire) - tail);
  const uint64_t start = tail;
  while (!r.complete() && avail > 0) {
    size_t at = static_cast<size_t>(tail % kRingBytes), n;
    if (r.done < kSlotBytes) {
      if (avail < kSlotBytes) break;
      checkHeader(c->data + at, op, rank_, r.peer, steps_.forRecv(op, r.peer), r.bytes);
      n = kSlotBytes;
    } else if (r.done - kSlotBytes < r.bytes) {
      size_t off = r.done - kSlotBytes;
      n = std::min({avail, r.bytes - off, kRingBytes - at});
      std::memcpy(r.buf + off, c->data + at, n);
    } else {
      n = std::min(avail, r.total - r.done);
    }
    tail += n;
    r.done += n;
    avail -= n;
  }
  if (tail != start) {
    c->tail.store(tail, std::memory_order_release);
    ring(r.peer);
  }
}

bool ShmTransport::canProgress(const Side& s, const Side& r) const {
  if (!s.complete()) {
    Channel* c = outbox(s.peer);
    size_t used = static_cast<size_t>(c->head.load(std::memory_order_relaxed) -
                                      c->tail.load(std::memory_order_acquire));
    if (kRingBytes - used >= (s.done < kSlotBytes ? kSlotBytes : 1)) return true;
  }
  if (!r.complete()) {
    Channel* c = inbox(r.peer);
    size_t avail = static_cast<size_t>(c->head.load(std::memory_order_acquire) -
                                       c->tail.load(std::memory_order_relaxed));
    if (avail >= (r.done < kSlotBytes ? kSlotBytes : 1)) return true;
  }
  return false;
}

// ---- sendRecv and the non-blocking halves -------------------------------------------------

void ShmTransport::startSend(Side& s, int peer, const void* buf, size_t bytes,
                             const OpInfo& op) {
  s.peer = peer;
  s.buf = static_cast<unsigned char*>(const_cast<void*>(buf));
  s.bytes = bytes;
  s.total = streamBytes(bytes);
  encodeHeader(s.hdr, op, rank_, steps_.forSend(op, peer), bytes);
}

void ShmTransport::startRecv(Side& r, int peer, void* buf, size_t bytes) {
  r.peer = peer;
  r.buf = static_cast<unsigned char*>(buf);
  r.bytes = bytes;
  r.total = streamBytes(bytes);
}

void ShmTransport::sendRecv(int sendPeer, const void* sbuf, size_t sbytes, int recvPeer,
                            void* rbuf, size_t rbytes, const OpInfo& op) {
  if (aborted_.load()) throwAborted();
  checkPeer(sendPeer, "send to");
  checkPeer(recvPeer, "receive from");
  Side s, r;
  if (sendPeer >= 0) startSend(s, sendPeer, sbuf, sbytes, op);
  if (recvPeer >= 0) startRecv(r, recvPeer, rbuf, rbytes);
  for (;;) {
    if (!s.complete()) progressSend(s, op);
    if (!r.complete()) progressRecv(r, op);
    if (s.complete() && r.complete()) return;
    waitProgress(s, r, op);
  }
}

bool ShmTransport::trySend(int peer, const void* buf, size_t bytes, const OpInfo& op) {
  if (aborted_.load()) throwAborted();
  checkPeer(peer, "send to");
  Channel* c = outbox(peer);
  size_t used = static_cast<size_t>(c->head.load(std::memory_order_relaxed) -
                                    c->tail.load(std::memory_order_acquire));
  if (kRingBytes - used < streamBytes(bytes)) return false;
  Side s;
  startSend(s, peer, buf, bytes, op);
  progressSend(s, op);
  NODECCL_CHECK(s.complete());
  return true;
}

bool ShmTransport::tryRecv(int peer, void* buf, size_t bytes, const OpInfo& op) {
  if (aborted_.load()) throwAborted();
  checkPeer(peer, "receive from");
  Channel* c = inbox(peer);
  size_t avail = static_cast<size_t>(c->head.load(std::memory_order_acquire) -
                                     c->tail.load(std::memory_order_relaxed));
  if (avail < streamBytes(bytes)) {
    // A whole header that disagrees must still fail now, not wait for bytes that never come.
    if (avail >= kSlotBytes) {
      MessageHeader h = decodeHeader(c->data + c->tail.load() % kRingBytes);
      if (h.bytes != bytes) {
        Side r;
        startRecv(r, peer, buf, bytes);
        progressRecv(r, op);  // throws the mismatch
      }
    }
    return false;
  }
  Side r;
  startRecv(r, peer, buf, bytes);
  progressRecv(r, op);
  NODECCL_CHECK(r.complete());
  return true;
}

// ---- waiting ------------------------------------------------------------------------------

// Spins, then yields, then sleeps on this rank's doorbell in slices, until a side can move.
void ShmTransport::waitProgress(const Side& s, const Side& r, const OpInfo& op) {
  const bool hasDeadline = op.deadline != Clock::time_point();
  const auto start = Clock::now();
  for (uint32_t i = 0;; ++i) {
    if (canProgress(s, r)) return;
    if (aborted_.load(std::memory_order_relaxed)) throwAborted();
    if ((i & 63) != 63) {
      cpuRelax();
      continue;
    }
    auto now = Clock::now();
    if (hasDeadline && now >= op.deadline) throwTimeout(s, r, op);
    if (now - start < kSpinFor) continue;
    if (now - start < kSpinFor + kYieldFor) {
      sched_yield();
      continue;
    }
    break;
  }

  // Sleep: announce it, re-check, then wait unless the bell moved since it was read.
  // NODECCL_TRACE: the time from the start of the wait (spin included) until a side can move
  // is one "wait" event naming the peers still due; waits that end while spinning are not
  // recorded (they would flood the trace with sub-microsecond events).
  Segment* me = segs_[rank_];
  trace::Track* track = trace::current();
  struct TraceWait {
    trace::Track* track;
    Clock::time_point t0;
    const Side& s;
    const Side& r;
    ~TraceWait() {
      if (track == nullptr) return;
      track->complete("wait", "wait", t0, Clock::now(),
                      strcat("\"send_peer\":", s.complete() ? -1 : s.peer, ",\"recv_peer\":",
                             r.complete() ? -1 : r.peer, ",\"transport\":\"shm\""));
    }
  } traced{track, start, s, r};
  for (;;) {
    uint32_t seen = me->bell.load();
    me->sleepers.fetch_add(1);
    bool ready = canProgress(s, r) || aborted_.load();
    if (!ready) {
      timespec ts{0, kSliceNs};
      futexCall(&me->bell, FUTEX_WAIT, seen, &ts);
    }
    me->sleepers.fetch_sub(1);
    if (aborted_.load()) throwAborted();
    if (ready || canProgress(s, r)) return;
    if (hasDeadline && Clock::now() >= op.deadline) throwTimeout(s, r, op);
    checkAlive(s, r, op);
  }
}

// A peer's rendezvous TCP socket carries nothing after setup: if it becomes readable or
// hung up, the peer closed it (exited, crashed, or destroyed its communicator).
void ShmTransport::checkAlive(const Side& s, const Side& r, const OpInfo& op) {
  if (!liveness_) return;
  for (int peer : {r.complete() ? -1 : r.peer, s.complete() ? -1 : s.peer}) {
    if (peer < 0) continue;
    int fd = liveness_->peerSocket(peer);
    if (fd < 0) continue;
    pollfd p{fd, POLLIN | POLLRDHUP, 0};
    if (::poll(&p, 1, 0) <= 0) continue;
    if (canProgress(s, r)) return;  // its last message may have landed just before it left
    if (aborted_.load()) throwAborted();
    throw Error(ErrorCode::kPeerLost,
                strcat("rank ", rank_, ": lost rank ", peer, " during ", opLabel(op),
                       " (its connection closed while this rank waited for it in shared "
                       "memory); rank ", peer, " probably exited or crashed — check its output"));
  }
}

// ---- errors, abort, close -----------------------------------------------------------------

void ShmTransport::throwTimeout(const Side& s, const Side& r, const OpInfo& op) {
  std::string waiting;
  if (!r.complete()) {
    waiting = strcat("rank ", r.peer, " (receive: ", r.done, " of ", r.total, " stream bytes",
                     r.done < kSlotBytes ? ", no header yet" : "", ")");
  }
  if (!s.complete()) {
    waiting += strcat(waiting.empty() ? "" : " and ", "rank ", s.peer, " (send: ", s.done,
                      " of ", s.total, " stream bytes; its ring is full)");
  }
  throw Error(ErrorCode::kTimeout,
              strcat("rank ", rank_, ": ", opLabel(op), " timed out after ", op.timeoutMs,
                     " ms waiting for ", waiting, " in shared memory; a rank may have stopped "
                     "calling collectives or called them in a different order, or the timeout "
                     "is too short for this size"));
}

void ShmTransport::throwAborted() {
  std::lock_guard<std::mutex> lock(mu_);
  throw Error(ErrorCode::kAborted, reason_);
}

void ShmTransport::abort(const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  if (aborted_.load()) return;
  reason_ = reason;
  aborted_.store(true);
  // Wake this rank's own sleeper; the mapping is valid while mu_ is held (see close).
  if (!segs_.empty() && segs_[rank_] != nullptr) ring(rank_);
}

void ShmTransport::unmapAll() {
  for (size_t r = 0; r < segs_.size(); ++r) {
    if (segs_[r] != nullptr) ::munmap(segs_[r], segBytes_[r]);
    segs_[r] = nullptr;
  }
  if (!ownName_.empty()) ::shm_unlink(ownName_.c_str());
  ownName_.clear();
  // This rank maps its window only (its heap is the heap's own mapping, which lives on while
  // arrays allocated from it do); peers' mappings cover window and heap.
  for (size_t r = 0; r < winBase_.size(); ++r) {
    if (winBase_[r] != nullptr) ::munmap(winBase_[r], (int(r) == rank_ ? 1 : 2) * winBytes_);
    winBase_[r] = nullptr;
  }
  if (heap_) heap_->detach();
  heap_.reset();
  if (!ownWinName_.empty()) ::shm_unlink(ownWinName_.c_str());
  ownWinName_.clear();
  if (winFd_ >= 0) ::close(winFd_);
  winFd_ = -1;
  windowsOk_ = false;
}

void ShmTransport::close() {
  std::lock_guard<std::mutex> lock(mu_);
  unmapAll();
  if (liveness_) liveness_->close();
}

}  // namespace nodeccl
