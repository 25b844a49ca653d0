// SPDX-License-Identifier: Apache-2.0
// The transport of a job that spans hosts: shared memory between the ranks of one host and
// TCP to every other rank. Each message goes by the transport of its peer; a sendRecv whose
// two peers use different transports (a ring step from a host-local neighbour to a remote
// one) drives both at once, the TCP half on a helper thread, so the step cannot deadlock.
//
// Cost: the same bytes as the two transports alone; a mixed step adds a thread hand-off
// (a few microseconds), paid only where the ring crosses from one host to the next.
#pragma once

#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "transport/shm/shm_transport.h"
#include "transport/tcp/tcp_transport.h"
#include "transport/transport.h"

namespace nodeccl {

class HybridTransport : public Transport {
 public:
  // `shm` joins this host's ranks and owns the TCP mesh to every rank (its liveness mesh).
  explicit HybridTransport(std::unique_ptr<ShmTransport> shm);
  ~HybridTransport() override;

  const char* name() const override { return "shm+tcp"; }

  void sendRecv(int sendPeer, const void* sbuf, size_t sbytes, int recvPeer, void* rbuf,
                size_t rbytes, const OpInfo& op) override;
  void abort(const std::string& reason) override;
  void close() override;

 private:
  Transport& via(int peer) const;
  void helperLoop();

  std::unique_ptr<ShmTransport> shm_;
  TcpTransport* tcp_;  // owned by shm_

  // The helper thread runs one TCP half at a time, handed over under mu_.
  std::mutex mu_;
  std::condition_variable cv_;
  std::thread helper_;
  bool stop_ = false;
  bool pending_ = false;  // a job is posted and not yet finished
  int jobSend_ = -1, jobRecv_ = -1;
  const void* jobSbuf_ = nullptr;
  void* jobRbuf_ = nullptr;
  size_t jobSbytes_ = 0, jobRbytes_ = 0;
  OpInfo jobOp_;
  std::exception_ptr jobError_;
};

}  // namespace nodeccl
