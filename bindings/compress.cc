// SPDX-License-Identifier: Apache-2.0
// Binding of the compression kernels (cpp/compress): synchronous functions over typed arrays,
// zero copy. Each call is local arithmetic of microseconds to tens of milliseconds for the
// tensors of a model layer, cheaper than a thread hop, so nothing here is asynchronous.
//
// Exports (typed in lib/compress/native.ts, NativeCompress):
//   compressMagnitudeMask(tensors, sparsity, masks) -> pruned count
//   compressApplyMask(tensors, masks)
//   compressCountNonzero(x), compressSparseEncode(x, bitmap, values) -> nnz,
//   compressSparseDecode(bitmap, values, out)
//   compressPackBits(codes, bits, packed), compressUnpackBits(packed, bits, codes)
//   compressKMeans(x, k, seed, maxIterations, centroids, codes) -> { iterations, inertia }
//   compressQuantize(x, rows, cols, bits, axis, blockSize, scales, q)
//   compressDequantize(q, scales, rows, cols, bits, axis, blockSize, out)
//   compressDistillLoss(student, teacher, labels, classes, temperature, alpha, grad | null)
//     -> { loss, soft, hard }
// Wrong types throw TypeError, wrong sizes or values RangeError, both with code
// ERR_NODECCL_INVALID_ARGUMENT, before anything is written.
#include <cstdint>
#include <string>
#include <vector>

#include "common/error.h"
#include "compress/compress.h"
#include "modules.h"
#include "util.h"

namespace nodeccl_binding {

namespace {

using nodeccl::ErrorCode;
using nodeccl::strcat;
namespace cz = nodeccl::compress;

[[noreturn]] void throwType(Napi::Env env, const std::string& msg) {
  throw makeError(env, ErrorCode::kInvalidArgument, msg);
}

// Core errors become JS errors with their code; a bad value becomes a RangeError.
template <typename Fn>
auto callCore(Napi::Env env, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const nodeccl::Error& e) {
    if (e.code() == ErrorCode::kInvalidArgument) throw makeRangeError(env, e.what());
    throw makeError(env, e);
  }
}

// ---- reading arguments ----------------------------------------------------------------------

const char* typeName(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array: return "Int8Array";
    case napi_uint8_array: return "Uint8Array";
    case napi_int32_array: return "Int32Array";
    case napi_float32_array: return "Float32Array";
    case napi_float64_array: return "Float64Array";
    default: return "another TypedArray";
  }
}

// A typed array of type `want` (or `alt`, when given) named `what`.
ByteView typed(const Napi::Value& v, const std::string& what, napi_typedarray_type want,
               napi_typedarray_type alt = napi_typedarray_type(-1)) {
  ByteView b = typedArrayView(v, what.c_str());
  if (b.type != want && b.type != alt) {
    throwType(v.Env(), strcat(what, " must be a ", typeName(want),
                              alt != napi_typedarray_type(-1) ? std::string(" or ") +
                                  typeName(alt) : std::string(), ", got ", typeName(b.type)));
  }
  return b;
}

void requireLength(Napi::Env env, const std::string& what, size_t got, size_t want,
                   const std::string& why) {
  if (got != want) {
    throw makeRangeError(env, strcat(what, " has ", got, " elements, expected ", want, " (",
                                     why, ")"));
  }
}

double number(const Napi::Value& v, const std::string& what) {
  if (!v.IsNumber()) throwType(v.Env(), strcat(what, " must be a number"));
  return v.As<Napi::Number>().DoubleValue();
}

// A non-negative whole number that fits a size_t, named `what`.
size_t count(const Napi::Value& v, const std::string& what) {
  double d = number(v, what);
  if (!(d >= 0) || d != static_cast<double>(static_cast<uint64_t>(d)) || d > 9007199254740991.0) {
    throw makeRangeError(v.Env(), strcat(what, " must be a whole number >= 0, got ", d));
  }
  return static_cast<size_t>(d);
}

// A JS array of typed arrays of one type, matched by position with `sizes` when given.
struct List {
  std::vector<void*> data;
  std::vector<size_t> sizes;
};

