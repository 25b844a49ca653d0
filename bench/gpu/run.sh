#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The GPU proof, in one script for a GPU machine (NVIDIA H200; PyTorch present; Node optional):
#   1. build the CUDA plugin, its C++ test binary and the Adam benchmark from this tree with
#      cmake (or, where nvcc/cmake are missing, use binaries carried in $NODECCL_CUDA_PREBUILT,
#      default build-cuda/Release, built on a CPU machine for sm_80 and sm_90);
#   2. run the kernel tests against the CPU reference and the NCCL collective test (one rank
#      per GPU: a world of one on a single GPU);
#   3. benchmark fused Adam against torch.optim.Adam(fused=True) on the same GPU.
# Writes everything to $OUT/gpu-run.log (or bench/results/gpu-run.log). Budget: ~8 minutes;
# each step has its own timeout so a hang cannot eat the rest. Exit status: non-zero when the
# tests fail or nothing could be built or found.
set -uo pipefail
cd "$(dirname "$0")/../.."
log="${OUT:-bench/results}/gpu-run.log"
mkdir -p "$(dirname "$log")"
exec > >(tee "$log") 2>&1
status=0
step() { echo; echo "== $* ($(date +%T))"; }

step "machine"
nvidia-smi -L || echo "nvidia-smi not found"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' ||
  echo "no torch in python3"

step "build (cmake, timeout 240 s; NODECCL_GPU_BUILD=0 skips it)"
bin=""
if [ "${NODECCL_GPU_BUILD:-1}" = "0" ]; then
  echo "NODECCL_GPU_BUILD=0: not building; using carried binaries"
elif command -v nvcc >/dev/null && command -v cmake >/dev/null; then
  if timeout 60 cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release \
       -DCMAKE_CUDA_ARCHITECTURES=90 >/dev/null &&
     timeout 180 cmake --build build-gpu -j"$(nproc)" \
       --target nodeccl_cuda nodeccl_cuda_tests nodeccl_cuda_bench; then
    bin=build-gpu/Release
  else
    echo "build from the tree failed; trying carried binaries"
  fi
else
  echo "nvcc or cmake missing here ($(command -v nvcc || echo no nvcc), \
$(command -v cmake || echo no cmake)); using carried binaries"
fi
if [ -z "$bin" ]; then
  bin="${NODECCL_CUDA_PREBUILT:-build-cuda/Release}"
  [ -x "$bin/nodeccl_cuda_tests" ] || { echo "no binaries in $bin"; exit 2; }
fi
echo "binaries: $bin"; ls -la "$bin"

step "NCCL"
if [ -z "${NODECCL_NCCL_LIB:-}" ]; then
  NODECCL_NCCL_LIB=$(python3 - <<'PY' 2>/dev/null
import glob, os
try:
    import nvidia.nccl as n
    roots = list(n.__path__)
except Exception:
    roots = []
try:
    import torch
    roots.append(os.path.join(os.path.dirname(torch.__file__), 'lib'))
except Exception:
    pass
for r in roots:
    for f in glob.glob(os.path.join(r, '**', 'libnccl.so*'), recursive=True):
        print(f)
        raise SystemExit
PY
  )
  [ -n "$NODECCL_NCCL_LIB" ] && export NODECCL_NCCL_LIB
fi
[ -n "${NODECCL_NCCL_LIB:-}" ] && export NODECCL_REQUIRE_NCCL=1
echo "NODECCL_NCCL_LIB=${NODECCL_NCCL_LIB:-<unset: the loader searches the usual places>}"

step "CUDA kernels vs CPU reference, and NCCL collectives (timeout 180 s)"
NODECCL_DEBUG=info timeout 180 "$bin/nodeccl_cuda_tests" || status=1

step "fused Adam: nodeccl vs torch (timeout 120 s each)"
bench_out=$(timeout 120 "$bin/nodeccl_cuda_bench") || status=1
echo "$bench_out"
copy=$(echo "$bench_out" | sed -n 's/^copy bandwidth.*: \([0-9.]*\) GB\/s$/\1/p')
if [ -n "$copy" ]; then
  timeout 120 python3 bench/gpu/torch_adam.py "$copy" || echo "torch benchmark failed"
fi

step "Node (optional): the CUDA API test file, when node and the addon are here"
if command -v node >/dev/null && [ -f build/Release/nodeccl.node ] && [ -d node_modules ]; then
  timeout 120 npx vitest run test/api/cuda.test.ts || status=1
else
  echo "skipped (node: $(command -v node || echo none); addon and node_modules needed)"
fi

step "done, status $status; log in $log"
exit $status
