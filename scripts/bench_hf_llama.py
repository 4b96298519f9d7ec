#!/usr/bin/env python3
"""Dev-only (not run by CI): Hugging Face transformers' LlamaForCausalLM (PyTorch, CPU,
one thread) on the checkpoint of `auto_hook_models/benches/llama.rs`, next to the
single-thread numbers of the Rust bench.

    RAYON_NUM_THREADS=1 cargo bench -p auto_hook_models --bench llama   # Rust, 1 thread
    python3 scripts/bench_hf_llama.py [BENCH_DIR] [--runs 300]

BENCH_DIR (default target/llama_bench) holds what the Rust bench writes: `checkpoint/`
(config.json + model.safetensors: the same config and weights) and
`reference.safetensors` (the token ids and auto_hook's full-sequence logits). The script
loads the checkpoint with `LlamaForCausalLM.from_pretrained` (float32), checks that its
logits match auto_hook's within 1e-4 at every position, then times, under
`torch.no_grad()`, with `torch.set_num_threads(1)`:

- `full`: `model(input_ids, use_cache=False).logits`, all 64 positions `[1, 64, vocab]`;
- `last`: the same with `logits_to_keep=1`, `[1, 1, vocab]` (the work of
  candle-transformers' `Llama::forward`);

each with the `eager` and the `sdpa` attention implementation, interleaved in a random
order per round, and reports the median (95% CI from order statistics). It then reads
the Rust medians of `target/criterion/llama_threads1/` (criterion estimates and the
paired-round medians of `paired.json`) when they exist and prints a markdown table.
"""
import argparse
import json
import os
import random
import statistics
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import LlamaForCausalLM  # noqa: E402

TOLERANCE = 1e-4
# (label, Rust bench id, what it computes)
RUST = [
    ("auto_hook, no hooks", "auto_hook_no_hooks", "full"),
    ("auto_hook, last position", "auto_hook_last_pos", "last"),
    ("candle-transformers", "candle_transformers", "last"),
    ("candle-transformers + unembed of the other 63 positions", "candle_transformers_all_pos", "full"),
]


def median_ci(values):
    """Median and 95% CI of the median from order statistics."""
    v = sorted(values)
    m = len(v)
    half = int(-(-0.98 * m**0.5 // 1))  # ceil(0.98 sqrt(m))
    return v[max(m // 2 - half, 0)], v[m // 2], v[min(m // 2 + half, m - 1)]


def fmt_ms(s):
    return f"{s * 1e3:.3f} ms"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bench_dir", nargs="?", default="target/llama_bench")
    parser.add_argument("--criterion-dir", default="target/criterion/llama_threads1")
    parser.add_argument("--runs", type=int, default=300, help="timed rounds (default 300)")
    parser.add_argument("--warmup", type=int, default=30, help="untimed rounds (default 30)")
    args = parser.parse_args()

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    bench_dir = Path(args.bench_dir)
    reference = load_file(str(bench_dir / "reference.safetensors"))
    input_ids, expected = reference["input_ids"], reference["logits"]

    models = {}
    for attn in ("eager", "sdpa"):
        model = LlamaForCausalLM.from_pretrained(
            str(bench_dir / "checkpoint"), dtype=torch.float32, attn_implementation=attn
        )
        model.eval()
        with torch.no_grad():
            logits = model(input_ids, use_cache=False).logits
            last = model(input_ids, use_cache=False, logits_to_keep=1).logits
        diff = (logits - expected).abs().max().item()
        diff_last = (last[:, -1] - expected[:, -1]).abs().max().item()
        assert logits.shape == expected.shape, (logits.shape, expected.shape)
        assert diff <= TOLERANCE and diff_last <= TOLERANCE, f"{attn}: logits differ by {diff}"
        print(f"{attn}: logits match auto_hook at all {logits.shape[1]} positions (max |diff| {diff:.2e})")
        models[attn] = model

    variants = {
        (attn, kind): (model, 1 if kind == "last" else 0)
        for attn, model in models.items()
        for kind in ("full", "last")
    }
    times = {key: [] for key in variants}
    rng = random.Random(0)
    keys = list(variants)
    with torch.no_grad():
        for round_ in range(args.warmup + args.runs):
            rng.shuffle(keys)
            for key in keys:
                model, keep = variants[key]
                start = time.perf_counter()
                model(input_ids, use_cache=False, logits_to_keep=keep)
                elapsed = time.perf_counter() - start
                if round_ >= args.warmup:
                    times[key].append(elapsed)

    print(f"\ntorch {torch.__version__}, {torch.get_num_threads()} thread, {args.runs} rounds\n")
    torch_median = {}
    print("| PyTorch (transformers) | computes | median (95% CI) |")
    print("|---|---|---:|")
    for (attn, kind), t in sorted(times.items()):
        lo, mid, hi = median_ci(t)
        torch_median[(attn, kind)] = mid
        print(f"| LlamaForCausalLM, {attn} | {kind} | {fmt_ms(mid)} ({fmt_ms(lo)}–{fmt_ms(hi)}) |")

    crit = Path(args.criterion_dir)
    paired_path = crit / "paired.json"
    paired = json.loads(paired_path.read_text()) if paired_path.exists() else {}
    rows = []
    for label, bench_id, kind in RUST:
        est = crit / "small" / bench_id / "new" / "estimates.json"
        if not est.exists():
            continue
        crit_s = json.loads(est.read_text())["median"]["point_estimate"] * 1e-9
        paired_s = paired.get(bench_id, {}).get("median_s")
        rows.append((label, kind, crit_s, paired_s))
    if not rows:
        print(f"\n(no Rust single-thread results in {crit}: run "
              "`RAYON_NUM_THREADS=1 cargo bench -p auto_hook_models --bench llama` first)")
        return
    print(f"\nRust, RAYON_NUM_THREADS=1 ({crit}); ratio = PyTorch / Rust on the same work, "
          "Rust taken as the paired-round median (criterion's when there is none)\n")
    print("| Rust (candle 0.11) | computes | criterion median | paired-round median | PyTorch sdpa / Rust | PyTorch eager / Rust |")
    print("|---|---|---:|---:|---:|---:|")
    for label, kind, crit_s, paired_s in rows:
        shown = "" if paired_s is None else fmt_ms(paired_s)
        rust_s = crit_s if paired_s is None else paired_s
        sdpa = torch_median[("sdpa", kind)] / rust_s
        eager = torch_median[("eager", kind)] / rust_s
        print(f"| {label} | {kind} | {fmt_ms(crit_s)} | {shown} | {sdpa:.2f}× | {eager:.2f}× |")
    print(f"\n(spread of PyTorch runs: stdev/median "
          f"{statistics.stdev(times[('sdpa', 'full')]) / torch_median[('sdpa', 'full')]:.1%})")


if __name__ == "__main__":
    main()