List list(const Napi::Value& v, const char* what, napi_typedarray_type type,
          const std::vector<size_t>* sizes) {
  if (!v.IsArray()) throwType(v.Env(), strcat(what, " must be an array of ", typeName(type)));
  Napi::Array arr = v.As<Napi::Array>();
  List l;
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    ByteView b = typed(arr.Get(i), strcat(what, "[", i, "]"), type);
    l.data.push_back(b.data);
    l.sizes.push_back(b.length);
  }
  if (sizes && sizes->size() != l.sizes.size()) {
    throw makeRangeError(v.Env(), strcat(what, " has ", l.sizes.size(), " entries but tensors "
                                         "has ", sizes->size(), "; pass one per tensor"));
  }
  for (size_t i = 0; sizes && i < sizes->size(); ++i) {
    requireLength(v.Env(), strcat(what, "[", i, "]"), l.sizes[i], (*sizes)[i],
                  strcat("tensors[", i, "] has that many"));
  }
  return l;
}

// ---- pruning and sparse storage ---------------------------------------------------------------

Napi::Value MagnitudeMask(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  List t = list(info[0], "compressMagnitudeMask: tensors", napi_float32_array, nullptr);
  double sparsity = number(info[1], "compressMagnitudeMask: sparsity");
  List m = list(info[2], "compressMagnitudeMask: masks", napi_uint8_array, &t.sizes);
  std::vector<const float*> tp;
  for (void* p : t.data) tp.push_back(static_cast<const float*>(p));
  std::vector<uint8_t*> mp;
  for (void* p : m.data) mp.push_back(static_cast<uint8_t*>(p));
  size_t n = callCore(env, [&] {
    return cz::magnitudeMask(tp.data(), t.sizes.data(), tp.size(), sparsity, mp.data());
  });
  return Napi::Number::New(env, static_cast<double>(n));
}

Napi::Value ApplyMask(const Napi::CallbackInfo& info) {
  List t = list(info[0], "compressApplyMask: tensors", napi_float32_array, nullptr);
  List m = list(info[1], "compressApplyMask: masks", napi_uint8_array, &t.sizes);
  std::vector<float*> tp;
  for (void* p : t.data) tp.push_back(static_cast<float*>(p));
  std::vector<const uint8_t*> mp;
  for (void* p : m.data) mp.push_back(static_cast<const uint8_t*>(p));
  cz::applyMask(tp.data(), mp.data(), t.sizes.data(), tp.size());
  return info.Env().Undefined();
}

Napi::Value CountNonzero(const Napi::CallbackInfo& info) {
  ByteView x = typed(info[0], "compressCountNonzero: x", napi_float32_array);
  size_t n = cz::countNonzero(static_cast<const float*>(x.data), x.length);
  return Napi::Number::New(info.Env(), static_cast<double>(n));
}

Napi::Value SparseEncode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ByteView x = typed(info[0], "compressSparseEncode: x", napi_float32_array);
  ByteView bitmap = typed(info[1], "compressSparseEncode: bitmap", napi_uint8_array);
  ByteView values = typed(info[2], "compressSparseEncode: values", napi_float32_array);
  requireLength(env, "compressSparseEncode: bitmap", bitmap.length, (x.length + 7) / 8,
                "one bit per element of x");
  size_t n = callCore(env, [&] {
    return cz::sparseEncode(static_cast<const float*>(x.data), x.length,
                            static_cast<uint8_t*>(bitmap.data), static_cast<float*>(values.data),
                            values.length);
  });
  return Napi::Number::New(env, static_cast<double>(n));
}

Napi::Value SparseDecode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ByteView bitmap = typed(info[0], "compressSparseDecode: bitmap", napi_uint8_array);
  ByteView values = typed(info[1], "compressSparseDecode: values", napi_float32_array);
  ByteView out = typed(info[2], "compressSparseDecode: out", napi_float32_array);
  requireLength(env, "compressSparseDecode: bitmap", bitmap.length, (out.length + 7) / 8,
                "one bit per element of out");
  callCore(env, [&] {
    cz::sparseDecode(static_cast<const uint8_t*>(bitmap.data),
                     static_cast<const float*>(values.data), values.length, out.length,
                     static_cast<float*>(out.data));
  });
  return env.Undefined();
}

