// SPDX-License-Identifier: Apache-2.0
// The TCP transport: a full mesh of TCP connections, one per pair of ranks, non-blocking with
// TCP_NODELAY. sendRecv drives one send and one receive together with poll(), so a ring step
// whose messages exceed the socket buffers cannot deadlock; payloads go straight from and to
// the caller's buffers (no copies). An eventfd in every poll set lets abort() wake it.
//
// Every message is the shared header (transport/header.h: kind, step, dtype, op, root, count,
// bytes) followed by the payload. The receiver reads the header alone first and checks it, so
// a mismatched message never writes into the caller's buffer.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "transport/header.h"
#include "transport/tcp/socket.h"
#include "transport/transport.h"

namespace nodeccl {

class TcpTransport : public Transport {
 public:
  // Listens on listenHost with an ephemeral port. Throws kIo when it cannot. Every connection
  // first authenticates with the job `token` (common/auth.h; "" for none).
  TcpTransport(int rank, int size, const std::string& listenHost, const std::string& token = "");
  ~TcpTransport() override;

  const char* name() const override { return "tcp"; }
  int port() const { return port_; }
  // The connection to `peer` (-1 if none), for a transport that keeps this mesh open only to
  // notice dead peers (shm): it polls the socket and never reads or writes it.
  int peerSocket(int peer) const {
    return peer >= 0 && peer < size_ && peer != rank_ ? peers_[peer].get() : -1;
  }

  // Builds the mesh: connects to every rank below this one and accepts every rank above
  // (addrs[r] is rank r's "host:port"). A hello carrying `prefix` and both ranks identifies
  // each connection, so stray connections are turned away. Throws kTimeout at `deadline`
  // naming the ranks that never connected.
  void connectMesh(const std::vector<std::string>& addrs, const std::string& prefix,
                   net::Deadline deadline);

  void sendRecv(int sendPeer, const void* sbuf, size_t sbytes, int recvPeer, void* rbuf,
                size_t rbytes, const OpInfo& op) override;
  void abort(const std::string& reason) override;
  void close() override;

  // One direction of a sendRecv in progress (public for the helpers in tcp_transport.cc).
  struct Side {
    int peer = -1;
    int fd = -1;
    unsigned char hdr[kHeaderBytes];
    size_t hdrDone = 0;
    char* buf = nullptr;
    size_t bytes = 0;
    size_t done = 0;
    uint64_t step = 0;     // the message's step (header.h MessageSteps)
    bool complete() const { return peer < 0 || (hdrDone == sizeof(hdr) && done == bytes); }
  };

 private:
  void connectLower(const std::vector<std::string>& addrs, const std::string& prefix,
                    net::Deadline deadline);
  struct Pending;
  void acceptHigher(const std::string& prefix, net::Deadline deadline);
  void acceptPending(std::vector<std::unique_ptr<Pending>>* pending, size_t most,
                     net::Deadline deadline);
  void dropExpired(std::vector<std::unique_ptr<Pending>>* pending);
  bool progressPending(Pending& p, const std::string& prefix);
  bool checkHello(Pending& p, const std::string& prefix);
  void readAcks(net::Deadline deadline);
  void progressSend(Side& s, const OpInfo& op);
  void progressRecv(Side& r, const OpInfo& op);
  void waitProgress(const Side& s, const Side& r, const OpInfo& op);
  [[noreturn]] void throwPeerError(int peer, int err, const OpInfo& op);
  [[noreturn]] void throwTimeout(const Side& s, const Side& r, const OpInfo& op);
  [[noreturn]] void throwAborted();
  int peerFd(int peer, const char* what) const;

  int rank_;
  int size_;
  int port_ = 0;
  std::string token_;
  net::Fd listenFd_;
  net::Fd wakeFd_;               // eventfd: readable once abort() ran
  std::vector<net::Fd> peers_;   // peers_[r]: connection to rank r (invalid for this rank)
  MessageSteps steps_;           // message numbering, used by the communicator's thread only
  std::atomic<bool> aborted_{false};
  mutable std::mutex mu_;        // guards reason_, closed_ and wakeFd_ against close()
  bool closed_ = false;          // close() ran: abort() has nothing left to wake
  std::string reason_;
};

}  // namespace nodeccl
