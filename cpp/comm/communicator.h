// SPDX-License-Identifier: Apache-2.0
// A communicator: this rank's place in a group of `size` ranks, its connections to the others,
// and the context of the operation in progress. Collectives (coll/) are free functions of a
// Communicator. A Communicator is driven by one thread at a time (the Executor's worker);
// abort() may be called from any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "common/auth.h"
#include "common/error.h"
#include "store/store.h"
#include "transport/transport.h"

namespace nodeccl {

struct CommOptions {
  int rank = 0;
  int size = 1;
  // Namespace of this communicator's keys in the store, so several can share one store.
  std::string prefix = "nodeccl/world";
  // Address this rank listens on and publishes for its peers; "" picks the loopback address
  // when the store is on loopback, else the address the store connection goes out from.
  std::string listenHost;
  Millis initTimeout = Millis(60000);  // bounds the whole rendezvous
  Millis timeout = Millis(300000);     // default for each operation
  // NODECCL_TRANSPORT: "auto" takes shared memory between the ranks of one host (same
  // hostname, boot id and network namespace) and TCP between hosts; "tcp" or "shm" forces one
  // (shm across hosts is an error).
  std::string transport = "auto";
  // NODECCL_HOST_ID: which host this rank is on, for the choice above and for hierarchical
  // algorithms; "" detects it. Ranks given the same id must be able to share memory.
  std::string hostId;
  // Job token every peer connection must prove (common/auth.h); "" for none.
  std::string token = auth::tokenFromEnv();
  // NODECCL_ALGO: "auto" picks per call by size and world size; an algorithm name forces it
  // for the collectives that have it: allReduce ring|direct|staged|hier, broadcast
  // chain|tree|direct|staged, allGather and reduceScatter ring|direct|staged, barrier direct
  // (any other name: dissemination).
  std::string algo = "auto";
  // "native" (the transports above) or "mpi": the collectives run through MPI
  // (backend/mpi/; init() resolves NODECCL_BACKEND). The rendezvous is the same for both.
  std::string backend = "native";
};

class ShmTransport;

class Communicator {
 public:
  // Rendezvous: publishes this rank's address in `store`, connects to every peer, and checks
  // that all ranks agree on the world size. Blocks at most opts.initTimeout. The store must
  // outlive the communicator (it is also used to spread abort notices).
  static std::unique_ptr<Communicator> create(std::shared_ptr<Store> store,
                                              const CommOptions& opts);
  // `opts` with the environment's overrides (NODECCL_TRANSPORT, NODECCL_HOST_ID, NODECCL_ALGO)
  // applied, checked as create() checks them (kInvalidArgument naming the variable). A rank
  // that calls it before it connects to the store fails at once on a bad value, rather than
  // waiting out its init timeout for a store whose server, on rank 0, failed the same check.
  static CommOptions resolveOptions(const CommOptions& opts);
  ~Communicator();

  int rank() const { return opts_.rank; }
  int size() const { return opts_.size; }
  const CommOptions& options() const { return opts_; }
  // True when the collectives run through MPI (CommOptions::backend, backend/mpi/).
  bool mpi() const { return opts_.backend == "mpi"; }
  // False once destroyed or failed (an operation would throw firstError()).
  bool usable() const;

  // Marks the start of an operation: sets its kind, number and deadline (timeout 0 means the
  // communicator's default). Throws kAborted/kDestroyed when the communicator is unusable.
  void beginOp(OpKind kind, Millis timeout);
  // The same, recording what the call was asked to do (dtype, op, root, count) so that every
  // message carries it and receivers fail with kMismatch when ranks disagree (see
  // transport/header.h). Collectives advance op.step; send/recv do not.
  void beginOp(OpKind kind, Millis timeout, const OpParams& params);
  const OpInfo& currentOp() const { return parent_ ? parent_->currentOp() : op_; }

