#!/usr/bin/env python3
"""Dev-only: transformers (PyTorch, f32) on SmolLM2-135M-Instruct's GGUF, the same 64 tokens
as `cargo bench -p auto_hook_models --bench smollm2`, one full forward, median of N runs.

    python scripts/bench_hf_smollm2.py MODEL.gguf [--threads 1 2] [--runs 30]
"""
import argparse
import statistics
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gguf")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    path = Path(args.gguf)
    tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
    text = "The capital of France is Paris, and the capital of Italy is Rome. " * 8
    ids = torch.tensor([tok.encode(text)[:64]])
    for threads in args.threads:
        torch.set_num_threads(threads)
        times = []
        with torch.inference_mode():
            model(input_ids=ids)
            for _ in range(args.runs):
                start = time.perf_counter()
                model(input_ids=ids, use_cache=False)
                times.append(time.perf_counter() - start)
        print(f"transformers f32, 64 tokens, {threads} thread(s): median {statistics.median(times) * 1e3:.1f} ms "
              f"(min {min(times) * 1e3:.1f}, max {max(times) * 1e3:.1f}, {args.runs} runs)")


if __name__ == "__main__":
    main()
