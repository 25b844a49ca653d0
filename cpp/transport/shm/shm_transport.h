// SPDX-License-Identifier: Apache-2.0
// The shared-memory transport, for ranks on one host: every rank owns one POSIX shm segment
// holding a doorbell and one ring per sender (its inbox); every rank maps every segment. A
// message is a 64-byte header slot followed by its payload, padded to 64 bytes, streamed
// through the fixed-size ring of its (sender, receiver) pair, so messages of any size move
// with one copy in and one copy out and no system call while both sides are running.
//
// Waiting: spin briefly on the ring counters, then sleep on the rank's doorbell, a
// process-shared futex that every writer to this rank's rings (and every reader of its
// outgoing rings) bumps. Sleeps come in short slices; between them the TCP connection to each
// involved peer (kept open from the rendezvous, carrying nothing) is polled, so a peer that
// dies becomes kPeerLost within a few milliseconds. abort() bumps the doorbell.
//
// Segments are unlinked as soon as every rank has mapped them (see ShmTransport::setup), so
// nothing is left in /dev/shm once the communicator is up, even if a process is killed.
//
// Windows: besides its segment every rank owns a second, large and sparse shm file, its window,
// that every rank maps too. Collectives that stage data for their peers to read in place
// (coll/*_staged.cc) write only into their own window and read the others'. Pages are backed
// on demand by the owner (fallocate, so a full /dev/shm is an error, never a SIGBUS), and each
// window is cut into two halves used by alternate staged calls (see windowHalf). The file
// holds, after the window, the rank's shared heap (shared_heap.h): arrays allocated there are
// read and written in place by the peers' collectives, with no staging copy.
//
// In a job that spans hosts the transport joins only the ranks of one host (`members`); the
// hybrid transport (transport/hybrid/) sends to the other hosts' ranks over TCP.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "store/store.h"
#include "transport/header.h"
#include "transport/shm/shared_heap.h"
#include "transport/tcp/tcp_transport.h"
#include "transport/transport.h"

namespace nodeccl {

class ShmTransport : public Transport {
 public:
  // Bytes of each (sender, receiver) ring: the most one sender can have in flight to one
  // receiver. A multiple of 64.
  static constexpr size_t kRingBytes = size_t(1) << 20;
  // Header slot in front of every payload (the payload then starts 64-byte aligned).
  static constexpr size_t kSlotBytes = 64;

  // `liveness` is the rendezvous TCP mesh; it is kept open to notice a dead peer (and, in a
  // hybrid transport, carries the messages to other hosts). `members`: the ranks this
  // transport joins, ascending, `rank` among them; empty means all `size` ranks.
  ShmTransport(int rank, int size, std::unique_ptr<TcpTransport> liveness,
               std::vector<int> members = {});
  ~ShmTransport() override;

  // Creates this rank's segment, publishes its name under `keyPrefix` in the store, maps every
  // other rank's, and unlinks its own once all ranks report theirs mapped. Returns "" on
  // success, else why shared memory cannot be used here (nothing is left behind then); every
  // rank learns the outcome of every other, so all ranks agree (`anyFailed`).
  std::string setup(Store& store, const std::string& keyPrefix, Millis timeout,
                    bool* anyFailed);

  const char* name() const override { return "shm"; }

  // After a failed setup: hands back the TCP mesh, to be used as the transport instead.
  std::unique_ptr<TcpTransport> takeLiveness() { return std::move(liveness_); }
  // The TCP mesh, for a hybrid transport's messages to ranks on other hosts.
  TcpTransport* liveness() const { return liveness_.get(); }
  // Whether `peer` is one of the ranks this transport joins (and not this rank).
  bool joins(int peer) const {
    return peer >= 0 && peer < size_ && peer != rank_ && local_[peer] >= 0;
  }

  void sendRecv(int sendPeer, const void* sbuf, size_t sbytes, int recvPeer, void* rbuf,
                size_t rbytes, const OpInfo& op) override;

