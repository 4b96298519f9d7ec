#!/usr/bin/env python3
"""Prints the BENCHMARKS.md table from criterion's estimates of `cargo bench -p auto_hook_dev --bench overhead`.

Reads target/criterion/overhead/<config>/<variant>/new/estimates.json (median, ns) and
divides each variant by `plain` of the same config; adds the paired A/B ratio (median and
95% CI) from target/criterion/overhead/<config>/paired.json when the bench wrote one.
"""
import json
import sys
from pathlib import Path

CONFIGS = ["tiny_llama", "tiny_gpt2", "gpt2_small"]
VARIANTS = ["plain", "no_hooks", "identity_all", "cache_all", "stop_at_first_block", "backward_plain", "backward_cache"]
# Backward variants are compared with the plain forward + backward, the rest with plain.
BASELINE = {"backward_plain": "backward_plain", "backward_cache": "backward_plain"}
TARGETS = {"no_hooks": 1.01, "identity_all": 1.05, "cache_all": 1.05}


def fmt_time(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3f} {unit}"
    return f"{ns:.0f} ns"


def main():
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion") / "overhead"
    print("| config | variant | criterion median | ratio vs baseline | paired ratio (95% CI) | target | met |")
    print("|---|---|---:|---:|---:|---:|:---:|")
    for config in CONFIGS:
        medians = {}
        for variant in VARIANTS:
            path = root / config / variant / "new" / "estimates.json"
            if path.exists():
                medians[variant] = json.loads(path.read_text())["median"]["point_estimate"]
        paired_path = root / config / "paired.json"
        paired = json.loads(paired_path.read_text()) if paired_path.exists() else {}
        for variant, ns in medians.items():
            ratio = ns / medians[BASELINE.get(variant, "plain")]
            target = TARGETS.get(variant)
            if variant == "stop_at_first_block" and config == "gpt2_small":
                target = 0.2
            p = paired.get(variant)
            decisive = ratio if p is None else p["median"]  # the paired ratio when there is one
            met = "" if target is None else ("yes" if decisive <= target else "**no**")
            shown = "" if target is None else f"≤ {target:.2f}×"
            pair = "" if p is None else f"{p['median']:.3f}× ({p['ci_low']:.3f}–{p['ci_high']:.3f})"
            print(f"| {config} | {variant} | {fmt_time(ns)} | {ratio:.3f}× | {pair} | {shown} | {met} |")


if __name__ == "__main__":
    main()