  // The transport in use ("tcp", "shm"; "none" for a world of one), and the shared-memory
  // transport itself when it is the one (for the non-blocking small-message path), else null.
  const char* transportName() const;
  ShmTransport* shm() const;

  // Topology: the hosts of the job, numbered in the order of their lowest rank (a world of one,
  // and a view, has one host).
  int hostCount() const;
  int hostOf(int rank) const;

  // Views for hierarchical algorithms: the ranks on this rank's host, and the lowest rank of
  // every host (null on the other ranks). A view's rank() and size() are positions in its
  // member list; its sendRecv forwards to this communicator with peers mapped to their ranks
  // here, as part of this communicator's current operation (same headers, same deadline). It
  // has scratch buffers of its own. Only rank, size, options, sendRecv, send, recv, scratch
  // and currentOp may be used on a view (algorithm building blocks, never beginOp).
  Communicator* localView();
  Communicator* leaderView();

  // What all-reduce has measured of the flat ring against the hierarchical algorithm in a job
  // across hosts, under NODECCL_ALGO=auto (coll/allreduce_hier.cc): the timed trials so far,
  // their summed seconds per algorithm (0 ring, 1 hier), and the choice once made (-1 before).
  struct AcrossHostsTuning {
    int trials = 0;
    double seconds[2] = {0, 0};
    int choice = -1;
  };
  AcrossHostsTuning& acrossHostsTuning() { return tuning_; }

  // Records the algorithm a collective chose; logged at info whenever it differs from the
  // previous call's choice for that collective (so a size sweep shows every switch).
  void noteAlgorithm(const char* collective, const char* algo, size_t bytes);

  // Point-to-point building blocks for algorithms; see Transport::sendRecv.
  void sendRecv(int sendPeer, const void* sbuf, size_t sbytes, int recvPeer, void* rbuf,
                size_t rbytes);
  void send(int peer, const void* buf, size_t bytes) { sendRecv(peer, buf, bytes, -1, nullptr, 0); }
  void recv(int peer, void* buf, size_t bytes) { sendRecv(-1, nullptr, 0, peer, buf, bytes); }

  // NODECCL_TRACE: whether this communicator writes a timeline, and a step of the current
  // operation that is not a sendRecv (staged phases); `args` is a JSON object body or "".
  bool tracing() const;
  void tracePhase(const char* name, std::chrono::steady_clock::time_point start,
                  std::chrono::steady_clock::time_point end, const std::string& args);

  // A reusable scratch buffer of at least `bytes` (grown on demand, kept between operations).
  // Valid until the next call with a larger size.
  void* scratch(size_t bytes, int slot = 0);

  // Thread-safe. Fails the operation in progress and every later one with kAborted carrying
  // `reason`, and tells the other ranks (through the store) so that they fail too.
  void abort(const std::string& reason);

  // Records `reason` as this communicator's first error (if none yet) and tells the other
  // ranks, as abort() does. Called by the executor when an operation throws.
  // Other ranks fail with the same code and text (an abort notice carries both).
  void fail(const std::string& reason, ErrorCode code = ErrorCode::kAborted);

  // Closes connections and stops background watching. Idempotent.
  void destroy();

  // The first error recorded, or "" when healthy.
  std::string firstError() const;
  ErrorCode firstErrorCode() const;  // its code (kAborted for abort() and a lost store)

 private:
  Communicator(std::shared_ptr<Store> store, const CommOptions& opts);
  Communicator(Communicator* parent, std::vector<int> members);  // a view
  struct Impl;
  std::unique_ptr<Impl> impl_;  // null for a view
  Communicator* parent_ = nullptr;  // a view's communicator
  std::vector<int> members_;        // a view's ranks in parent_, ascending
  CommOptions opts_;
  OpInfo op_;
  std::vector<std::vector<unsigned char>> scratch_;
  std::vector<std::pair<const char*, const char*>> algos_;  // last choice per collective
  AcrossHostsTuning tuning_;
};

}  // namespace nodeccl
