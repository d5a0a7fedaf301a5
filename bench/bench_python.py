#!/usr/bin/env python3
"""Cost of each engine processor per decode step, as JSON lines (median, min,
max over 7 repeats), at batch 1 and 64, V = 151,936 (Qwen's padded rows
152,064), float32 and bf16 (and f16 for Hugging Face), with the floor
measured in the same run:

  floor_c_f32        Watermark.bias_batch on a CPU float32 tensor: the C
                     library in place (the zero-copy path)
  c_bf16, c_f16      the same call on 16-bit CPU tensors (C, in place)
  floor_add          an elementwise add over the same logits (torch), the
                     cost any processor touching every logit pays
  hf_*               libwm.hf.LibwmLogitsProcessor(input_ids, scores)
  vllm_v1_*          libwm.vllm.LibwmV1LogitsProcessor.apply after the
                     BatchUpdate that added the batch
  vllm_v2_*          libwm.vllm.LibwmV2LogitsProcessor.apply (C path on CPU)
  vllm_v2_device_*   the same through libwm.torch_kernel (what a GPU runs),
                     on CPU torch
  sglang_*           libwm.sglang.LibwmSGLangProcessor
  hf_account_*       hf_* with every row under an account (the layer's cost)

Requests carry no account except in hf_account_*, so every other line does
the floor's work.

Each line has ratio_to_floor = median / floor_c_f32's median at that batch.
The goal (issue 14): every dtype within 2x of floor_c_f32 on CPU.

    LIBWM_LIBRARY=build/libwm/libwm.so /usr/bin/python3 bench/bench_python.py [--device cuda]"""
import argparse
import atexit
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from types import SimpleNamespace

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import numpy as np  # noqa: E402
import torch  # noqa: E402

import libwm  # noqa: E402
from libwm import _serving  # noqa: E402
from libwm.hf import LibwmLogitsProcessor  # noqa: E402
from libwm.sglang import LibwmSGLangProcessor  # noqa: E402
from libwm.vllm import LibwmV1LogitsProcessor, LibwmV2LogitsProcessor  # noqa: E402

V, PADDED = 151936, 152064
ap = argparse.ArgumentParser()
ap.add_argument("--device", default="cpu")
ap.add_argument("--quick", action="store_true", help="fewer repeats (the suite's smoke run)")
a = ap.parse_args()
dev = torch.device(a.device)
sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)


def timed(fn, reps):
    fn()
    sync()
    ts = []
    for _ in range(3 if a.quick else 7):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        sync()
        ts.append((time.perf_counter() - t0) / reps * 1e6)
    return {"median": statistics.median(ts), "min": min(ts), "max": max(ts)}


floor = {}


def emit(name, batch, dtype, us):
    if name == "floor_c_f32":
        floor[batch] = us["median"]
    print(json.dumps({"bench": name, "device": str(dev), "V": V, "batch": batch, "dtype": dtype,
                      "us_per_step": us, "ratio_to_floor": us["median"] / floor[batch] if batch in floor else None,
                      "torch": torch.__version__, "python": platform.python_version(),
                      "cpu_threads": torch.get_num_threads()}), flush=True)


key = libwm.Key.from_seed(bytes(range(32)), account_delta=2.0)
tmp = tempfile.mkdtemp(prefix="wm-bench-")
atexit.register(shutil.rmtree, tmp, True)
path = os.path.join(tmp, "bench.wmkey")
key.save(path)
os.environ["LIBWM_KEY"], os.environ["LIBWM_N_VOCAB"] = path, str(V)
wm = _serving.watermark(V)
DT = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}
g = np.random.default_rng(1)
for batch in (1, 64):
    reps = 1 if a.quick else max(2, 200 // batch)
    ids = torch.from_numpy(g.integers(0, V, (batch, 32)))
    logits = {k: torch.zeros(batch, PADDED, dtype=t, device=dev) for k, t in DT.items()}
    ctxs = [list(map(int, r)) for r in ids]
    if dev.type == "cpu":
        for k in ("f32", "bf16", "f16"):  # floor_c_f32 first: the others' ratios are to it
            emit(f"floor_c_{k}" if k == "f32" else f"c_{k}", batch, k,
                 timed(lambda: wm.bias_batch(logits[k], ctxs), reps))
    one = torch.ones(batch, PADDED, device=dev)
    emit("floor_add", batch, "f32", timed(lambda: logits["f32"].add_(one), reps))
    for k in ("f32", "bf16", "f16"):
        hf = LibwmLogitsProcessor(wm)
        d_ids = ids.to(dev)
        emit(f"hf_{k}", batch, k, timed(lambda: hf(d_ids, logits[k]), reps))
    # vLLM V1: one BatchUpdate adding the batch, then apply per step.
    cfg = SimpleNamespace(model_config=SimpleNamespace(get_vocab_size=lambda: V))
    v1 = LibwmV1LogitsProcessor(cfg, dev, False)
    sp = SimpleNamespace(extra_args=None)  # watermark on, no account: the floor's work
    v1.update_state(SimpleNamespace(batch_size=batch, removed=[], moved=[],
                                    added=[(i, sp, c[:-1], c[-1:]) for i, c in enumerate(ctxs)]))
    for k in ("f32", "bf16"):
        emit(f"vllm_v1_{k}", batch, k, timed(lambda: v1.apply(logits[k]), reps))
    # vLLM MRV2: slots with history on the device, one row per request.
    hist = torch.from_numpy(g.integers(0, V, (batch, 64))).to(torch.int32).to(dev)
    rs = SimpleNamespace(device=dev, max_num_reqs=batch, vocab_size=V, all_token_ids=SimpleNamespace(gpu=hist))
    v2 = LibwmV2LogitsProcessor(SimpleNamespace(model_config=None), rs)
    for i in range(batch):
        v2.add_request(i, sp)
    v2.apply_staged_writes()
    ctx = SimpleNamespace(expanded_idx_mapping=torch.arange(batch, dtype=torch.int32, device=dev),
                          expanded_local_pos=torch.zeros(batch, dtype=torch.int32, device=dev),
                          input_ids=hist[:, 40].clone(), pos=torch.full((batch,), 40, device=dev))
    modes = ([("", True)] if dev.type == "cpu" else []) + ([] if dev.type == "cpu" and a.quick else [("_device", False)])
    for mode in modes:
        v2.cpu_in_c = mode[1]
        for k in ("f32", "bf16"):
            emit(f"vllm_v2{mode[0]}_{k}", batch, k, timed(lambda: v2.apply(logits[k], ctx), reps))
    sg = LibwmSGLangProcessor()
    params = [{"__req__": SimpleNamespace(origin_input_ids=c[:-1], output_ids=c[-1:])} for c in ctxs]
    for k in ("f32", "bf16"):
        emit(f"sglang_{k}", batch, k, timed(lambda: sg(logits[k], params), reps))
    # The account layer's price: the same HF step with every row under an account.
    hfa = LibwmLogitsProcessor(wm, accounts=[7] * batch)
    for k in ("f32", "bf16"):
        emit(f"hf_account_{k}", batch, k, timed(lambda: hfa(d_ids, logits[k]), reps))
