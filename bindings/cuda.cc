// SPDX-License-Identifier: Apache-2.0
// The JS side of the CUDA plugin: finds nodeccl_cuda.so next to this addon and loads it with
// dlopen on first use (so the addon never needs CUDA), says why CUDA is unavailable, and exports
// CudaBuffer (device memory freed by dispose() or by the garbage collector), the fused GPU
// optimizers, and NcclComm (NCCL collectives run in call order on one worker thread each).
#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "../cuda/api.h"
#include "async.h"
#include "comm/executor.h"
#include "modules.h"

namespace nodeccl_binding {
namespace {

using nodeccl::ErrorCode;
namespace cu = nodeccl::cuda;

// ---- the plugin -----------------------------------------------------------------------------

struct Plugin {
  const cu::Api* api = nullptr;  // null: not loaded, see `why`
  std::string why;
  std::string path;
};

// Beside this addon: dladdr names the file this function was loaded from.
std::string pluginPath() {
  if (const char* env = std::getenv("NODECCL_CUDA_PLUGIN")) return env;
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&pluginPath), &info) == 0 || info.dli_fname == nullptr) {
    return "nodeccl_cuda.so";
  }
  std::string self = info.dli_fname;
  size_t slash = self.rfind('/');
  return (slash == std::string::npos ? std::string() : self.substr(0, slash + 1)) +
         "nodeccl_cuda.so";
}

// Loads the plugin once per process; every environment (worker thread) shares it.
const Plugin& plugin() {
  static std::once_flag once;
  static Plugin p;
  std::call_once(once, [] {
    p.path = pluginPath();
    void* lib = dlopen(p.path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
      const char* err = dlerror();
      p.why = "the CUDA plugin could not be loaded from " + p.path + " (" +
              (err ? err : "unknown error") + "); it is built only where nvcc is found "
              "(NODECCL_CUDA=ON, the default): rebuild on a machine with the CUDA toolkit";
      return;
    }
    using Entry = const cu::Api* (*)(int);
    auto entry = reinterpret_cast<Entry>(dlsym(lib, cu::kEntryPoint));
    const cu::Api* api = entry ? entry(cu::kApiVersion) : nullptr;
    if (api == nullptr || api->size != sizeof(cu::Api)) {
      p.why = "the CUDA plugin at " + p.path + " was built from another nodeccl version; " +
              "rebuild the addon and the plugin together";
      return;
    }
    p.api = api;
  });
  return p;
}

// The reason CUDA cannot be used, or "" when a device is usable.
std::string unavailableReason() {
  const Plugin& p = plugin();
  if (p.api == nullptr) return p.why;
  int count = 0;
  cu::CudaStatus st;
  if (!p.api->deviceCount(&count, &st)) {
    std::string msg = st.message;
    bool noDriver = msg.find("cudaErrorInsufficientDriver") != std::string::npos ||
                    msg.find("cudaErrorNoDevice") != std::string::npos;
    return std::string(noDriver ? "no CUDA driver or device (" : "CUDA failed (") + msg + ")";
  }
  if (count == 0) {
    const char* vis = std::getenv("CUDA_VISIBLE_DEVICES");
    return std::string("no CUDA device is visible") +
           (vis ? std::string(" (CUDA_VISIBLE_DEVICES=") + vis + ")" : std::string());
  }
  return "";
}

// The plugin's table when a device is usable; else throws ERR_NODECCL_LOAD saying why.
const cu::Api& requireCuda(Napi::Env env, const char* who) {
  std::string why = unavailableReason();
  if (!why.empty()) {
    Napi::Error e = Napi::Error::New(env, std::string(who) + ": CUDA is not available: " + why);
    e.Value().Set("code", Napi::String::New(env, "ERR_NODECCL_LOAD"));
    throw e;
  }
  return *plugin().api;
}

Napi::Error statusError(Napi::Env env, const cu::CudaStatus& st) {
  return makeError(env, static_cast<ErrorCode>(st.code), st.message);
}

// ---- CudaBuffer -------------------------------------------------------------------------------

