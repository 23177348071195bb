#!/usr/bin/env python3
"""anchor_torch_h100.py — the torch anchors of `postnas bench kernels`, measured on the device.

Times, with CUDA events (warm-up calls first, then the median of N timed calls, each between
its own pair of events, queued back to back and synchronised once):
  - torch SDPA, causal GQA attention at the kernels-benchmark target shape
    B8 T4096 Hq12 Hkv2 D128 bf16 (scale D^-1/2): the forward, and forward + backward of
    sum(o * dout) with q, k, v requiring grad. Tensors are allocated in our (B, T, H, D)
    layout and handed to SDPA as (B, H, T, D) views, as a model would; GQA goes through
    enable_gqa=True where torch has it, else K/V are repeat_interleave'd to Hq heads inside
    the timed call (reported as "gqa").
  - a bf16 GEMM 8192^3 (torch.matmul), reported in ms and TFLOP/s.
Prints one line per measurement and writes the JSON (through a temp file + rename) that
`POSTNAS_BENCH_ANCHORS=FILE postnas bench kernels ...` reads (sdpa.fwd_ms, sdpa.fwd_bwd_ms).

Usage (on the GPU machine; torch only, no other package):
  python3 scripts/anchor_torch_h100.py [--out results/bench/anchors_h100.json] [--reps 30] [--warmup 5]
"""
import argparse
import json
import math
import os
import statistics
import sys
import tempfile

import torch
import torch.nn.functional as F


def time_calls(fn, warmup, reps):
    """Median and fastest time (ms) of reps calls of fn after warmup untimed calls."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
    for start, stop in events:
        start.record()
        fn()
        stop.record()
    torch.cuda.synchronize()
    ms = [start.elapsed_time(stop) for start, stop in events]
    return statistics.median(ms), min(ms)


def sdpa_gqa_mode():
    """'enable_gqa' when this torch's SDPA takes the flag, else 'repeat_interleave'."""
    q = torch.zeros(1, 4, 8, 16, device="cuda", dtype=torch.bfloat16)
    kv = torch.zeros(1, 2, 8, 16, device="cuda", dtype=torch.bfloat16)
    try:
        F.scaled_dot_product_attention(q, kv, kv, is_causal=True, enable_gqa=True)
        return "enable_gqa"
    except (TypeError, RuntimeError):
        return "repeat_interleave"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="results/bench/anchors_h100.json", help="JSON output path")
    ap.add_argument("--reps", type=int, default=30, help="timed calls per measurement (median reported)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed calls before timing")
    ap.add_argument("--B", type=int, default=8)
    ap.add_argument("--T", type=int, default=4096)
    ap.add_argument("--Hq", type=int, default=12)
    ap.add_argument("--Hkv", type=int, default=2)
    ap.add_argument("--D", type=int, default=128)
    ap.add_argument("--gemm", type=int, default=8192, help="M = N = K of the bf16 GEMM")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        print("anchor_torch_h100: error: no CUDA device visible to torch", file=sys.stderr)
        return 3
    if a.Hq % a.Hkv:
        print("anchor_torch_h100: error: --Hq must be a multiple of --Hkv", file=sys.stderr)
        return 2
    torch.manual_seed(20251124)
    dev = torch.device("cuda")
    B, T, Hq, Hkv, D = a.B, a.T, a.Hq, a.Hkv, a.D
    scale = 1.0 / math.sqrt(D)
    gqa = sdpa_gqa_mode()
    group = Hq // Hkv

    def make(h, grad):
        x = torch.randn(B, T, h, D, device=dev, dtype=torch.bfloat16)
        return x.requires_grad_(grad)

    def attend(q, k, v):
        qh, kh, vh = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, H, T, D) views
        if gqa == "enable_gqa":
            return F.scaled_dot_product_attention(qh, kh, vh, is_causal=True, scale=scale, enable_gqa=True)
        kh = kh.repeat_interleave(group, dim=1)
        vh = vh.repeat_interleave(group, dim=1)
        return F.scaled_dot_product_attention(qh, kh, vh, is_causal=True, scale=scale)

    # Forward: three input sets rotated, as the C benchmark does, so L2 holds no previous inputs.
    sets = [(make(Hq, False), make(Hkv, False), make(Hkv, False)) for _ in range(3)]
    it = {"i": 0}

    def fwd():
        q, k, v = sets[it["i"] % 3]
        it["i"] += 1
        with torch.no_grad():
            attend(q, k, v)

    fwd_ms, fwd_min = time_calls(fwd, a.warmup, a.reps)

    gsets = [(make(Hq, True), make(Hkv, True), make(Hkv, True), torch.randn(B, Hq, T, D, device=dev,
                                                                             dtype=torch.bfloat16))
             for _ in range(3)]

    def fwd_bwd():
        q, k, v, dout = gsets[it["i"] % 3]
        it["i"] += 1
        o = attend(q, k, v)
        q.grad = k.grad = v.grad = None
        o.backward(dout)

    fb_ms, fb_min = time_calls(fwd_bwd, a.warmup, a.reps)
    flops_fwd = 4.0 * B * Hq * T * T * D / 2.0
    print(f"sdpa causal GQA B{B} T{T} Hq{Hq} Hkv{Hkv} D{D} bf16 ({gqa}): fwd {fwd_ms:.4f} ms "
          f"({flops_fwd / fwd_ms / 1e9:.1f} TFLOP/s), fwd+bwd {fb_ms:.4f} ms ({3.5 * flops_fwd / fb_ms / 1e9:.1f} TFLOP/s)")
    del sets, gsets

    n = a.gemm
    mats = [(torch.randn(n, n, device=dev, dtype=torch.bfloat16), torch.randn(n, n, device=dev, dtype=torch.bfloat16))
            for _ in range(3)]

    def gemm():
        x, w = mats[it["i"] % 3]
        it["i"] += 1
        torch.matmul(x, w)

    gemm_ms, gemm_min = time_calls(gemm, a.warmup, a.reps)
    gemm_tflops = 2.0 * n * n * n / gemm_ms / 1e9
    print(f"bf16 GEMM {n}^3: {gemm_ms:.4f} ms ({gemm_tflops:.1f} TFLOP/s)")

    out = {
        "anchor": "torch",
        "device": torch.cuda.get_device_name(0),
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "cudnn_version": torch.backends.cudnn.version(),
        "method": "CUDA events around each call, calls queued back to back, warm-up first, median of reps; "
                  "inputs rotate among 3 sets",
        "sdpa": {
            "shape": f"B{B} T{T} Hq{Hq} Hkv{Hkv} D{D}, causal, bf16, (B,T,H,D) storage as (B,H,T,D) views",
            "gqa": gqa,
            "warmup": a.warmup,
            "reps": a.reps,
            "fwd_ms": fwd_ms,
            "fwd_min_ms": fwd_min,
            "fwd_bwd_ms": fb_ms,
            "fwd_bwd_min_ms": fb_min,
            "flops_fwd": flops_fwd,
            "flops_fwd_bwd": 3.5 * flops_fwd,
        },
        "gemm_bf16": {"n": n, "ms": gemm_ms, "min_ms": gemm_min, "tflops": gemm_tflops},
    }
    d = os.path.dirname(a.out) or "."
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".anchors.", dir=d)
    with os.fdopen(fd, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    os.replace(tmp, a.out)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
