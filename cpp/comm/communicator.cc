// SPDX-License-Identifier: Apache-2.0
// The communicator: rendezvous through the store, the operation context, and error
// propagation across ranks.
//
// Rendezvous (keys under `prefix/`): each rank claims `rankclaim/<r>` (a second claim of the
// same rank is an error), listens on an ephemeral port, publishes `size/<r>` then `addr/<r>`,
// waits for every other rank's address while checking their sizes, and builds the TCP mesh.
// Each rank also publishes `host/<r>`, its hostname and boot id: when every rank shows the
// same one (or NODECCL_TRANSPORT=shm), the ranks set up the shared-memory transport and keep
// the TCP mesh open beside it only to notice a peer that dies.
//
// Error propagation: the first error a rank records (a failed operation, or abort()) is
// published with compareSet(`abort`, absent -> "<code name>\n<text>"), so the first error of the
// whole group wins, and every rank fails with its code and text (a mismatch stays a mismatch,
// a lost peer stays a lost peer, on every rank). Every rank runs a watcher thread blocked in
// get(`abort`) on its own store connection;
// when the key appears it aborts its transport with that text, so ranks blocked in the same
// collective fail at once with the original cause instead of waiting for their timeout.
#include "comm/communicator.h"

#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <thread>

#include "backend/mpi/mpi_collectives.h"
#include "common/error.h"
#include "common/log.h"
#include "common/trace.h"
#include "transport/hybrid/hybrid_transport.h"
#include "transport/shm/shm_transport.h"
#include "transport/tcp/interface.h"
#include "transport/tcp/tcp_transport.h"

namespace nodeccl {

namespace {

// How long the watcher waits after losing the store before it aborts the transport: when rank
// 0 ends normally, the other ranks are finishing their last operation and must not fail.
constexpr Millis kStoreLostGrace(1000);
// Bound on publishing this rank's first error to the store (see Impl::startWatcher).
constexpr Millis kNotifyIoTimeout(2000);
// Slices of the rendezvous wait, between which the sizes and the abort key are checked.
constexpr Millis kFirstSlice(20), kMaxSlice(200);
// After a timeout, how long the census (below) waits for the other ranks to answer, and how long
// they wait for its result before failing with the timeout's own text.
constexpr Millis kCensusWait(1500), kCensusResultWait(2500);

bool isWildcard(const std::string& h) { return h == "0.0.0.0" || h == "::" || h == "*"; }

// An error as published in the abort key: "ERR_NODECCL_MISMATCH\nrank 1: ...".
struct Notice {
  ErrorCode code = ErrorCode::kAborted;
  std::string text;
};

std::string encodeNotice(ErrorCode code, const std::string& text) {
  return strcat(errorCodeName(code), "\n", text);
}

// A value without a known code name (an older writer) is an abort carrying that text.
Notice decodeNotice(const std::string& value) {
  size_t nl = value.find('\n');
  if (nl != std::string::npos) {
    std::string name = value.substr(0, nl);
    for (int c = 0; c <= int(ErrorCode::kStore); ++c) {
      if (name == errorCodeName(ErrorCode(c))) return {ErrorCode(c), value.substr(nl + 1)};
    }
  }
  return {ErrorCode::kAborted, value};
}

// "hostname/boot-id/netns": equal on two processes that can share memory (the boot id tells
// apart hosts with the same name and containers on different machines; the network namespace
// tells apart containers, and the namespaces tests use as hosts, on one machine).
std::string hostId() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0) std::strcpy(name, "unknown-host");
  std::string boot;
  std::ifstream f("/proc/sys/kernel/random/boot_id");
  std::getline(f, boot);
  char ns[128] = {};
  ssize_t n = ::readlink("/proc/self/ns/net", ns, sizeof(ns) - 1);
  return strcat(name, "/", boot, "/", n > 0 ? ns : "net:?");
}

const char* const kAlgos[] = {"auto", "ring", "direct", "chain", "tree", "hier", "staged"};

}  // namespace

struct Communicator::Impl {
  CommOptions opts;
  std::shared_ptr<Store> store;        // the caller's; shared with the application
  std::shared_ptr<Store> watchStore;   // own connection, blocked in get(abortKey)
  std::shared_ptr<Store> notifyStore;  // own connection, publishes this rank's first error
  std::unique_ptr<TcpTransport> tcp;        // during the rendezvous
  std::unique_ptr<Transport> transport;     // the one in use; null for a world of one
  ShmTransport* shm = nullptr;              // transport, when it is shared memory alone
  std::vector<int> hostOf;                  // host index of every rank (chooseTransport)
  int hosts = 1;
  std::unique_ptr<Communicator> localView, leaderView;  // built on first use
  std::unique_ptr<trace::CommTimeline> timeline;  // NODECCL_TRACE; null when off
  std::thread watcher;

  std::atomic<bool> destroyed{false};
  std::atomic<bool> failed{false};
  // The operation in progress, for the census: its kind and collective step (or its seq).
  std::atomic<int> kindNow{0};
  std::atomic<uint64_t> stepNow{0};
  std::atomic<int> rootNow{-1};
  std::atomic<int> active{0};  // sendRecv calls in progress (destroy waits for them)