class CudaBuffer : public Napi::ObjectWrap<CudaBuffer> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "CudaBuffer",
                       {InstanceMethod("dispose", &CudaBuffer::Dispose),
                        InstanceMethod("isDisposed", &CudaBuffer::IsDisposed),
                        InstanceMethod("device", &CudaBuffer::Device),
                        InstanceMethod("byteLength", &CudaBuffer::ByteLength),
                        InstanceMethod("copyFromHost", &CudaBuffer::CopyFromHost),
                        InstanceMethod("copyToHost", &CudaBuffer::CopyToHost)});
  }

  // new CudaBuffer(device, bytes): zero-filled device memory.
  explicit CudaBuffer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CudaBuffer>(info) {
    Napi::Env env = info.Env();
    const cu::Api& api = requireCuda(env, "CudaBuffer");
    if (!info[0].IsNumber() || !info[1].IsNumber()) {
      throw makeError(env, ErrorCode::kInvalidArgument, "CudaBuffer(device, bytes): numbers");
    }
    device_ = info[0].As<Napi::Number>().Int32Value();
    double bytes = info[1].As<Napi::Number>().DoubleValue();
    if (!(bytes >= 0) || bytes > 9007199254740991.0) {
      throw makeRangeError(env, "CudaBuffer: bytes must be a whole number >= 0");
    }
    bytes_ = static_cast<size_t>(bytes);
    cu::CudaStatus st;
    if (!api.alloc(device_, bytes_, &ptr_, &st) || !api.zero(device_, ptr_, bytes_, &st)) {
      throw statusError(env, st);
    }
  }

  ~CudaBuffer() override { free(); }  // the garbage collector's finalizer

  // The device pointer, or a thrown TypeError when `v` is not a live CudaBuffer of `device`.
  static void* pointerOf(Napi::Env env, Napi::Value v, int device, const std::string& what,
                         size_t* bytes = nullptr) {
    AddonData* data = addonData(env);
    if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(data->cudaBufferCtor.Value())) {
      throw makeError(env, ErrorCode::kInvalidArgument, what + " must be a CUDA tensor");
    }
    CudaBuffer* b = Unwrap(v.As<Napi::Object>());
    if (b->ptr_ == nullptr) {
      throw makeError(env, ErrorCode::kDestroyed, what + " was disposed; it can no longer be used");
    }
    if (device >= 0 && b->device_ != device) {
      throw makeError(env, ErrorCode::kInvalidArgument,
                      what + " is on device " + std::to_string(b->device_) + ", not " +
                          std::to_string(device) + "; copy it to one device first");
    }
    if (bytes) *bytes = b->bytes_;
    return b->ptr_;
  }

 private:
  void free() {
    if (ptr_ == nullptr) return;
    cu::CudaStatus st;
    plugin().api->free(device_, ptr_, &st);  // a failure here leaves nothing to undo
    ptr_ = nullptr;
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    free();
    return info.Env().Undefined();
  }
  Napi::Value IsDisposed(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), ptr_ == nullptr);
  }
  Napi::Value Device(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), device_);
  }
  Napi::Value ByteLength(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(bytes_));
  }

  // copyFromHost(typedArray) / copyToHost(typedArray): whole-buffer copies, lengths equal.
  Napi::Value copy(const Napi::CallbackInfo& info, bool toDevice) {
    Napi::Env env = info.Env();
    ByteView v = typedArrayView(info[0], toDevice ? "copyFromHost: source" : "copyToHost: dest");
    if (ptr_ == nullptr) {
      throw makeError(env, ErrorCode::kDestroyed, "the CUDA tensor was disposed");
    }
    if (v.bytes != bytes_) {
      throw makeRangeError(env, "CUDA copy: the host array has " + std::to_string(v.bytes) +
                                    " bytes but the device buffer " + std::to_string(bytes_));
    }
    cu::CudaStatus st;
    const cu::Api& api = *plugin().api;
    bool ok = toDevice ? api.toDevice(device_, ptr_, v.data, bytes_, &st)
                       : api.toHost(device_, v.data, ptr_, bytes_, &st);
    if (!ok) throw statusError(env, st);
    return env.Undefined();
  }
  Napi::Value CopyFromHost(const Napi::CallbackInfo& info) { return copy(info, true); }
  Napi::Value CopyToHost(const Napi::CallbackInfo& info) { return copy(info, false); }

  int device_ = 0;
  size_t bytes_ = 0;
  void* ptr_ = nullptr;
};

// ---- fused optimizers ---------------------------------------------------------------------------

double num(Napi::Object o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) {
    throw makeError(o.Env(), ErrorCode::kInvalidArgument, std::string(key) + " must be a number");
  }
  return v.As<Napi::Number>().DoubleValue();
}
bool flag(Napi::Object o, const char* key) { return o.Get(key).ToBoolean().Value(); }

