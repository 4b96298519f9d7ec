"""Dev-only: SAELens loads SAEs that auto_hook_sae saved, and computes what we computed.

    SAE_EXPORT_DIR=/tmp/sae_export cargo test -p auto_hook_sae --test export
    /work/venv/bin/python scripts/check_saelens_loads.py /tmp/sae_export

For each folder under the directory: `SAE.load_from_disk`, then hidden_pre (what
hook_sae_acts_pre sees), encode(x) and forward(x) against our outputs in its
reference.safetensors. Exits non-zero when a folder fails to load or differs by more
than 1e-5.
"""

import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

import sae_lens
from sae_lens import SAE

TOLERANCE = 1e-5


def check(folder):
    sae = SAE.load_from_disk(folder)
    ref = load_file(folder / "reference.safetensors")
    x = ref["x"]
    with torch.no_grad():
        _, cache = sae.run_with_cache(x, names_filter="hook_sae_acts_pre")
        feature_acts = sae.encode(x)
        ours = {
            "hidden_pre": cache["hook_sae_acts_pre"],
            "feature_acts": feature_acts,
            "sae_out": sae(x),
        }
    diffs = {k: float((v - ref[k]).abs().max()) for k, v in ours.items()}
    ok = all(d <= TOLERANCE for d in diffs.values())
    print(f"{folder.name}: loaded as {type(sae).__name__} ({sae.cfg.architecture()}); "
          + ", ".join(f"{k} max |diff| {d:.2e}" for k, d in diffs.items())
          + ("" if ok else "  FAILED"))
    return ok


def main():
    root = Path(sys.argv[1])
    print("sae_lens", sae_lens.__version__)
    results = [check(f) for f in sorted(root.iterdir()) if (f / "cfg.json").exists()]
    if not results or not all(results):
        sys.exit(1)


if __name__ == "__main__":
    main()