  mutable std::mutex mu;  // guards the strings below and stopping
  std::condition_variable stopCv;
  bool stopping = false;
  std::string firstError;
  ErrorCode firstCode = ErrorCode::kAborted;
  std::string storeLost;   // set by the watcher as soon as the store connection is lost
  std::string publishing;  // this rank's error being published (the watcher will see it too)

  std::string key(const std::string& what, int r = -1) const {
    return r < 0 ? strcat(opts.prefix, "/", what) : strcat(opts.prefix, "/", what, "/", r);
  }
  std::string who() const { return strcat("rank ", opts.rank); }

  void rendezvous(net::Deadline deadline);
  void claimRank();
  std::string publishAddress();
  std::vector<std::string> waitForRanks(const std::string& myAddr, net::Deadline deadline,
                                        net::Clock::time_point start);
  void takeArrivals(bool all, std::vector<int>* missing, std::vector<std::string>* addrs);
  [[noreturn]] void throwMissing(const std::vector<int>& missing, net::Clock::time_point start);
  void checkSize(int r, const std::string& value);
  std::string refused;  // kRefusedClientsKey's value seen while waiting for ranks, or ""
  static std::string refusedText(const std::string& value);
  void chooseTransport(const std::vector<std::string>& addrs, net::Deadline deadline);
  void startShm(bool forced, const std::vector<int>& members, net::Deadline deadline);
  void startWatcher();
  void watchLoop();
  void pollLoop();
  void onRemoteError(const std::string& value);
  void onStoreLost(const std::string& what);
  bool record(const std::string& text, ErrorCode code);
  Notice publish(const std::string& text, ErrorCode code);
  void answerCensus(Store& s);
  std::string runCensus(Store& s, const std::string& text);
  std::string awaitCensus(Store& s, const std::string& text);
  bool sleepUnlessStopping(Millis ms);
};

// ---- rendezvous -------------------------------------------------------------------------

static void validate(const CommOptions& o) {
  auto bad = [](const std::string& msg) { throw Error(ErrorCode::kInvalidArgument, msg); };
  if (o.size < 1) bad(strcat("world size must be >= 1, got ", o.size));
  if (o.rank < 0 || o.rank >= o.size) {
    bad(strcat("rank ", o.rank, " is out of range for world size ", o.size, "; ranks are 0..",
               o.size - 1));
  }
  if (o.transport != "tcp" && o.transport != "shm" && o.transport != "auto") {
    bad(strcat("rank ", o.rank, ": unknown transport '", o.transport,
               "'; use 'auto', 'tcp' or 'shm' (check NODECCL_TRANSPORT)"));
  }
  bool known = false;
  for (const char* a : kAlgos) known = known || o.algo == a;
  if (!known) {
    bad(strcat("rank ", o.rank, ": unknown algorithm '", o.algo, "'; use auto, ring, direct, "
               "staged or hier (allReduce), chain, tree, direct or staged (broadcast), ring, "
               "direct or staged (allGather, reduceScatter), direct (barrier) (check "
               "NODECCL_ALGO)"));
  }
  if (o.prefix.empty()) bad(strcat("rank ", o.rank, ": the store prefix must not be empty"));
  // Read where the staged copies choose their stores (reduce/copy.cc), checked here.
  if (const char* s = std::getenv("NODECCL_STREAM_MIN_BYTES"); s != nullptr && *s != '\0') {
    bool digits = true;
    for (const char* c = s; *c != '\0'; ++c) digits = digits && *c >= '0' && *c <= '9';
    if (!digits || std::strlen(s) > 19) {
      bad(strcat("rank ", o.rank, ": NODECCL_STREAM_MIN_BYTES='", s, "' is not a byte count; ",
                 "set a whole number (0: every staged copy streams) or unset it"));
    }
  }
  if (o.initTimeout <= Millis(0) || o.timeout <= Millis(0)) {
    bad(strcat("rank ", o.rank, ": initTimeout and timeout must be > 0 ms, got ",
               o.initTimeout.count(), " and ", o.timeout.count()));
  }
}

CommOptions Communicator::resolveOptions(const CommOptions& opts) {
  CommOptions o = opts;
  auto set = [](const char* name) {
    const char* v = std::getenv(name);
    return v != nullptr && *v != '\0' ? v : nullptr;
  };
  if (const char* t = set("NODECCL_TRANSPORT")) o.transport = t;
  if (const char* h = set("NODECCL_HOST_ID")) o.hostId = h;
  if (const char* a = set("NODECCL_ALGO")) o.algo = a;
  validate(o);
  return o;
}

std::unique_ptr<Communicator> Communicator::create(std::shared_ptr<Store> store,
                                                   const CommOptions& opts) {
  CommOptions o = resolveOptions(opts);
  for (const char* name : {"NODECCL_TRANSPORT", "NODECCL_HOST_ID", "NODECCL_ALGO"}) {
    if (const char* v = std::getenv(name); v != nullptr && *v != '\0') {
      NODECCL_INFO("init", o.rank, o.size, name, "=", v);
    }
  }
  if (o.size > 1 && !store) {
    throw Error(ErrorCode::kInvalidArgument,
                strcat("rank ", o.rank, ": a store is required for a world of ", o.size));
  }
  mpi::attachBackend(o);  // NODECCL_BACKEND=mpi: claims MPI_COMM_WORLD until destroy()
  std::unique_ptr<Communicator> comm(new Communicator(std::move(store), o));
  if (o.size > 1) comm->impl_->rendezvous(net::deadlineAfter(o.initTimeout));
  NODECCL_INFO("init", o.rank, o.size, "communicator ready (prefix '", o.prefix, "')");
  return comm;
}