// Device pointers of a list argument (null or undefined: `optional` lists only).
std::vector<float*> pointerList(Napi::Env env, Napi::Value v, int device, const char* what,
                                size_t count, std::vector<size_t>* sizes = nullptr) {
  std::vector<float*> out;
  if (v.IsNull() || v.IsUndefined()) return out;
  if (!v.IsArray() || v.As<Napi::Array>().Length() != count) {
    throw makeError(env, ErrorCode::kInvalidArgument,
                    std::string(what) + " must be an array of " + std::to_string(count) +
                        " CUDA tensors");
  }
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < count; ++i) {
    size_t bytes = 0;
    std::string name = std::string(what) + "[" + std::to_string(i) + "]";
    out.push_back(static_cast<float*>(CudaBuffer::pointerOf(env, a.Get(i), device, name, &bytes)));
    if (sizes) sizes->push_back(bytes / sizeof(float));
  }
  return out;
}

// cudaOptimStep(kind, device, options, params, grads, s0, s1, s2, steps): kind 0 SGD,
// 1 RMSprop, 2 Adam/AdamW; states: SGD (momentum), RMSprop (square, momentum, gradAvg),
// Adam (expAvg, expAvgSq, maxExpAvgSq). Synchronous; sizes come from the params' byte lengths.
Napi::Value OptimStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const cu::Api& api = requireCuda(env, "CUDA optimizer step");
  int kind = info[0].As<Napi::Number>().Int32Value();
  int device = info[1].As<Napi::Number>().Int32Value();
  Napi::Object o = info[2].As<Napi::Object>();
  uint32_t n = info[3].IsArray() ? info[3].As<Napi::Array>().Length() : 0;
  std::vector<size_t> sizes;
  std::vector<float*> p = pointerList(env, info[3], device, "params", n, &sizes);
  std::vector<float*> g = pointerList(env, info[4], device, "grads", n);
  std::vector<float*> s0 = pointerList(env, info[5], device, "state", n);
  std::vector<float*> s1 = pointerList(env, info[6], device, "state", n);
  std::vector<float*> s2 = pointerList(env, info[7], device, "state", n);
  ByteView steps = typedArrayView(info[8], "steps");
  if (steps.type != napi_float64_array || steps.length != n) {
    throw makeError(env, ErrorCode::kInvalidArgument, "steps must be a Float64Array of length n");
  }
  nodeccl::optim::ParamList list{n, p.data(), const_cast<const float* const*>(
                                     reinterpret_cast<float* const*>(g.data())),
                                 sizes.data(), static_cast<double*>(steps.data)};
  auto ptrs = [](std::vector<float*>& v) { return v.empty() ? nullptr : v.data(); };
  cu::CudaStatus st;
  bool ok;
  if (kind == 0) {
    nodeccl::optim::SgdOptions s;
    s.lr = num(o, "lr");
    s.momentum = num(o, "momentum");
    s.dampening = num(o, "dampening");
    s.weightDecay = num(o, "weightDecay");
    s.nesterov = flag(o, "nesterov");
    ok = api.sgdStep(device, &s, &list, ptrs(s0), &st);
  } else if (kind == 1) {
    nodeccl::optim::RmspropOptions s;
    s.lr = num(o, "lr");
    s.alpha = num(o, "alpha");
    s.eps = num(o, "eps");
    s.weightDecay = num(o, "weightDecay");
    s.momentum = num(o, "momentum");
    s.centered = flag(o, "centered");
    ok = api.rmspropStep(device, &s, &list, ptrs(s0), ptrs(s1), ptrs(s2), &st);
  } else {
    nodeccl::optim::AdamOptions s;
    s.lr = num(o, "lr");
    s.beta1 = num(o, "beta1");
    s.beta2 = num(o, "beta2");
    s.eps = num(o, "eps");
    s.weightDecay = num(o, "weightDecay");
    s.amsgrad = flag(o, "amsgrad");
    s.decoupled = flag(o, "decoupled");
    s.biasCorrection = flag(o, "biasCorrection");
    ok = api.adamStep(device, &s, &list, ptrs(s0), ptrs(s1), ptrs(s2), &st);
  }
  if (!ok) throw statusError(env, st);
  return env.Undefined();
}

// ---- NCCL ---------------------------------------------------------------------------------------

