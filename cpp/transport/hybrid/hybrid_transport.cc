// SPDX-License-Identifier: Apache-2.0
// The hybrid transport (see hybrid_transport.h): routing by peer, and the mixed step that runs
// its TCP half on a helper thread while this thread runs the shared-memory half.
#include "transport/hybrid/hybrid_transport.h"

#include "common/error.h"

namespace nodeccl {

HybridTransport::HybridTransport(std::unique_ptr<ShmTransport> shm)
    : shm_(std::move(shm)), tcp_(shm_->liveness()) {
  NODECCL_CHECK(tcp_ != nullptr);
}

HybridTransport::~HybridTransport() { close(); }

Transport& HybridTransport::via(int peer) const {
  if (shm_->joins(peer)) return *shm_;
  return *tcp_;
}

void HybridTransport::sendRecv(int sendPeer, const void* sbuf, size_t sbytes, int recvPeer,
                               void* rbuf, size_t rbytes, const OpInfo& op) {
  // One transport serves both directions (or there is only one): no hand-off.
  if (sendPeer < 0 || recvPeer < 0 || &via(sendPeer) == &via(recvPeer)) {
    Transport& t = via(sendPeer >= 0 ? sendPeer : recvPeer);
    t.sendRecv(sendPeer, sbuf, sbytes, recvPeer, rbuf, rbytes, op);
    return;
  }

  // Mixed: post the TCP half to the helper, run the shared-memory half here.
  const bool tcpSends = &via(sendPeer) == tcp_;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (!helper_.joinable()) helper_ = std::thread([this] { helperLoop(); });
    jobSend_ = tcpSends ? sendPeer : -1;
    jobSbuf_ = sbuf;
    jobSbytes_ = tcpSends ? sbytes : 0;
    jobRecv_ = tcpSends ? -1 : recvPeer;
    jobRbuf_ = rbuf;
    jobRbytes_ = tcpSends ? 0 : rbytes;
    jobOp_ = op;
    jobError_ = nullptr;
    pending_ = true;
  }
  cv_.notify_all();

  std::exception_ptr mine;
  try {
    if (tcpSends) shm_->sendRecv(-1, nullptr, 0, recvPeer, rbuf, rbytes, op);
    else shm_->sendRecv(sendPeer, sbuf, sbytes, -1, nullptr, 0, op);
  } catch (...) {
    mine = std::current_exception();
  }

  // The helper may be blocked on a peer that will never answer now: wake it with this
  // failure so that the step (and the buffers it uses) is released at once.
  std::unique_lock<std::mutex> lock(mu_);
  if (mine && pending_) {
    std::string why = "a failure in the shared-memory half of the same step";
    try {
      std::rethrow_exception(mine);
    } catch (const std::exception& e) {
      why = e.what();
    }
    lock.unlock();
    tcp_->abort(why);
    lock.lock();
  }
  cv_.wait(lock, [this] { return !pending_; });
  std::exception_ptr theirs = jobError_;
  jobError_ = nullptr;
  lock.unlock();
  if (mine) std::rethrow_exception(mine);
  if (theirs) {
    // The TCP half failed: the shared-memory half finished, but the step did not.
    std::rethrow_exception(theirs);
  }
}

void HybridTransport::helperLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || pending_; });
    if (stop_) return;
    const int s = jobSend_, r = jobRecv_;
    const void* sbuf = jobSbuf_;
    void* rbuf = jobRbuf_;
    const size_t sb = jobSbytes_, rb = jobRbytes_;
    const OpInfo op = jobOp_;
    lock.unlock();
    std::exception_ptr err;
    try {
      tcp_->sendRecv(s, sbuf, sb, r, rbuf, rb, op);
    } catch (...) {
      err = std::current_exception();
    }
    lock.lock();
    jobError_ = err;
    pending_ = false;
    cv_.notify_all();
  }
}

void HybridTransport::abort(const std::string& reason) {
  shm_->abort(reason);
  tcp_->abort(reason);
}

void HybridTransport::close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (helper_.joinable()) helper_.join();
  shm_->close();  // closes the TCP mesh too
}

}  // namespace nodeccl