Communicator::Communicator(std::shared_ptr<Store> store, const CommOptions& opts)
    : impl_(new Impl), opts_(opts) {
  impl_->opts = opts;
  impl_->store = std::move(store);
  if (trace::enabled()) impl_->timeline = std::make_unique<trace::CommTimeline>(opts.rank);
}

Communicator::Communicator(Communicator* parent, std::vector<int> members)
    : parent_(parent), members_(std::move(members)), opts_(parent->opts_) {
  opts_.size = static_cast<int>(members_.size());
  opts_.rank = -1;
  for (size_t i = 0; i < members_.size(); ++i) {
    if (members_[i] == parent->rank()) opts_.rank = static_cast<int>(i);
  }
  NODECCL_CHECK(opts_.rank >= 0);
}

Communicator::~Communicator() { destroy(); }

void Communicator::Impl::rendezvous(net::Deadline deadline) {
  auto start = net::Clock::now();
  try {
    claimRank();
    std::string myAddr = publishAddress();
    std::vector<std::string> addrs = waitForRanks(myAddr, deadline, start);
    tcp->connectMesh(addrs, opts.prefix, deadline);
    chooseTransport(addrs, deadline);
  } catch (const Error& e) {
    // Tell the others, so that they fail now rather than at their own init timeout.
    if (e.code() != ErrorCode::kTimeout && e.code() != ErrorCode::kAborted) {
      try {
        store->compareSet(key("abort"), "", true, encodeNotice(e.code(), e.what()));
      } catch (const std::exception&) {
      }
    }
    throw;
  }
  startWatcher();
}

void Communicator::Impl::claimRank() {
  if (store->add(key("rankclaim", opts.rank), 1) > 1) {
    throw Error(ErrorCode::kInvalidArgument,
                strcat(who(), ": another process already joined prefix '", opts.prefix,
                       "' as rank ", opts.rank, "; give every process a distinct rank in 0..",
                       opts.size - 1, ", or use a new prefix for a new communicator"));
  }
}

// Listens, then publishes size before address: a visible address implies a visible size.
// The address: listenHost when given, else that of the interface NODECCL_SOCKET_IFNAME names,
// else the one this machine reaches the store from (one interface, never every one).
std::string Communicator::Impl::publishAddress() {
  std::string host = opts.listenHost, why = "listenHost";
  const char* ifname = std::getenv("NODECCL_SOCKET_IFNAME");
  if (host.empty() && ifname != nullptr && *ifname != '\0') {
    host = net::interfaceAddress(ifname, who());
    why = strcat("NODECCL_SOCKET_IFNAME=", ifname);
  }
  if (host.empty()) {
    host = store->localHost();
    why = "the interface that reaches the store";
  }
  if (host.empty()) host = "127.0.0.1";
  std::string ifName = isWildcard(host) ? std::string() : net::interfaceOf(host);
  NODECCL_INFO("init", opts.rank, opts.size, "transport listens on ",
               isWildcard(host) ? strcat("every interface (", host, ")")
                                : strcat(ifName.empty() ? "" : "interface " + ifName + " ",
                                         "address ", host),
               " (", why, ")");
  tcp = std::make_unique<TcpTransport>(opts.rank, opts.size, host, opts.token);
  std::string published = host;
  if (isWildcard(host)) {
    published = store->localHost();
    if (published.empty()) published = "127.0.0.1";
  }
  std::string addr = net::joinHostPort(published, tcp->port());
  store->set(key("size", opts.rank), std::to_string(opts.size));
  store->set(key("host", opts.rank), opts.hostId.empty() ? hostId() : opts.hostId);
  store->set(key("addr", opts.rank), addr);
  NODECCL_INFO("init", opts.rank, opts.size, "listening on ", addr, " (listenHost '",
               opts.listenHost, "')");
  return addr;
}

void Communicator::Impl::checkSize(int r, const std::string& value) {
  if (value == std::to_string(opts.size)) return;
  throw Error(ErrorCode::kInvalidArgument,
              strcat(who(), ": world size mismatch: this rank was given size ", opts.size,
                     " but rank ", r, " was given size ", value,
                     "; every rank must pass the same world size"));
}