// ---- bit packing and k-means -------------------------------------------------------------------

int bitsArg(const Napi::Value& v, const char* who, int lo, int hi) {
  double b = number(v, strcat(who, ": bits"));
  if (!(b >= lo && b <= hi) || b != static_cast<int>(b)) {
    throw makeRangeError(v.Env(), strcat(who, ": bits must be a whole number in ", lo, "..", hi,
                                         ", got ", b));
  }
  return static_cast<int>(b);
}

Napi::Value PackBits(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ByteView codes = typed(info[0], "compressPackBits: codes", napi_uint8_array);
  int bits = bitsArg(info[1], "compressPackBits", 1, 8);
  ByteView out = typed(info[2], "compressPackBits: packed", napi_uint8_array);
  requireLength(env, "compressPackBits: packed", out.length, cz::packedBytes(codes.length, bits),
                "ceil(codes * bits / 8) bytes");
  callCore(env, [&] {
    cz::packBits(static_cast<const uint8_t*>(codes.data), codes.length, bits,
                 static_cast<uint8_t*>(out.data));
  });
  return env.Undefined();
}

Napi::Value UnpackBits(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ByteView packed = typed(info[0], "compressUnpackBits: packed", napi_uint8_array);
  int bits = bitsArg(info[1], "compressUnpackBits", 1, 8);
  ByteView codes = typed(info[2], "compressUnpackBits: codes", napi_uint8_array);
  requireLength(env, "compressUnpackBits: packed", packed.length,
                cz::packedBytes(codes.length, bits), "ceil(codes * bits / 8) bytes");
  cz::unpackBits(static_cast<const uint8_t*>(packed.data), codes.length, bits,
                 static_cast<uint8_t*>(codes.data));
  return env.Undefined();
}

Napi::Value KMeans(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ByteView x = typed(info[0], "compressKMeans: x", napi_float32_array);
  cz::KMeansOptions o;
  o.k = static_cast<int>(count(info[1], "compressKMeans: k"));
  o.seed = static_cast<uint64_t>(count(info[2], "compressKMeans: seed"));
  o.maxIterations = static_cast<int>(count(info[3], "compressKMeans: maxIterations"));
  ByteView c = typed(info[4], "compressKMeans: centroids", napi_float32_array);
  ByteView codes = typed(info[5], "compressKMeans: codes", napi_uint8_array);
  requireLength(env, "compressKMeans: centroids", c.length, static_cast<size_t>(o.k), "k");
  requireLength(env, "compressKMeans: codes", codes.length, x.length, "one per element of x");
  cz::KMeansResult r = callCore(env, [&] {
    return cz::kmeans1d(static_cast<const float*>(x.data), x.length, o,
                        static_cast<float*>(c.data), static_cast<uint8_t*>(codes.data));
  });
  Napi::Object out = Napi::Object::New(env);
  out.Set("iterations", Napi::Number::New(env, r.iterations));
  out.Set("inertia", Napi::Number::New(env, r.inertia));
  return out;
}

// ---- quantization and distillation -----------------------------------------------------------

// rows, cols, bits, axis, blockSize starting at info[first].
struct QuantArgs {
  cz::QuantLayout layout;
  int bits = 8;
};

QuantArgs quantArgs(const Napi::CallbackInfo& info, size_t first, const char* who) {
  QuantArgs a;
  a.layout.rows = count(info[first], strcat(who, ": rows"));
  a.layout.cols = count(info[first + 1], strcat(who, ": cols"));
  a.bits = bitsArg(info[first + 2], who, 4, 8);
  a.layout.axis = static_cast<int>(count(info[first + 3], strcat(who, ": axis")));
  a.layout.blockSize = count(info[first + 4], strcat(who, ": blockSize"));
  if (a.bits != 4 && a.bits != 8) {
    throw makeRangeError(info.Env(), strcat(who, ": bits must be 8 or 4, got ", a.bits));
  }
  return a;
}

