#!/usr/bin/env python3
"""PyTorch's side of the WebGPU matmul comparison on a GPU machine (issue: WebGPU matmul above 50% of
PyTorch's f32 on the same GPU). f32 with TF32 off, so both sides do full-precision f32 arithmetic.
Prints one JSON line per shape: {"m", "k", "n", "gflops", "device"}.

usage: python3 scripts/bench/torch_matmul_gpu.py   (then compare with `npm run bench:webgpu`)
"""
import json
import time

import torch

if not torch.cuda.is_available():
    raise SystemExit("torch_matmul_gpu.py: no CUDA device")
torch.backends.cuda.matmul.allow_tf32 = False
device = torch.cuda.get_device_name()
for m, k, n in [(1024, 1024, 1024), (4096, 4096, 4096), (128, 2048, 8192), (1, 2048, 8192)]:
    a = torch.randn(m, k, device="cuda")
    b = torch.randn(k, n, device="cuda")
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    runs, t0 = 0, time.perf_counter()
    while runs < 10 or time.perf_counter() - t0 < 1.0:
        a @ b
        runs += 1
    torch.cuda.synchronize()
    seconds = (time.perf_counter() - t0) / runs
    print(json.dumps({"m": m, "k": k, "n": n, "gflops": 2 * m * n * k / seconds / 1e9, "device": device}))