// Waits in growing slices for every rank's address; between slices checks the sizes of the
// ranks already there and whether another rank gave up (the abort key).
std::vector<std::string> Communicator::Impl::waitForRanks(const std::string& myAddr,
                                                          net::Deadline deadline,
                                                          net::Clock::time_point start) {
  std::vector<std::string> addrs(opts.size);
  addrs[opts.rank] = myAddr;
  std::vector<int> missing;
  for (int r = 0; r < opts.size; ++r) {
    if (r != opts.rank) missing.push_back(r);
  }
  refused.clear();
  Millis slice = kFirstSlice;
  for (;;) {
    std::vector<std::string> keys;
    for (int r : missing) keys.push_back(key("addr", r));
    bool all = true;
    try {
      store->wait(keys, std::min<Millis>(slice, Millis(net::msUntil(deadline))));
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kTimeout) throw;
      all = false;
    }
    takeArrivals(all, &missing, &addrs);
    if (missing.empty()) return addrs;
    if (store->exists(key("abort"))) {
      Notice n = decodeNotice(store->get(key("abort"), Millis(1000)));
      throw Error(n.code, n.text);
    }
    // A process refused for a wrong job token may be one of the missing ranks: say so now
    // (once), but keep waiting: a stranger's connection must not be able to end a job's init.
    if (refused.empty() && store->exists(kRefusedClientsKey)) {
      refused = store->get(kRefusedClientsKey, Millis(1000));
      NODECCL_WARN("init", opts.rank, opts.size, "still waiting for ", missing.size(),
                   " rank(s); ", refusedText(refused));
    }
    if (net::Clock::now() >= deadline) throwMissing(missing, start);
    slice = std::min(slice * 2, kMaxSlice);
  }
}

// Moves the ranks of *missing whose address is now in the store into *addrs, checking their
// sizes. `all`: the last wait saw every key, no need to ask.
void Communicator::Impl::takeArrivals(bool all, std::vector<int>* missing,
                                      std::vector<std::string>* addrs) {
  std::vector<int> still;
  for (int r : *missing) {
    if (!all && !store->exists(key("addr", r))) {
      still.push_back(r);
      continue;
    }
    checkSize(r, store->get(key("size", r), Millis(1000)));
    (*addrs)[r] = store->get(key("addr", r), Millis(1000));
  }
  missing->swap(still);
}

// "the store refused 2 connections for a wrong job token (the last from 10.0.0.2:4412) ...".
std::string Communicator::Impl::refusedText(const std::string& value) {
  size_t sp = value.find(' ');
  std::string count = value.substr(0, sp), from = sp == std::string::npos ? "?" :
                                                    value.substr(sp + 1);
  return strcat("the store refused ", count, count == "1" ? " connection" : " connections",
                " for a wrong job token (the last from ", from, "): if a missing rank is there, "
                "its NODECCL_TOKEN differs from this rank's; give every rank the same token");
}

void Communicator::Impl::throwMissing(const std::vector<int>& missing,
                                      net::Clock::time_point start) {
  std::string list;
  for (size_t i = 0; i < missing.size(); ++i) list += strcat(i ? ", " : "", missing[i]);
  auto waited = std::chrono::duration_cast<Millis>(net::Clock::now() - start);
  throw Error(ErrorCode::kTimeout,
              strcat(who(), ": init timed out after ", waited.count(), " ms: ", missing.size(),
                     " of ", opts.size, " ranks never arrived (",
                     missing.size() == 1 ? "rank " : "ranks ", list,
                     "); start every rank with the same store address, prefix and world size, "
                     "or raise the init timeout",
                     refused.empty() ? "" : strcat("; note: ", refusedText(refused))));
}

// ---- transport choice -------------------------------------------------------------------

// Every rank reads the same host table, so every rank makes the same choice: shared memory when
// all ranks share this host; otherwise shared memory among this host's ranks and TCP to the
// rest (a hybrid transport), or TCP alone for a rank that is alone on its host.
void Communicator::Impl::chooseTransport(const std::vector<std::string>& addrs,
                                         net::Deadline deadline) {
  std::vector<std::string> hosts(opts.size), names;
  hostOf.assign(opts.size, 0);
  int other = -1;
  for (int r = 0; r < opts.size; ++r) {
    hosts[r] = store->get(key("host", r), Millis(net::msUntil(deadline)));
    if (other < 0 && hosts[r] != hosts[0]) other = r;
    size_t h = 0;
    while (h < names.size() && names[h] != hosts[r]) ++h;
    if (h == names.size()) names.push_back(hosts[r]);
    hostOf[r] = static_cast<int>(h);
  }
  this->hosts = static_cast<int>(names.size());
  std::vector<int> members;  // this host's ranks
  for (int r = 0; r < opts.size; ++r) {
    if (hostOf[r] == hostOf[opts.rank]) members.push_back(r);
  }
  if (opts.transport == "shm" && other >= 0) {
    throw Error(ErrorCode::kInvalidArgument,
                strcat(who(), ": NODECCL_TRANSPORT=shm, but rank 0 (", addrs[0], ", host ",
                       hosts[0], ") and rank ", other, " (", addrs[other], ", host ",
                       hosts[other], ") are on different hosts; shared memory only joins "
                       "ranks on one host: unset NODECCL_TRANSPORT or set it to tcp"));
  }
  if (opts.transport == "tcp" || members.size() == 1) {
    NODECCL_INFO("init", opts.rank, opts.size, "transport tcp (",
                 opts.transport == "tcp" ? "NODECCL_TRANSPORT=tcp"
                                         : strcat("no other rank on this host; ", this->hosts,
                                                  " hosts"),
                 ")");
    transport = std::move(tcp);
    return;
  }
  startShm(opts.transport == "shm", members, deadline);
}

