#!/usr/bin/env python3
"""Cost of the Python binding per decode step, as JSON lines (median, min,
max over repeats): the Hugging Face processor on numpy and torch CPU float32
(zero-copy), on a torch bf16 tensor (mask path), and the same bias through
the C batch call alone, so the ctypes overhead is visible.

    LIBWM_LIBRARY=build/libwm/libwm.so python3 bench/bench_python.py"""
import json
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import numpy as np  # noqa: E402

import libwm  # noqa: E402

try:
    import torch
except ImportError:
    torch = None

V, PADDED = 151936, 152064


def timed(fn, reps):
    ts = []
    for _ in range(7):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        ts.append((time.perf_counter() - t0) / reps * 1e6)
    return {"median": statistics.median(ts), "min": min(ts), "max": max(ts)}


def emit(name, batch, us):
    print(json.dumps({"bench": name, "V": V, "batch": batch, "us_per_step": us,
                      "us_per_seq_step": {k: v / batch for k, v in us.items()},
                      "python": platform.python_version()}))


wm = libwm.Watermark(libwm.Key.from_seed(bytes(32)), V)
proc = libwm.WatermarkLogitsProcessor(wm)
for batch in (1, 64):
    ids = np.random.default_rng(1).integers(0, V, (batch, 32))
    scores = np.zeros((batch, PADDED), np.float32)
    emit("python_hf_numpy_f32", batch, timed(lambda: proc(ids, scores), 200 // batch + 5))
    if torch is not None:
        tids = torch.from_numpy(ids)
        t32 = torch.zeros(batch, PADDED)
        emit("python_hf_torch_f32", batch, timed(lambda: proc(tids, t32), 200 // batch + 5))
        t16 = torch.zeros(batch, PADDED, dtype=torch.bfloat16)
        emit("python_hf_torch_bf16_mask", batch, timed(lambda: proc(tids, t16), 50 // batch + 2))
vllm = libwm.VLLMLogitsProcessor(wm)
row = np.zeros(PADDED, np.float32)
emit("python_vllm_numpy_f32", 1, timed(lambda: vllm([1, 2, 3], [4, 5], row), 200))
