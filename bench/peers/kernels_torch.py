# SPDX-License-Identifier: Apache-2.0
# Peer figures for bench/kernels.js: PyTorch's single-tensor optimizers and numpy/torch
# conversions on one thread, same sizes as nodeccl's run. Prints one JSON object.
# Run with Debian's /usr/bin/python3 (python3-torch, python3-numpy).
import json
import sys
import time

import numpy as np
import torch

torch.set_num_threads(1)


STAT = "median"  # or "best"; set from the bench's config in main()


def seconds(fn, reps):
    """Seconds per call of fn after a warm-up call: the median of `reps` runs, or the best when
    the bench runs with STAT=best (as nodeccl's figures in the same run)."""
    fn()  # warm-up (first touch, allocator)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[0] if STAT == "best" else times[len(times) // 2]


def optim_rates(shapes, reps):
    """Median seconds per step of torch.optim over `shapes` (single-tensor path, foreach off)."""
    out = {}
    params = [torch.zeros(n, dtype=torch.float32, requires_grad=True) for n in shapes]
    for p in params:
        p.grad = torch.randn(p.shape[0])
    makers = {
        "sgd": lambda: torch.optim.SGD(params, lr=1e-3, momentum=0.9, foreach=False),
        "rmsprop": lambda: torch.optim.RMSprop(params, lr=1e-3, foreach=False),
        "adam": lambda: torch.optim.Adam(params, lr=1e-3, foreach=False),
        "adamw": lambda: torch.optim.AdamW(params, lr=1e-3, foreach=False),
    }
    for name, make in makers.items():
        opt = make()
        out[name] = seconds(opt.step, reps)
    return out


def codec_rates(n, reps):
    x = np.random.randn(n).astype(np.float32)
    t = torch.from_numpy(x)
    h = x.astype(np.float16)
    q = torch.quantize_per_tensor(t, 0.01, 0, torch.qint8)
    b = t.to(torch.bfloat16)
    bits = np.packbits(x < 0)
    res = {
        "float16.encode numpy astype": seconds(lambda: x.astype(np.float16), reps),
        "float16.decode numpy astype": seconds(lambda: h.astype(np.float32), reps),
        "bfloat16.encode torch .to": seconds(lambda: t.to(torch.bfloat16), reps),
        "bfloat16.decode torch .to": seconds(lambda: b.to(torch.float32), reps),
        "int8.encode torch quantize_per_tensor":
            seconds(lambda: torch.quantize_per_tensor(t, float(t.abs().max()) / 127, 0,
                                                      torch.qint8), reps),
        "int8.decode torch dequantize": seconds(lambda: q.dequantize(), reps),
        "sign1.encode numpy packbits": seconds(lambda: np.packbits(x < 0), reps),
        "sign1.decode numpy unpackbits": seconds(lambda: np.unpackbits(bits), reps),
        "topk.encode torch.topk 1%": seconds(lambda: torch.topk(t.abs(), n // 100), reps),
    }
    return res


def stream_bandwidth(reps):
    """GB/s of two streaming loops numpy runs at memory speed: a += b (read 8, write 4 bytes per
    element, no read-for-ownership) and a copy (read 4, write 4)."""
    n = 64 << 20
    a = np.ones(n, dtype=np.float32)
    b = np.ones(n, dtype=np.float32)
    add = seconds(lambda: np.add(a, b, out=a), reps)
    copy = seconds(lambda: np.copyto(a, b), reps)
    return {"numpy a += b": 12 * n / add / 1e9, "numpy copyto": 8 * n / copy / 1e9}


def main():
    global STAT
    cfg = json.loads(sys.argv[1])
    STAT = cfg.get("stat", "median")
    result = {"torch": torch.__version__, "numpy": np.__version__, "optim": {}, "codec": {}}
    for label, shapes in cfg["optim"].items():
        result["optim"][label] = optim_rates(shapes, cfg["reps"])
    result["codec"] = codec_rates(cfg["codecN"], cfg["reps"])
    result["stream"] = stream_bandwidth(cfg["reps"])
    print(json.dumps(result))


if __name__ == "__main__":
    main()