void Communicator::Impl::startShm(bool forced, const std::vector<int>& members,
                                  net::Deadline deadline) {
  const bool alone = static_cast<int>(members.size()) == opts.size;  // one host
  auto shmT = std::make_unique<ShmTransport>(opts.rank, opts.size, std::move(tcp), members);
  bool anyFailed = false;
  // The host's ranks agree among themselves (every host decides for its own pairs).
  std::string why = shmT->setup(*store, key(strcat("shm/h", hostOf[opts.rank])),
                                Millis(std::max(1, net::msUntil(deadline))), &anyFailed);
  if (!anyFailed && alone) {
    NODECCL_INFO("init", opts.rank, opts.size, "transport shm (all ", opts.size,
                 " ranks on this host", forced ? ", NODECCL_TRANSPORT=shm" : "", "; ",
                 ShmTransport::kRingBytes >> 10, " KiB ring per pair)");
    shm = shmT.get();
    transport = std::move(shmT);
    return;
  }
  if (!anyFailed) {
    NODECCL_INFO("init", opts.rank, opts.size, "transport shm+tcp (", members.size(),
                 " ranks on this host over shared memory, TCP to the other ", hosts - 1,
                 hosts == 2 ? " host)" : " hosts)");
    transport = std::make_unique<HybridTransport>(std::move(shmT));
    return;
  }
  if (forced) {
    throw Error(ErrorCode::kIo, strcat(who(), ": NODECCL_TRANSPORT=shm, but shared memory "
                                       "cannot be set up: ", why, "; unset NODECCL_TRANSPORT "
                                       "to fall back to tcp"));
  }
  NODECCL_WARN("init", opts.rank, opts.size, "shared memory unavailable (", why,
               "); using tcp");
  transport = shmT->takeLiveness();
}

int Communicator::hostCount() const { return impl_ ? impl_->hosts : 1; }

int Communicator::hostOf(int rank) const {
  if (!impl_ || impl_->hostOf.empty()) return 0;
  return impl_->hostOf[static_cast<size_t>(rank)];
}

Communicator* Communicator::localView() {
  NODECCL_CHECK(impl_ != nullptr);
  if (!impl_->localView) {
    std::vector<int> members;
    for (int r = 0; r < opts_.size; ++r) {
      if (hostOf(r) == hostOf(opts_.rank)) members.push_back(r);
    }
    impl_->localView.reset(new Communicator(this, members));
  }
  return impl_->localView.get();
}

Communicator* Communicator::leaderView() {
  NODECCL_CHECK(impl_ != nullptr);
  std::vector<int> leaders;  // the lowest rank of every host, ascending
  std::vector<char> seen(static_cast<size_t>(hostCount()), 0);
  for (int r = 0; r < opts_.size; ++r) {
    if (!seen[hostOf(r)]) leaders.push_back(r);
    seen[hostOf(r)] = 1;
  }
  if (std::find(leaders.begin(), leaders.end(), opts_.rank) == leaders.end()) return nullptr;
  if (!impl_->leaderView) impl_->leaderView.reset(new Communicator(this, leaders));
  return impl_->leaderView.get();
}

const char* Communicator::transportName() const {
  if (parent_) return parent_->transportName();
  return impl_->transport ? impl_->transport->name() : "none";
}

ShmTransport* Communicator::shm() const { return impl_ ? impl_->shm : nullptr; }

void Communicator::noteAlgorithm(const char* collective, const char* algo, size_t bytes) {
  if (parent_) return;  // a view's inner choices are part of its parent's algorithm
  for (auto& [coll, last] : algos_) {
    if (std::strcmp(coll, collective) != 0) continue;
    if (std::strcmp(last, algo) == 0) return;
    last = algo;
    NODECCL_INFO("coll", opts_.rank, opts_.size, collective, ": ", algo, " from ", bytes,
                 " bytes (NODECCL_ALGO=", opts_.algo, ", transport ", transportName(), ")");
    return;
  }
  algos_.emplace_back(collective, algo);
  NODECCL_INFO("coll", opts_.rank, opts_.size, collective, ": ", algo, " from ", bytes,
               " bytes (NODECCL_ALGO=", opts_.algo, ", transport ", transportName(), ")");
}

// ---- error propagation ------------------------------------------------------------------

void Communicator::Impl::startWatcher() {
  // Own connections, so that neither watching nor publishing waits behind the application's
  // store requests. Without clone() support the watcher polls the shared store instead.
  watchStore = store->clone();
  if (watchStore) notifyStore = store->clone();
  // Publishing a failure must not hold the failing rank's error back for long when the store's
  // host is unreachable (a cut link): bound it well below the default 30 s I/O timeout.
  if (auto* tcp = dynamic_cast<TcpStoreClient*>(notifyStore.get())) {
    tcp->setIoTimeout(kNotifyIoTimeout);
  }
  watcher = std::thread([this] {
    try {
      if (watchStore) watchLoop();
      else pollLoop();
    } catch (const std::exception& e) {
      // Nothing may escape a thread (it would end the process); watching just stops.
      NODECCL_WARN("coll", opts.rank, opts.size, "abort watcher stopped: ", e.what());
    }
  });
}