  // ---- windows (see the file comment) ----
  // True when every rank of this transport has a window mapped by all (the same on all ranks).
  bool windowsUsable() const { return windowsOk_; }
  // Why not, when set up without them: the first rank that had none and its reason.
  const std::string& windowsWhy() const { return windowsWhy_; }
  // Bytes in one half of a window: the most one staged call may place in a rank's window.
  size_t windowHalfBytes() const { return winBytes_ / 2; }
  // Starts a staged call and returns the half of every window it uses (0 or 1): the calls
  // alternate, so a call's writes never meet a peer still reading the previous call's half.
  // Every rank must start the same staged calls in the same order (as it calls collectives).
  int nextWindowHalf() { return static_cast<int>(windowCalls_++ & 1); }
  // How many staged calls have started (nextWindowHalf): a call's number, on every rank.
  uint64_t windowCalls() const { return windowCalls_; }
  // Half `half` of `peer`'s window (this rank's own included), mapped in this process.
  unsigned char* window(int peer, int half) const {
    return winBase_[static_cast<size_t>(peer)] + static_cast<size_t>(half) * windowHalfBytes();
  }
  // Backs the first `bytes` of this rank's own half `half` with memory. False, with *why, when
  // /dev/shm cannot hold them (nothing else is changed); a staged call then falls back.
  bool backWindow(int half, size_t bytes, std::string* why);
  // This rank's shared heap (null without usable windows), and where `peer`'s heap (this
  // rank's own included) is mapped in this process.
  std::shared_ptr<SharedHeap> heap() const { return windowsOk_ ? heap_ : nullptr; }
  unsigned char* heapBase(int peer) const {
    return peer == rank_ ? heap_->base()
                         : winBase_[static_cast<size_t>(peer)] + winBytes_;
  }
  void abort(const std::string& reason) override;
  void close() override;

  // Non-blocking halves for a caller that must not wait (the small-message path on the JS
  // thread): post a whole message when the ring has room for it, or take a whole message
  // when it has fully arrived. False means "not now" (nothing was done); errors throw.
  bool trySend(int peer, const void* buf, size_t bytes, const OpInfo& op);
  bool tryRecv(int peer, void* buf, size_t bytes, const OpInfo& op);

  // One direction of a sendRecv in progress (public for the helpers in shm_transport.cc).
  struct Side {
    int peer = -1;
    unsigned char* buf = nullptr;
    size_t bytes = 0;    // payload bytes
    size_t total = 0;    // stream bytes: slot + payload padded to 64
    size_t done = 0;     // stream bytes moved
    unsigned char hdr[kSlotBytes] = {};
    bool complete() const { return peer < 0 || done == total; }
  };
  struct Channel;
  struct Segment;

 private:
  void unmapAll();                  // with mu_ held
  std::string createWindow();
  std::string mapWindow(int peer, const std::string& name);
  Channel* inbox(int from) const;   // ring from `from` to this rank
  Channel* outbox(int to) const;    // ring from this rank to `to`
  void ring(int peer);              // bumps peer's doorbell
  void progressSend(Side& s, const OpInfo& op);
  void progressRecv(Side& r, const OpInfo& op);
  bool canProgress(const Side& s, const Side& r) const;
  void waitProgress(const Side& s, const Side& r, const OpInfo& op);
  void checkAlive(const Side& s, const Side& r, const OpInfo& op);
  void checkPeer(int peer, const char* what) const;
  void startSend(Side& s, int peer, const void* buf, size_t bytes, const OpInfo& op);
  void startRecv(Side& r, int peer, void* buf, size_t bytes);
  [[noreturn]] void throwTimeout(const Side& s, const Side& r, const OpInfo& op);
  [[noreturn]] void throwAborted();

  int rank_;
  int size_;
  std::vector<int> members_;         // global ranks joined, ascending
  std::vector<int> local_;           // local_[r]: r's index in members_, or -1
  std::unique_ptr<TcpTransport> liveness_;
  std::vector<Segment*> segs_;       // segs_[r]: rank r's segment, mapped here
  std::vector<size_t> segBytes_;
  std::string ownName_;              // while not yet unlinked
  std::string ownWinName_;           // this rank's window, while not yet unlinked
  int winFd_ = -1;                   // this rank's window file (kept open for fallocate)
  size_t winBytes_ = 0;              // bytes of every window (the same on all ranks)
  std::vector<unsigned char*> winBase_;  // winBase_[r]: rank r's window, mapped here
  size_t winBacked_[2] = {0, 0};     // bytes of each own half backed so far
  std::shared_ptr<SharedHeap> heap_; // this rank's heap (the file's second winBytes_)
  bool windowsOk_ = false;
  std::string windowsWhy_;
  uint64_t windowCalls_ = 0;         // staged calls started (nextWindowHalf)
  MessageSteps steps_;               // header step numbers (transport/header.h)
  std::atomic<bool> aborted_{false};
  mutable std::mutex mu_;            // guards reason_ and the mappings against abort/close
  std::string reason_;
};

}  // namespace nodeccl
