# SPDX-License-Identifier: Apache-2.0
# torch.optim.Adam(fused=True) on the same layouts as adam_bench.cu (one 64M-parameter tensor;
# 100 tensors of 640k), printed as rows of the same table: time per step, effective bandwidth
# at 28 bytes per parameter, and its fraction of the copy bandwidth given on the command line.
# Usage: python3 torch_adam.py <copy GB/s> [total parameters]
import sys
import torch

def time_ms(fn, warmup=3, iters=20):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iters

def bench(name, tensors, each, copy_gbs):
    params = [torch.zeros(each, device='cuda', requires_grad=True) for _ in range(tensors)]
    for p in params:
        p.grad = torch.randn_like(p) * 0.01
    opt = torch.optim.Adam(params, lr=1e-3, fused=True)
    ms = time_ms(opt.step)
    total = tensors * each
    gbs = 28.0 * total / (ms * 1e-3) / 1e9
    print(f"| torch Adam(fused=True) | {name:<22} | {total:11d} | {ms:8.3f} | {gbs:8.1f} | "
          f"{100.0 * gbs / copy_gbs:5.1f}% |")
    del opt, params
    torch.cuda.empty_cache()

def main():
    copy_gbs = float(sys.argv[1])
    total = int(sys.argv[2]) if len(sys.argv) > 2 else 1 << 26
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}")
    bench("1 x 64M tensor", 1, total, copy_gbs)
    bench("100 x 640k tensors", 100, total // 100, copy_gbs)

if __name__ == '__main__':
    main()