void Communicator::Impl::watchLoop() {
  for (;;) {
    try {
      onRemoteError(watchStore->get(key("abort"), Millis(3600 * 1000)));
      return;
    } catch (const Error& e) {
      {
        std::lock_guard<std::mutex> lock(mu);
        if (stopping) return;
      }
      if (e.code() == ErrorCode::kTimeout) continue;
      onStoreLost(e.what());
      return;
    }
  }
}

void Communicator::Impl::pollLoop() {
  for (;;) {
    try {
      if (store->exists(key("abort"))) {
        onRemoteError(store->get(key("abort"), Millis(1000)));
        return;
      }
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kTimeout) return onStoreLost(e.what());
    }
    if (!sleepUnlessStopping(Millis(100))) return;
  }
}

// False when destroy() began during the sleep.
bool Communicator::Impl::sleepUnlessStopping(Millis ms) {
  std::unique_lock<std::mutex> lock(mu);
  stopCv.wait_for(lock, ms, [this] { return stopping; });
  return !stopping;
}

void Communicator::Impl::onRemoteError(const std::string& value) {
  Notice n = decodeNotice(value);
  bool own;
  {
    std::lock_guard<std::mutex> lock(mu);
    own = n.text == publishing;
  }
  // A timeout: the failing rank's census is running (in fail()); answer it, and fail with its
  // result, which names the ranks that are really missing and where the others are.
  if (n.code == ErrorCode::kTimeout && opts.size > 1) {
    if (own) return;  // fail() records and aborts with the census result
    n.text = awaitCensus(watchStore ? *watchStore : *store, n.text);
  }
  if (record(n.text, n.code) && !own) {
    NODECCL_INFO("coll", opts.rank, opts.size, "another rank failed: ", n.text);
  }
  transport->abort(n.text);
}

void Communicator::Impl::onStoreLost(const std::string& what) {
  std::string text = strcat(who(), ": ", what);
  {
    std::lock_guard<std::mutex> lock(mu);
    storeLost = text;
  }
  if (!sleepUnlessStopping(kStoreLostGrace)) return;
  NODECCL_WARN("coll", opts.rank, opts.size, text);
  record(text, ErrorCode::kAborted);
  transport->abort(text);
}

// Records `text` as the first error; true when it was the first.
bool Communicator::Impl::record(const std::string& text, ErrorCode code) {
  std::lock_guard<std::mutex> lock(mu);
  failed.store(true);
  if (!firstError.empty()) return false;
  firstError = text;
  firstCode = code;
  return true;
}

// Publishes `text` unless another rank's error is already there; returns the group's first
// error (the notice now in the store), or an empty text when the store could not be reached.
Notice Communicator::Impl::publish(const std::string& text, ErrorCode code) {
  Store* s = notifyStore ? notifyStore.get() : store.get();
  if (s == nullptr || opts.size == 1) return {};
  {
    std::lock_guard<std::mutex> lock(mu);
    publishing = text;
  }
  try {
    return decodeNotice(s->compareSet(key("abort"), "", true, encodeNotice(code, text)));
  } catch (const std::exception& e) {
    NODECCL_INFO("coll", opts.rank, opts.size, "could not tell the other ranks about the "
                 "error (", e.what(), ")");
    std::lock_guard<std::mutex> lock(mu);
    return {ErrorCode::kAborted, storeLost};  // with the store gone, the likelier first cause
  }
}

// ---- census after a timeout ---------------------------------------------------------------
//
// A rank that times out knows only the peer it was waiting for, which in a ring of three or
// more may itself be waiting for the rank that really stopped, and not why (a rank that passed
// another root, say). So the rank whose timeout became
// the group's error (it won the abort key) asks everyone: every rank that sees the notice (its
// watcher thread is alive even while its worker is blocked) writes census/<rank> = the
// operation it is in; after kCensusWait the ranks that did not answer are the ones stopped,
// hung, or cut off from the store. The census result becomes every rank's error text.

void Communicator::Impl::answerCensus(Store& s) {
  const int root = rootNow.load();
  s.set(key("census", opts.rank),
        strcat(opKindName(OpKind(kindNow.load())), " #", stepNow.load(),
               root >= 0 ? strcat(" (root ", root, ")") : std::string()));
}