Napi::Value Quantize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ByteView x = typed(info[0], "compressQuantize: x", napi_float32_array);
  QuantArgs a = quantArgs(info, 1, "compressQuantize");
  ByteView scales = typed(info[6], "compressQuantize: scales", napi_float32_array);
  ByteView q = typed(info[7], "compressQuantize: q", napi_uint8_array, napi_int8_array);
  requireLength(env, "compressQuantize: x", x.length, a.layout.rows * a.layout.cols,
                "rows * cols");
  requireLength(env, "compressQuantize: scales", scales.length, cz::quantGroups(a.layout),
                "one per channel or block");
  requireLength(env, "compressQuantize: q", q.length, cz::quantBytes(x.length, a.bits),
                "one byte per element for 8 bits, one per two for 4");
  callCore(env, [&] {
    cz::quantize(static_cast<const float*>(x.data), a.layout, a.bits,
                 static_cast<float*>(scales.data), static_cast<uint8_t*>(q.data));
  });
  return env.Undefined();
}

Napi::Value Dequantize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ByteView q = typed(info[0], "compressDequantize: q", napi_uint8_array, napi_int8_array);
  ByteView scales = typed(info[1], "compressDequantize: scales", napi_float32_array);
  QuantArgs a = quantArgs(info, 2, "compressDequantize");
  ByteView out = typed(info[7], "compressDequantize: out", napi_float32_array);
  requireLength(env, "compressDequantize: out", out.length, a.layout.rows * a.layout.cols,
                "rows * cols");
  requireLength(env, "compressDequantize: scales", scales.length, cz::quantGroups(a.layout),
                "one per channel or block");
  requireLength(env, "compressDequantize: q", q.length, cz::quantBytes(out.length, a.bits),
                "one byte per element for 8 bits, one per two for 4");
  callCore(env, [&] {
    cz::dequantize(static_cast<const uint8_t*>(q.data), static_cast<const float*>(scales.data),
                   a.layout, a.bits, static_cast<float*>(out.data));
  });
  return env.Undefined();
}

Napi::Value DistillLoss(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* who = "compressDistillLoss";
  ByteView s = typed(info[0], strcat(who, ": student"), napi_float32_array);
  ByteView t = typed(info[1], strcat(who, ": teacher"), napi_float32_array);
  ByteView y = typed(info[2], strcat(who, ": labels"), napi_int32_array);
  size_t classes = count(info[3], strcat(who, ": classes"));
  cz::DistillOptions o;
  o.temperature = number(info[4], strcat(who, ": temperature"));
  o.alpha = number(info[5], strcat(who, ": alpha"));
  float* grad = nullptr;
  if (!info[6].IsNull() && !info[6].IsUndefined()) {
    ByteView g = typed(info[6], strcat(who, ": grad"), napi_float32_array);
    requireLength(env, strcat(who, ": grad"), g.length, s.length, "one per student logit");
    grad = static_cast<float*>(g.data);
  }
  requireLength(env, strcat(who, ": student"), s.length, y.length * classes, "rows * classes");
  requireLength(env, strcat(who, ": teacher"), t.length, s.length, "the student's shape");
  cz::DistillResult r = callCore(env, [&] {
    return cz::distillLoss(static_cast<const float*>(s.data), static_cast<const float*>(t.data),
                           static_cast<const int32_t*>(y.data), y.length, classes, o, grad);
  });
  Napi::Object out = Napi::Object::New(env);
  out.Set("loss", Napi::Number::New(env, r.loss));
  out.Set("soft", Napi::Number::New(env, r.soft));
  out.Set("hard", Napi::Number::New(env, r.hard));
  return out;
}

}  // namespace

void InitCompress(Napi::Env env, Napi::Object exports) {
  auto def = [&](const char* name, Napi::Value (*fn)(const Napi::CallbackInfo&)) {
    exports.Set(name, Napi::Function::New(env, fn, name));
  };
  def("compressMagnitudeMask", MagnitudeMask);
  def("compressApplyMask", ApplyMask);
  def("compressCountNonzero", CountNonzero);
  def("compressSparseEncode", SparseEncode);
  def("compressSparseDecode", SparseDecode);
  def("compressPackBits", PackBits);
  def("compressUnpackBits", UnpackBits);
  def("compressKMeans", KMeans);
  def("compressQuantize", Quantize);
  def("compressDequantize", Dequantize);
  def("compressDistillLoss", DistillLoss);
}

}  // namespace nodeccl_binding
