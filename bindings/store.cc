// SPDX-License-Identifier: Apache-2.0
// JS classes StoreServer and StoreClient over the core's TCP key-value store. Every client
// request runs on the libuv pool (it may wait on the network) and returns a Promise; values
// cross as Uint8Array copies (stores hold small values: addresses, counters, flags).
#include <cstring>
#include <memory>
#include <string>

#include "async.h"
#include "modules.h"
#include "store/store.h"

namespace nodeccl_binding {
namespace {

using nodeccl::Millis;

std::string bytesArg(const Napi::Value& v, const char* what) {
  if (v.IsString()) return v.As<Napi::String>().Utf8Value();
  ByteView view = typedArrayView(v, what);
  return std::string(static_cast<const char*>(view.data), view.bytes);
}

Napi::Value bytesValue(Napi::Env env, const std::string& s) {
  Napi::Uint8Array out = Napi::Uint8Array::New(env, s.size());
  if (!s.empty()) std::memcpy(out.Data(), s.data(), s.size());
  return out;
}

int64_t millisArg(const Napi::Value& v, const char* what) {
  if (!v.IsNumber()) {
    throw makeError(v.Env(), nodeccl::ErrorCode::kInvalidArgument,
                    std::string(what) + " must be a number of milliseconds");
  }
  double ms = v.As<Napi::Number>().DoubleValue();
  if (!(ms >= 0) || ms > 9.0e15) {
    throw makeRangeError(v.Env(), std::string(what) + " must be >= 0 milliseconds, got " +
                                      std::to_string(ms));
  }
  return static_cast<int64_t>(ms);
}

class StoreServerWrap : public Napi::ObjectWrap<StoreServerWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "StoreServer",
                       {InstanceMethod("port", &StoreServerWrap::Port),
                        InstanceMethod("stop", &StoreServerWrap::Stop)});
  }

  explicit StoreServerWrap(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<StoreServerWrap>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsString()) throw makeError(env, nodeccl::ErrorCode::kInvalidArgument,
                                             "StoreServer: host must be a string");
    if (!info[1].IsNumber()) throw makeError(env, nodeccl::ErrorCode::kInvalidArgument,
                                             "StoreServer: port must be a number");
    std::string host = info[0].As<Napi::String>().Utf8Value();
    int port = info[1].As<Napi::Number>().Int32Value();
    server_ = callCore(env, [&] { return std::make_unique<nodeccl::TcpStoreServer>(host, port); });
  }

 private:
  Napi::Value Port(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), server_ ? server_->port() : 0);
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    if (server_) server_->stop();
    server_.reset();
    return info.Env().Undefined();
  }

  std::unique_ptr<nodeccl::TcpStoreServer> server_;
};