// On the failing rank: collects the answers and publishes the result. Returns the new text
// (`text` itself when the store cannot be reached).
std::string Communicator::Impl::runCensus(Store& s, const std::string& text) {
  try {
    answerCensus(s);
    std::vector<std::string> keys;
    for (int r = 0; r < opts.size; ++r) keys.push_back(key("census", r));
    try {
      s.wait(keys, kCensusWait);
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kTimeout) throw;
    }
    // Ranks grouped by where they are; those without an answer are missing.
    std::vector<int> missing;
    std::vector<std::pair<std::string, std::string>> at;  // operation -> "1, 3"
    for (int r = 0; r < opts.size; ++r) {
      if (!s.exists(keys[r])) {
        missing.push_back(r);
        continue;
      }
      std::string where = s.get(keys[r], Millis(1000));
      auto it = std::find_if(at.begin(), at.end(), [&](auto& p) { return p.first == where; });
      if (it == at.end()) at.emplace_back(where, std::to_string(r));
      else it->second += strcat(", ", r);
    }
    std::string result = text + "; census after the timeout: ";
    if (!missing.empty()) {
      std::string list;
      for (size_t i = 0; i < missing.size(); ++i) list += strcat(i ? ", " : "", missing[i]);
      result += strcat(missing.size() == 1 ? "rank " : "ranks ", list, " did not answer within ",
                       kCensusWait.count(), " ms (stopped, hung, or cut off from the store: "
                       "check ", missing.size() == 1 ? "it" : "them", ")", at.empty() ? "" : "; ");
    } else {
      result += "every rank answered (none is stopped: look for one that called a different "
                "operation or is slow); ";
    }
    for (size_t i = 0; i < at.size(); ++i) {
      result += strcat(i ? ", " : "", at[i].second.find(',') == std::string::npos ? "rank " :
                       "ranks ", at[i].second, " in ", at[i].first);
    }
    s.set(key("census-result"), result);
    return result;
  } catch (const std::exception& e) {
    NODECCL_INFO("coll", opts.rank, opts.size, "census after the timeout failed: ", e.what());
    return text;
  }
}

// On the other ranks: answers, then waits for the result (else keeps `text`).
std::string Communicator::Impl::awaitCensus(Store& s, const std::string& text) {
  try {
    answerCensus(s);
    return s.get(key("census-result"), kCensusResultWait);
  } catch (const std::exception& e) {
    NODECCL_INFO("coll", opts.rank, opts.size, "no census result after the timeout (",
                 e.what(), ")");
    return text;
  }
}

void Communicator::fail(const std::string& reason, ErrorCode code) {
  // Publish before recording: when another rank failed first (and this rank only saw the
  // consequence, e.g. that rank closing its sockets), its error becomes this rank's too.
  Notice first{code, reason};
  bool ownWon = false;  // this rank's error is the group's first (the watcher may record it)
  if (!impl_->failed.load() && !impl_->destroyed.load()) {
    Notice winner = impl_->publish(reason, code);
    if (!winner.text.empty()) first = winner;
    ownWon = winner.text == reason;
    // A timeout: find who is really missing, and where the others are (see above).
    Store* s = impl_->notifyStore ? impl_->notifyStore.get() : impl_->store.get();
    if (first.code == ErrorCode::kTimeout && opts_.size > 1 && s != nullptr) {
      first.text = ownWon ? impl_->runCensus(*s, first.text) : impl_->awaitCensus(*s, first.text);
    }
  }
  const std::string& text = first.text;
  if (impl_->record(text, first.code) || ownWon) {
    NODECCL_WARN("coll", opts_.rank, opts_.size, "communicator failed: ", text);
  }
  if (impl_->transport) impl_->transport->abort(firstError());
}

// Unlike fail(), wakes the local operation before telling the others: the caller may be
// the application's main thread, and the store round trip is not needed for that.
void Communicator::abort(const std::string& reason) {
  std::string text = strcat("rank ", opts_.rank, ": communicator aborted: ", reason);
  bool first = impl_->record(text, ErrorCode::kAborted);
  if (impl_->transport) impl_->transport->abort(firstError());
  if (first && !impl_->destroyed.load()) {
    NODECCL_INFO("coll", opts_.rank, opts_.size, text);
    impl_->publish(text, ErrorCode::kAborted);
  }
}

std::string Communicator::firstError() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->firstError;
}

bool Communicator::usable() const { return !impl_->destroyed.load() && !impl_->failed.load(); }

ErrorCode Communicator::firstErrorCode() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->firstCode;
}

// ---- operations -------------------------------------------------------------------------

static void throwIfUnusable(const Communicator& c, bool destroyed, bool failed) {
  if (destroyed) {
    throw Error(ErrorCode::kDestroyed, strcat("rank ", c.rank(), ": communicator was "
                                              "destroyed; create a new one with init()"));
  }
  if (failed) throw Error(c.firstErrorCode(), c.firstError());
}

void Communicator::beginOp(OpKind kind, Millis timeout) { beginOp(kind, timeout, OpParams()); }

void Communicator::beginOp(OpKind kind, Millis timeout, const OpParams& params) {
  NODECCL_CHECK(impl_ != nullptr);  // never on a view
  throwIfUnusable(*this, impl_->destroyed.load(), impl_->failed.load());
  Millis t = timeout > Millis(0) ? timeout : opts_.timeout;
  op_.kind = kind;
  op_.params = params;
  op_.seq += 1;
  if (kind != OpKind::kPointToPoint) op_.step += 1;
  impl_->kindNow.store(int(kind));
  impl_->rootNow.store(params.root);
  impl_->stepNow.store(kind == OpKind::kPointToPoint ? op_.seq : op_.step);
  op_.deadline = net::deadlineAfter(t);
  op_.timeoutMs = static_cast<uint32_t>(std::min<int64_t>(t.count(), UINT32_MAX));
  if (impl_->timeline) {
    impl_->timeline->beginOp(opKindName(kind), strcat("\"seq\":", op_.seq, ",\"step\":", op_.step,
                                                      ",\"count\":", params.count,
                                                      ",\"dtype\":", params.dtype,
                                                      ",\"root\":", params.root));
  }
}

