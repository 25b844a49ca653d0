// SPDX-License-Identifier: Apache-2.0
// A small key-value store for rendezvous and for applications: the abstract interface plus the
// TCP server and client. Values are byte strings. Every wait has a deadline.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/auth.h"

namespace nodeccl {

using Millis = std::chrono::milliseconds;

class Store {
 public:
  virtual ~Store() = default;

  virtual void set(const std::string& key, const std::string& value) = 0;

  // Waits until `key` exists, at most `timeout`; throws kTimeout naming the key.
  virtual std::string get(const std::string& key, Millis timeout) = 0;

  // Adds `delta` to the integer stored at `key` (absent counts as 0); returns the new value.
  virtual int64_t add(const std::string& key, int64_t delta) = 0;

  // Waits until every key exists; throws kTimeout naming the keys still missing.
  virtual void wait(const std::vector<std::string>& keys, Millis timeout) = 0;

  // Sets `key` to `desired` when its value equals `expected` (an absent key matches only when
  // `expectAbsent`); returns the value after the call.
  virtual std::string compareSet(const std::string& key, const std::string& expected,
                                 bool expectAbsent, const std::string& desired) = 0;

  // Removes `key`; true when it existed.
  virtual bool del(const std::string& key) = 0;

  // True when `key` exists now (no waiting).
  virtual bool exists(const std::string& key) = 0;

  // A second, independent connection to the same store, or null when the store has no such
  // notion. Communicators use one to watch for abort notices without blocking the caller's
  // requests. The default returns null (the communicator then polls this store instead).
  virtual std::shared_ptr<Store> clone() { return nullptr; }

  // The numeric address this side of the store connection goes out from ("" when unknown);
  // a rank with no listenHost publishes it to its peers.
  virtual std::string localHost() const { return ""; }

  // Unblocks any request in progress (it throws kAborted) and closes the store; later requests
  // throw kAborted. Thread-safe. The default does nothing.
  virtual void close() {}
};

// What a store server holds at most, so that no client (a hostile one included) can make it
// allocate without bound. A single request is also capped, at storeproto::kMaxFrameBytes.
struct StoreLimits {
  // Client connections open at once; more are accepted and closed at once, with a warning.
  // A job needs about two per rank (the rank's requests and its abort watcher).
  size_t maxConnections = 4096;
  // Bytes received but not yet run, plus answers not yet sent, over all connections. A client
  // whose bytes would pass it is dropped, with a warning naming the limit.
  size_t maxBufferedBytes = size_t(256) << 20;
  // Bytes of keys and values held; a set or add past it fails with an error naming it.
  size_t maxStoredBytes = size_t(1) << 30;

  // The defaults, overridden by NODECCL_STORE_MAX_CONNECTIONS, NODECCL_STORE_MAX_BUFFERED_MB
  // and NODECCL_STORE_MAX_STORED_MB (each logged at info when set; kInvalidArgument naming
  // the variable when not a positive integer).
  static StoreLimits fromEnv();
};

// Set by the server whenever it refuses a client for a wrong job token: "<count> <address of
// the last one>". Ranks waiting at init for peers that never arrive read it to say why.
constexpr const char* kRefusedClientsKey = "nodeccl/store/refused";

// Serves the store on a background thread until stop() or destruction.
class TcpStoreServer {
 public:
  // Binds host:port (port 0 picks a free one). Throws kIo naming the address when the port is
  // taken, with the hint to choose another MASTER_PORT.
  // `token`: the job token clients must prove (auth.h); "" accepts clients without one.
  TcpStoreServer(const std::string& host, int port,
                 const std::string& token = auth::tokenFromEnv(),
                 const StoreLimits& limits = StoreLimits::fromEnv());
  ~TcpStoreServer();
  TcpStoreServer(const TcpStoreServer&) = delete;
  TcpStoreServer& operator=(const TcpStoreServer&) = delete;

  int port() const;
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A connection to a TcpStoreServer. Thread-safe: requests from several threads are serialized.
class TcpStoreClient : public Store {
 public:
  // Connects, retrying until `connectTimeout` (the server may start later than the client).
  // `ioTimeout` bounds every request that is not itself a wait.
  // Authenticates with `token` (auth.h) before the first request; kIo when refused.
  TcpStoreClient(const std::string& host, int port, Millis connectTimeout,
                 Millis ioTimeout = Millis(30000),
                 const std::string& token = auth::tokenFromEnv());
  ~TcpStoreClient() override;

  void set(const std::string& key, const std::string& value) override;
  std::string get(const std::string& key, Millis timeout) override;
  int64_t add(const std::string& key, int64_t delta) override;
  void wait(const std::vector<std::string>& keys, Millis timeout) override;
  std::string compareSet(const std::string& key, const std::string& expected, bool expectAbsent,
                         const std::string& desired) override;
  bool del(const std::string& key) override;
  bool exists(const std::string& key) override;

  // Opens a new connection to the same server with the same timeouts.
  std::shared_ptr<Store> clone() override;
  // getsockname() of the connection, e.g. "127.0.0.1" or "fe80::1".
  std::string localHost() const override;
  // "host:port" of the server, as given to the constructor ("[::1]:29500" for IPv6).
  std::string serverAddress() const;

  // Changes the bound on requests that are not waits. Call before the client is shared.
  void setIoTimeout(Millis ioTimeout);
  // Changes how long clone() may take to connect (its first connection may have been made in
  // short attempts, whose bound is too short for a clone made later: one dropped SYN costs
  // a second). Call before the client is shared.
  void setConnectTimeout(Millis connectTimeout);

  // Unblocks any request in progress (it throws kAborted) and closes the connection.
  void close() override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace nodeccl
