"""Dev-only: paired rounds of the real-size SAE step, ours against SAELens 6.54.

Per round, back to back: SAELens (1 torch thread), ours (RAYON_NUM_THREADS=1), ours
(2 threads), SAELens (2 torch threads); ours is `cargo bench -p auto_hook_sae --bench
sae_real` (criterion's mean of 10 steps; also the `gemm/*` products), SAELens's
`scripts/bench_sae_saelens.py --real` (median of 5 steps; also torch's matmul rate).
Prints one markdown table per round and the load average before and after.

    /work/venv/bin/python scripts/bench_sae_real.py [ROUNDS]
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 1


def load():
    return open("/proc/loadavg").read().split()[0]


def saelens(threads):
    env = dict(os.environ, SAELENS_THREADS=str(threads))
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts/bench_sae_saelens.py"), "--real"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout
    print(out, end="", flush=True)
    times = {}
    for line in out.splitlines():
        m = re.match(r"saelens (\S+): median ([\d.]+) ms", line)
        if m:
            times[m[1]] = float(m[2])
        m = re.match(r"torch (gemm/\S+): best ([\d.]+) ms", line)
        if m:
            times[m[1]] = float(m[2])
    return times


def ours(threads):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    subprocess.run(
        ["cargo", "bench", "-q", "-p", "auto_hook_sae", "--bench", "sae_real", "--", "--noplot"],
        env=env, cwd=ROOT, check=True, stdout=sys.stderr,
    )
    times = {}
    base = TARGET / "criterion"
    for group in ["sae_step_real", "gemm"]:
        for est in (base / group).glob("**/new/estimates.json"):
            bench_id = est.parent.parent.relative_to(base).as_posix()
            times[bench_id] = json.loads(est.read_text())["mean"]["point_estimate"] / 1e6
    return times


for r in range(ROUNDS):
    before = load()
    s1, o1, o2, s2 = saelens(1), ours(1), ours(2), saelens(2)
    print(f"\nround {r + 1}: load average {before} before, {load()} after")
    print("| bench | SAELens 1t ms | ours 1t ms | ratio | SAELens 2t ms | ours 2t ms | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for key in sorted(set(o1) & set(s1)):
        a, b, c, d = s1[key], o1[key], s2.get(key, float("nan")), o2.get(key, float("nan"))
        print(f"| {key} | {a:.0f} | {b:.0f} | {a / b:.2f}x | {c:.0f} | {d:.0f} | {c / d:.2f}x |")
    sys.stdout.flush()