class StoreClientWrap : public Napi::ObjectWrap<StoreClientWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "StoreClient",
                       {InstanceMethod("set", &StoreClientWrap::Set),
                        InstanceMethod("get", &StoreClientWrap::Get),
                        InstanceMethod("add", &StoreClientWrap::Add),
                        InstanceMethod("wait", &StoreClientWrap::Wait),
                        InstanceMethod("compareSet", &StoreClientWrap::CompareSet),
                        InstanceMethod("delete", &StoreClientWrap::Delete),
                        InstanceMethod("close", &StoreClientWrap::Close)});
  }

  // Constructed only by connectStore(), which hands over the connected client.
  explicit StoreClientWrap(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<StoreClientWrap>(info) {}

  std::shared_ptr<nodeccl::TcpStoreClient> client;

 private:
  std::shared_ptr<nodeccl::TcpStoreClient> live(Napi::Env env) {
    if (!client) throw makeError(env, nodeccl::ErrorCode::kDestroyed,
                                 "store client is closed; connect a new one");
    return client;
  }

  Napi::Value Set(const Napi::CallbackInfo& info) {
    auto c = live(info.Env());
    std::string key = bytesArg(info[0], "key");
    std::string value = bytesArg(info[1], "value");
    return PromiseWorker::Run(info.Env(), [c, key, value] { c->set(key, value); }, nullptr);
  }

  Napi::Value Get(const Napi::CallbackInfo& info) {
    auto c = live(info.Env());
    std::string key = bytesArg(info[0], "key");
    Millis timeout(millisArg(info[1], "timeoutMs"));
    auto out = std::make_shared<std::string>();
    return PromiseWorker::Run(
        info.Env(), [c, key, timeout, out] { *out = c->get(key, timeout); },
        [out](Napi::Env env) { return bytesValue(env, *out); });
  }

  Napi::Value Add(const Napi::CallbackInfo& info) {
    auto c = live(info.Env());
    std::string key = bytesArg(info[0], "key");
    if (!info[1].IsNumber()) throw makeError(info.Env(), nodeccl::ErrorCode::kInvalidArgument,
                                             "store.add: delta must be an integer");
    int64_t delta = info[1].As<Napi::Number>().Int64Value();
    auto out = std::make_shared<int64_t>(0);
    return PromiseWorker::Run(
        info.Env(), [c, key, delta, out] { *out = c->add(key, delta); },
        [out](Napi::Env env) { return Napi::Number::New(env, static_cast<double>(*out)); });
  }

  Napi::Value Wait(const Napi::CallbackInfo& info) {
    auto c = live(info.Env());
    if (!info[0].IsArray()) throw makeError(info.Env(), nodeccl::ErrorCode::kInvalidArgument,
                                            "store.wait: keys must be an array of strings");
    Napi::Array arr = info[0].As<Napi::Array>();
    std::vector<std::string> keys;
    for (uint32_t i = 0; i < arr.Length(); ++i) keys.push_back(bytesArg(arr.Get(i), "key"));
    Millis timeout(millisArg(info[1], "timeoutMs"));
    return PromiseWorker::Run(info.Env(), [c, keys, timeout] { c->wait(keys, timeout); },
                              nullptr);
  }

  Napi::Value CompareSet(const Napi::CallbackInfo& info) {
    auto c = live(info.Env());
    std::string key = bytesArg(info[0], "key");
    bool expectAbsent = info[1].IsNull() || info[1].IsUndefined();
    std::string expected = expectAbsent ? std::string() : bytesArg(info[1], "expected");
    std::string desired = bytesArg(info[2], "desired");
    auto out = std::make_shared<std::string>();
    return PromiseWorker::Run(
        info.Env(),
        [c, key, expected, expectAbsent, desired, out] {
          *out = c->compareSet(key, expected, expectAbsent, desired);
        },
        [out](Napi::Env env) { return bytesValue(env, *out); });
  }

  Napi::Value Delete(const Napi::CallbackInfo& info) {
    auto c = live(info.Env());
    std::string key = bytesArg(info[0], "key");
    auto out = std::make_shared<bool>(false);
    return PromiseWorker::Run(
        info.Env(), [c, key, out] { *out = c->del(key); },
        [out](Napi::Env env) { return Napi::Boolean::New(env, *out); });
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (client) client->close();
    client.reset();
    return info.Env().Undefined();
  }
};

// connectStore(host, port, timeoutMs) -> Promise<StoreClient>; retries until the server is up.
Napi::Value ConnectStore(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw makeError(env, nodeccl::ErrorCode::kInvalidArgument,
                                           "connectStore: host must be a string");
  if (!info[1].IsNumber()) throw makeError(env, nodeccl::ErrorCode::kInvalidArgument,
                                           "connectStore: port must be a number");
  std::string host = info[0].As<Napi::String>().Utf8Value();
  int port = info[1].As<Napi::Number>().Int32Value();
  Millis timeout(millisArg(info[2], "timeoutMs"));
  auto holder = std::make_shared<std::shared_ptr<nodeccl::TcpStoreClient>>();
  return PromiseWorker::Run(
      env,
      [host, port, timeout, holder] {
        *holder = std::make_shared<nodeccl::TcpStoreClient>(host, port, timeout);
      },
      [holder](Napi::Env env) -> Napi::Value {
        Napi::Object obj = addonData(env)->storeClientCtor.New({});
        StoreClientWrap::Unwrap(obj)->client = *holder;
        return obj;
      });
}

}  // namespace

void InitStore(Napi::Env env, Napi::Object exports) {
  exports.Set("StoreServer", StoreServerWrap::Define(env));
  Napi::Function client = StoreClientWrap::Define(env);
  addonData(env)->storeClientCtor = Napi::Persistent(client);
  exports.Set("StoreClient", client);
  exports.Set("connectStore", Napi::Function::New(env, ConnectStore, "connectStore"));
}

}  // namespace nodeccl_binding
