"""Dev-only: paired rounds of the real-size SAE step, ours against SAELens 6.54.

For each size (d_in 768 / d_sae 6144, then 576 / 9216) and thread count (1, then 2),
each architecture runs back to back on both sides, so a change of load hits both:
SAELens's step (`scripts/bench_sae_saelens.py --real`, torch with SAELENS_THREADS
threads, median of 3 steps after one; for the transcoders, which SAELens has no
trainer for, its transcoder modules in the training step that script's docstring
describes), then ours (`cargo bench -p auto_hook_sae --bench sae_real`,
RAYON_NUM_THREADS, criterion's mean of 10 steps). Then the matrix products of
a standard step: torch's best of 5 against ours (the `gemm` crate). Prints one markdown
row per pair as it goes, with the load average.

    /work/venv/bin/python scripts/bench_sae_real.py [--sizes 768x6144,576x9216]
        [--threads 1,2] [--archs standard,gated,...] [--no-gemm]
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
ARCHS = [
    "standard", "topk", "batchtopk", "jumprelu", "gated", "matryoshka_batchtopk",
    "transcoder", "skip_transcoder", "jumprelu_transcoder",
]


def option(name, default):
    """`--name a,b` from the command line, split at commas."""
    if f"--{name}" in sys.argv:
        return sys.argv[sys.argv.index(f"--{name}") + 1].split(",")
    return default


def load():
    return open("/proc/loadavg").read().split()[0]


def saelens(threads, *args):
    env = dict(os.environ, SAELENS_THREADS=str(threads))
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts/bench_sae_saelens.py"), *map(str, args)],
        env=env, capture_output=True, text=True, check=True,
    ).stdout
    times = {}
    for line in out.splitlines():
        m = re.match(r"(?:saelens|torch) (\S+): (?:median|best) ([\d.]+) ms", line)
        if m:
            times[m[1]] = float(m[2])
    return times


def ours(threads, pattern):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    subprocess.run(
        ["cargo", "bench", "-q", "-p", "auto_hook_sae", "--bench", "sae_real", "--", "--noplot", pattern],
        env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    times = {}
    base = TARGET / "criterion"
    for info in base.glob("**/new/benchmark.json"):
        bench_id = json.loads(info.read_text())["full_id"]
        if re.search(pattern, bench_id):
            est = json.loads((info.parent / "estimates.json").read_text())
            times[bench_id] = est["mean"]["point_estimate"] / 1e6
    return times


SIZES = [tuple(map(int, s.split("x"))) for s in option("sizes", ["768x6144", "576x9216"])]
THREADS = [int(t) for t in option("threads", ["1", "2"])]
cpu = next(l for l in open("/proc/cpuinfo") if l.startswith("model name")).split(":")[1].strip()
print(f"CPU: {cpu}, {os.cpu_count()} logical CPUs; avx512: {'avx512f' in open('/proc/cpuinfo').read()}")
print("| bench | threads | SAELens / torch ms | ours ms | ratio | load |")
print("|---|---:|---:|---:|---:|---:|", flush=True)
for d_in, d_sae in SIZES:
    for threads in THREADS:
        for arch in option("archs", ARCHS):
            key = f"sae_step_real/{d_in}x{d_sae}/{arch}"
            theirs = saelens(threads, "--real", d_in, d_sae, arch)[key]
            mine = ours(threads, f"^{key}$")[key]
            print(f"| {key} | {threads} | {theirs:.0f} | {mine:.0f} | {theirs / mine:.2f}x | {load()} |", flush=True)
        if "--no-gemm" in sys.argv:
            continue
        theirs = saelens(threads, "--gemm", d_in, d_sae)
        mine = ours(threads, f"^gemm/.*x({d_in}x{d_sae}|{d_sae}x{d_in}|4096x{d_sae}|4096x{d_in})$")
        for key in sorted(set(theirs) & set(mine)):
            print(f"| {key} | {threads} | {theirs[key]:.0f} | {mine[key]:.0f} | {theirs[key] / mine[key]:.2f}x | {load()} |", flush=True)