struct NcclDone {
  Napi::Promise::Deferred deferred;
  std::vector<Napi::Reference<Napi::Value>> refs;
  bool failed = false;
  cu::CudaStatus status;
};

class NcclComm;
void settleNccl(Napi::Env env, Napi::Function, NcclComm* self, NcclDone* d);
using NcclTsfn = Napi::TypedThreadSafeFunction<NcclComm, NcclDone, settleNccl>;

// One NCCL communicator; operations run in call order on its executor thread.
class NcclComm : public Napi::ObjectWrap<NcclComm> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NcclComm", {InstanceMethod("run", &NcclComm::Run),
                                         InstanceMethod("abort", &NcclComm::Abort),
                                         InstanceMethod("destroy", &NcclComm::Destroy)});
  }
  explicit NcclComm(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NcclComm>(info) {}
  ~NcclComm() override { close(); }

  // JS thread: settles one operation; the last one in flight lets the process exit again.
  void finish(Napi::Env env, NcclDone* d) {
    if (d->failed) d->deferred.Reject(statusError(env, d->status).Value());
    else d->deferred.Resolve(env.Undefined());
    if (--pending_ == 0 && comm_ != nullptr) tsfn_.Unref(env);
    delete d;  // releases the references that kept this object alive
  }

  void attach(Napi::Env env, void* comm, int device) {
    comm_ = comm;
    device_ = device;
    executor_ = std::make_unique<nodeccl::Executor>();
    tsfn_ = NcclTsfn::New(env, "nodeccl-nccl", 0, 1, this);
    tsfn_.Unref(env);
  }

 private:
  // run(op, send, recv, count, dtype, reduceOp, peer, timeoutMs) -> Promise<void>
  Napi::Value Run(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (comm_ == nullptr) {
      throw makeError(env, ErrorCode::kDestroyed, "the NCCL communicator was destroyed");
    }
    cu::NcclCall call;
    call.op = static_cast<cu::NcclOp>(info[0].As<Napi::Number>().Int32Value());
    if (!info[1].IsNull()) call.send = CudaBuffer::pointerOf(env, info[1], device_, "input");
    if (!info[2].IsNull()) call.recv = CudaBuffer::pointerOf(env, info[2], device_, "output");
    call.count = static_cast<size_t>(info[3].As<Napi::Number>().DoubleValue());
    call.dtype = info[4].As<Napi::Number>().Int32Value();
    call.reduceOp = info[5].As<Napi::Number>().Int32Value();
    call.peer = info[6].As<Napi::Number>().Int32Value();
    call.timeoutMs = info[7].As<Napi::Number>().DoubleValue();
    auto* done = new NcclDone{Napi::Promise::Deferred::New(env), {}, false, {}};
    done->refs.push_back(Napi::Persistent(info[1]));
    done->refs.push_back(Napi::Persistent(info[2]));
    done->refs.push_back(Napi::Persistent(static_cast<Napi::Value>(Value())));
    Napi::Promise promise = done->deferred.Promise();
    const cu::Api* api = plugin().api;
    void* comm = comm_;
    NcclTsfn tsfn = tsfn_;
    if (pending_++ == 0) tsfn_.Ref(env);
    executor_->submit([api, comm, call, done] { done->failed = !api->ncclRun(comm, &call,
                                                                            &done->status); },
                      [tsfn, done](std::exception_ptr) mutable { tsfn.BlockingCall(done); });
    return promise;
  }

  Napi::Value Abort(const Napi::CallbackInfo& info) {
    if (comm_ != nullptr) {
      cu::CudaStatus st;
      std::string why = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
      plugin().api->ncclAbort(comm_, why.c_str(), &st);
    }
    return info.Env().Undefined();
  }

  Napi::Value Destroy(const Napi::CallbackInfo& info) {
    close();
    return info.Env().Undefined();
  }

  // Finishes queued operations, then frees NCCL's communicator.
  void close() {
    if (comm_ == nullptr) return;
    executor_->shutdown();
    cu::CudaStatus st;
    plugin().api->ncclDestroy(comm_, &st);
    comm_ = nullptr;
    tsfn_.Release();
  }

  void* comm_ = nullptr;
  int device_ = 0;
  size_t pending_ = 0;
  std::unique_ptr<nodeccl::Executor> executor_;
  NcclTsfn tsfn_;
};

void settleNccl(Napi::Env env, Napi::Function, NcclComm* self, NcclDone* d) {
  if (env == nullptr) return;  // environment gone: its references cannot be freed here
  self->finish(env, d);
}