void Communicator::sendRecv(int sendPeer, const void* sbuf, size_t sbytes, int recvPeer,
                            void* rbuf, size_t rbytes) {
  if (parent_) {
    auto global = [&](int p) { return p < 0 ? -1 : members_.at(static_cast<size_t>(p)); };
    parent_->sendRecv(global(sendPeer), sbuf, sbytes, global(recvPeer), rbuf, rbytes);
    return;
  }
  throwIfUnusable(*this, impl_->destroyed.load(), impl_->failed.load());
  if (sendPeer < 0 && recvPeer < 0) return;
  if (!impl_->transport) {
    throw Error(ErrorCode::kInvalidArgument,
                strcat("rank ", opts_.rank, ": sendRecv with peers ", sendPeer, " and ",
                       recvPeer, " in a world of ", opts_.size, " (no peers exist)"));
  }
  // `active` lets destroy() wait until no call uses the sockets it is about to close.
  struct Active {
    std::atomic<int>& n;
    explicit Active(std::atomic<int>& a) : n(a) { ++n; }
    ~Active() { --n; }
  } guard(impl_->active);
  throwIfUnusable(*this, impl_->destroyed.load(), false);
  try {
    if (impl_->timeline) {
      trace::ScopedCurrent track(impl_->timeline->track());
      auto t0 = trace::Clock::now();
      impl_->transport->sendRecv(sendPeer, sbuf, sbytes, recvPeer, rbuf, rbytes, op_);
      impl_->timeline->step(t0, trace::Clock::now(), sendPeer, sbytes, recvPeer, rbytes);
      return;
    }
    impl_->transport->sendRecv(sendPeer, sbuf, sbytes, recvPeer, rbuf, rbytes, op_);
  } catch (const Error& e) {
    throwIfUnusable(*this, impl_->destroyed.load(), false);
    if (e.code() == ErrorCode::kInvalidArgument) throw;
    // Woken by abort: the group's first error (with its code) is recorded by now.
    if (e.code() == ErrorCode::kAborted) throwIfUnusable(*this, false, impl_->failed.load());
    if (e.code() == ErrorCode::kAborted) throw;
    // A transport failure leaves the group out of step: fail and tell the others. A lost
    // peer is usually a consequence: when another rank failed first (and then closed its
    // sockets), report that rank's error instead. Mismatches and timeouts seen here are this
    // rank's own observations and keep their code.
    fail(e.what(), e.code());
    std::string first = firstError();
    if ((e.code() == ErrorCode::kPeerLost || e.code() == ErrorCode::kTimeout) &&
        first != e.what()) {
      throw Error(firstErrorCode(), first);
    }
    throw;
  }
}

bool Communicator::tracing() const {
  if (parent_ != nullptr) return parent_->tracing();
  return impl_ && impl_->timeline && impl_->timeline->track() != nullptr;
}

void Communicator::tracePhase(const char* name, std::chrono::steady_clock::time_point start,
                              std::chrono::steady_clock::time_point end,
                              const std::string& args) {
  if (parent_ != nullptr) return parent_->tracePhase(name, start, end, args);
  if (impl_ && impl_->timeline) impl_->timeline->phase(name, start, end, args);
}

void* Communicator::scratch(size_t bytes, int slot) {
  NODECCL_CHECK(slot >= 0 && slot < 64);
  if (scratch_.size() <= static_cast<size_t>(slot)) scratch_.resize(slot + 1);
  auto& buf = scratch_[slot];
  if (buf.size() < bytes) {
    try {
      buf.resize(bytes);
    } catch (const std::bad_alloc&) {
      throw Error(ErrorCode::kIo, strcat("rank ", opts_.rank, ": cannot allocate ", bytes,
                                         " bytes of scratch memory (slot ", slot,
                                         "); use smaller messages or free memory"));
    }
  }
  return buf.data();
}

// ---- teardown ---------------------------------------------------------------------------

void Communicator::destroy() {
  if (!impl_) return;  // a view: its parent owns the connections
  Impl& m = *impl_;
  if (m.destroyed.exchange(true)) return;
  {
    std::lock_guard<std::mutex> lock(m.mu);
    m.stopping = true;
  }
  m.stopCv.notify_all();

  // Wake everything that may block: an operation in the transport, the watcher in the store.
  if (m.transport) m.transport->abort(strcat("rank ", opts_.rank, ": communicator was destroyed"));
  if (m.watchStore) m.watchStore->close();
  if (m.watcher.joinable()) m.watcher.join();
  if (m.notifyStore) m.notifyStore->close();

  // An operation on another thread leaves promptly after abort(); wait before closing.
  auto giveUp = net::deadlineAfter(Millis(5000));
  while (m.active.load() > 0 && net::Clock::now() < giveUp) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (m.transport && m.active.load() == 0) m.transport->close();
  if (m.timeline) m.timeline->finish();
  if (mpi()) mpi::releaseBackend();
  NODECCL_INFO("init", opts_.rank, opts_.size, "communicator destroyed");
}

}  // namespace nodeccl
