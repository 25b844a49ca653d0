// SPDX-License-Identifier: Apache-2.0
// The TCP transport: a full mesh of TCP connections, one per pair of ranks, non-blocking with
// TCP_NODELAY. sendRecv drives one send and one receive together with poll(), so a ring step
// whose messages exceed the socket buffers cannot deadlock; payloads go straight from and to
// the caller's buffers (no copies). An eventfd in every poll set lets abort() wake it.
//
// Every message is a 24-byte header followed by the payload:
//   u32 magic | u8 OpKind | 3 bytes zero | u64 sender's op seq | u64 payload bytes
// (little-endian). The receiver checks magic, kind and byte count against what it expects.
#pragma once

#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include "transport/tcp/socket.h"
#include "transport/transport.h"

namespace nodeccl {

class TcpTransport : public Transport {
 public:
  // Listens on listenHost with an ephemeral port. Throws kIo when it cannot.
  TcpTransport(int rank, int size, const std::string& listenHost);
  ~TcpTransport() override;

  const char* name() const override { return "tcp"; }
  int port() const { return port_; }

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
    unsigned char hdr[24];
    size_t hdrDone = 0;
    char* buf = nullptr;
    size_t bytes = 0;
    size_t done = 0;
    bool checked = false;  // receive side: header validated
    bool complete() const { return peer < 0 || (hdrDone == sizeof(hdr) && done == bytes); }
  };

 private:
  void connectLower(const std::vector<std::string>& addrs, const std::string& prefix,
                    net::Deadline deadline);
  void acceptHigher(const std::string& prefix, net::Deadline deadline);
  bool acceptOne(const std::string& prefix, net::Deadline deadline);
  void readAcks(net::Deadline deadline);
  void progressSend(Side& s, const OpInfo& op);
  void progressRecv(Side& r, const OpInfo& op);
  void checkHeader(Side& r, const OpInfo& op);
  void waitProgress(const Side& s, const Side& r, const OpInfo& op);
  [[noreturn]] void throwPeerError(int peer, int err, const OpInfo& op);
  [[noreturn]] void throwTimeout(const Side& s, const Side& r, const OpInfo& op);
  [[noreturn]] void throwAborted();
  int peerFd(int peer, const char* what) const;

  int rank_;
  int size_;
  int port_ = 0;
  net::Fd listenFd_;
  net::Fd wakeFd_;               // eventfd: readable once abort() ran
  std::vector<net::Fd> peers_;   // peers_[r]: connection to rank r (invalid for this rank)
  std::atomic<bool> aborted_{false};
  mutable std::mutex mu_;        // guards reason_
  std::string reason_;
};

}  // namespace nodeccl