// ncclVersion() -> { version, path }; throws ERR_NODECCL_LOAD saying why NCCL is unusable.
// Needs the plugin only, not a GPU: NCCL loads without one.
Napi::Value NcclVersion(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Plugin& p = plugin();
  std::string why = p.api ? "" : p.why;
  int version = 0;
  char path[1024] = {0};
  cu::CudaStatus st;
  if (p.api && !p.api->ncclLoad(&version, path, sizeof(path), &st)) why = st.message;
  if (!why.empty()) {
    Napi::Error e = Napi::Error::New(env, "NCCL is not available: " + why);
    e.Value().Set("code", Napi::String::New(env, "ERR_NODECCL_LOAD"));
    throw e;
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("version", Napi::Number::New(env, version));
  out.Set("path", Napi::String::New(env, path));
  return out;
}

Napi::Value NcclUniqueId(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const cu::Api& api = requireCuda(env, "ncclUniqueId");
  Napi::Uint8Array out = Napi::Uint8Array::New(env, cu::kNcclIdBytes);
  cu::CudaStatus st;
  if (!api.ncclUniqueId(out.Data(), &st)) throw statusError(env, st);
  return out;
}

// createNccl(device, rank, size, id) -> Promise<NcclComm>; ncclCommInitRank blocks until every
// rank has joined, so it runs on its own thread.
Napi::Value CreateNccl(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const cu::Api* api = &requireCuda(env, "createNcclCommunicator");
  int device = info[0].As<Napi::Number>().Int32Value();
  int rank = info[1].As<Napi::Number>().Int32Value();
  int size = info[2].As<Napi::Number>().Int32Value();
  ByteView id = typedArrayView(info[3], "id");
  if (id.bytes != cu::kNcclIdBytes) {
    throw makeRangeError(env, "the NCCL unique id must be 128 bytes");
  }
  auto idCopy = std::make_shared<std::vector<uint8_t>>(static_cast<uint8_t*>(id.data),
                                                       static_cast<uint8_t*>(id.data) + id.bytes);
  auto comm = std::make_shared<void*>(nullptr);
  return runOnThread(
      env, "nodeccl-nccl-init",
      [=] {
        cu::CudaStatus st;
        if (!api->ncclInit(device, rank, size, idCopy->data(), comm.get(), &st)) {
          throw nodeccl::Error(static_cast<ErrorCode>(st.code), st.message);
        }
      },
      [=](Napi::Env e) -> Napi::Value {
        Napi::Object obj = addonData(e)->ncclCommCtor.New({});
        NcclComm::Unwrap(obj)->attach(e, *comm, device);
        return obj;
      },
      nullptr);
}

}  // namespace

void InitCuda(Napi::Env env, Napi::Object exports) {
  Napi::Object cuda = Napi::Object::New(env);
  cuda.Set("why", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
    std::string why = unavailableReason();
    return why.empty() ? info.Env().Null() : Napi::String::New(info.Env(), why);
  }));
  cuda.Set("deviceCount", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    const cu::Api& api = requireCuda(info.Env(), "deviceCount");
    int n = 0;
    cu::CudaStatus st;
    if (!api.deviceCount(&n, &st)) throw statusError(info.Env(), st);
    return Napi::Number::New(info.Env(), n);
  }));
  cuda.Set("describe", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    const cu::Api& api = requireCuda(info.Env(), "describe");
    char out[256];
    cu::CudaStatus st;
    if (!api.deviceDescribe(info[0].As<Napi::Number>().Int32Value(), out, sizeof(out), &st)) {
      throw statusError(info.Env(), st);
    }
    return Napi::String::New(info.Env(), out);
  }));
  Napi::Function buffer = CudaBuffer::Define(env);
  addonData(env)->cudaBufferCtor = Napi::Persistent(buffer);
  cuda.Set("CudaBuffer", buffer);
  addonData(env)->ncclCommCtor = Napi::Persistent(NcclComm::Define(env));
  cuda.Set("optimStep", Napi::Function::New(env, OptimStep));
  cuda.Set("ncclVersion", Napi::Function::New(env, NcclVersion));
  cuda.Set("ncclUniqueId", Napi::Function::New(env, NcclUniqueId));
  cuda.Set("createNccl", Napi::Function::New(env, CreateNccl));
  exports.Set("cuda", cuda);
}

}  // namespace nodeccl_binding
