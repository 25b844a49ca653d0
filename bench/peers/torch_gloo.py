# SPDX-License-Identifier: Apache-2.0
# One rank of the collectives bench on PyTorch's Gloo backend (torch.distributed, TCP between
# local processes), timed exactly as bench/peers/nodeccl_worker.js times nodeccl: same patterns,
# same check, warm-up, a barrier before each timed call, slowest rank's time, median.
# Started N times by bench/collectives.js with RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT set;
# rank 0 prints one "RESULT {json}" line per collective and size, or "UNSUPPORTED coll reason".
import json
import os
import sys
import time

import torch
import torch.distributed as dist


def parse_plan(argv):
    plan = {"colls": [], "sizes": [], "iters": 20, "warmup": 5, "max_iter_bytes": 2**31}
    for flag, value in zip(argv[0::2], argv[1::2]):
        if flag == "--colls":
            plan["colls"] = value.split(",")
        elif flag == "--sizes":
            plan["sizes"] = [int(v) for v in value.split(",")]
        elif flag == "--iters":
            plan["iters"] = int(value)
        elif flag == "--warmup":
            plan["warmup"] = int(value)
        elif flag == "--max-iter-bytes":
            plan["max_iter_bytes"] = int(value)
        else:
            raise SystemExit(f"torch_gloo.py: unknown flag {flag}")
    return plan


def pattern(count, start=0):
    """p(i) = i % 13 + 1 for i in [start, start + count), as float32."""
    return (torch.arange(start, start + count, dtype=torch.int64) % 13 + 1).to(torch.float32)


def block_count(coll, nbytes, n):
    total = nbytes // 4
    return total if coll in ("allreduce", "broadcast") else total // n


def make_op(coll, a, b, n, c):
    """The collective on preallocated tensors; all_gather writes into views of one tensor."""
    if coll == "allreduce":
        return lambda: dist.all_reduce(a, op=dist.ReduceOp.SUM)
    if coll == "broadcast":
        return lambda: dist.broadcast(a, src=0)
    if coll == "allgather":
        views = list(b[: n * c].view(n, c).unbind(0))
        return lambda: dist.all_gather(views, a)
    if coll == "reducescatter":
        blocks = list(a.view(n, c).unbind(0))
        return lambda: dist.reduce_scatter(b[:c], blocks, op=dist.ReduceOp.SUM)
    raise ValueError(coll)


def fill_and_expect(coll, a, b, r, n, c):
    """Fills the input; returns a function counting wrong elements after one call."""
    tri = n * (n + 1) // 2
    if coll == "broadcast":
        a.copy_(pattern(c) if r == 0 else torch.zeros(c))
        return lambda: int((a != pattern(c)).sum())
    a.copy_((r + 1) * pattern(a.numel()))
    if coll == "allreduce":
        return lambda: int((a != tri * pattern(c)).sum())
    if coll == "reducescatter":
        return lambda: int((b[:c] != tri * pattern(c, r * c)).sum())
    want = torch.cat([(k + 1) * pattern(c) for k in range(n)])
    return lambda: int((b[: n * c] != want).sum())


def measure(coll, nbytes, plan, store, r, n):
    c = block_count(coll, nbytes, n)
    if c == 0:
        return None
    a = store["a"][: c * n if coll == "reducescatter" else c]
    b = store["b"]
    op = make_op(coll, a, b, n, c)
    count_wrong = fill_and_expect(coll, a, b, r, n, c)
    op()
    wrong = torch.tensor([float(count_wrong())], dtype=torch.float64)
    if coll == "allreduce":
        a.zero_()  # in-place sums would grow until they overflow
    for _ in range(max(2, min(plan["warmup"], plan["max_iter_bytes"] // nbytes))):
        op()
    iters = max(3, min(plan["iters"], plan["max_iter_bytes"] // nbytes))
    times = torch.zeros(iters, dtype=torch.float64)
    for i in range(iters):
        dist.barrier()
        t0 = time.perf_counter_ns()
        op()
        times[i] = (time.perf_counter_ns() - t0) / 1e3
    dist.all_reduce(times, op=dist.ReduceOp.MAX)
    dist.all_reduce(wrong, op=dist.ReduceOp.SUM)
    size = c * n if coll in ("allgather", "reducescatter") else c
    return {"coll": coll, "bytes": size * 4, "count": size, "us": float(times.median()),
            "wrong": float(wrong[0]), "iters": iters}


def main():
    plan = parse_plan(sys.argv[1:])
    dist.init_process_group("gloo")
    r, n = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(1)  # one core per rank, like the other implementations
    max_count = max(plan["sizes"]) // 4
    store = {"a": torch.ones(max_count), "b": torch.ones(max_count)}
    for coll in plan["colls"]:
        for nbytes in plan["sizes"]:
            try:
                m = measure(coll, nbytes, plan, store, r, n)
            except RuntimeError as e:
                # torch 1.13's ProcessGroupGloo raises "does not support reduce_scatter" on
                # every rank alike, so all ranks move on to the next collective together.
                if "not support" not in str(e):
                    raise
                if r == 0:
                    print(f"UNSUPPORTED {coll} torch {torch.__version__}: {e}", flush=True)
                break
            if m is not None and r == 0:
                print("RESULT " + json.dumps(m), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
