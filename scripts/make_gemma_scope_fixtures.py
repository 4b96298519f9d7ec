"""Dev-only: tiny Gemma Scope-format params.npz files and SAELens's reading of them.

Gemma Scope releases hold one `params.npz` per SAE (W_enc [d_in, d_sae], W_dec, b_enc,
b_dec, threshold; no cfg.json). This writes such files with random weights (d_in 32, the
width of the tiny Gemma 2 fixture in auto_hook_models/tests/fixtures/gemma2) and loads
them through SAELens's own Gemma Scope loaders (`gemma_2_sae_huggingface_loader`,
`gemma_2_transcoder_huggingface_loader`, with the Hub download pointed at the local file)
to record reference.safetensors: x, hidden_pre, feature_acts, sae_out (as
make_sae_fixtures.py). Outputs: auto_hook_sae/tests/fixtures/gemma_scope{,_transcoder}/.
`downstream` writes gemma_scope/downstream.safetensors: SAELens's CE loss score and KL
with that SAE spliced into the tiny Gemma 2 (needs `make_fixtures.py gemma2` first).

    /work/venv/bin/python scripts/make_gemma_scope_fixtures.py [downstream]
"""

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

import sae_lens.loading.pretrained_sae_loaders as loaders
from sae_lens import SAE
from sae_lens.loading.pretrained_sae_loaders import handle_config_defaulting

OUT = Path(__file__).resolve().parent.parent / "auto_hook_sae" / "tests" / "fixtures"
D_IN, D_SAE, N = 32, 64, 24


def params(seed):
    g = np.random.default_rng(seed)
    return {
        "W_enc": (g.standard_normal((D_IN, D_SAE)) / D_IN**0.5).astype(np.float32),
        "W_dec": (g.standard_normal((D_SAE, D_IN)) / D_SAE**0.5).astype(np.float32),
        "b_enc": (g.standard_normal(D_SAE) * 0.1).astype(np.float32),
        # Non-zero, so apply_b_dec_to_input = false shows.
        "b_dec": (g.standard_normal(D_IN) * 0.5).astype(np.float32),
        "threshold": (g.random(D_SAE) * 0.8).astype(np.float32),
    }


def load_with_sae_lens(loader, repo_id, folder_name, path):
    """SAELens's own loader, its Hub download replaced by the local file."""
    loaders.hf_hub_download = lambda *args, **kwargs: str(path)
    cfg_dict, state_dict, _ = loader(repo_id, folder_name, device="cpu",
                                     cfg_overrides={"d_in": D_IN, "d_out": D_IN, "d_sae": D_SAE})
    cfg_dict = handle_config_defaulting(cfg_dict)
    cfg = SAE.get_sae_config_class_for_architecture(cfg_dict["architecture"]).from_dict(cfg_dict)
    sae = SAE.get_sae_class_for_architecture(cfg.architecture())(cfg)
    sae.process_state_dict_for_loading(state_dict)
    sae.load_state_dict(state_dict, assign=True)
    return sae


def reference(sae, x):
    with torch.no_grad():
        _, cache = sae.run_with_cache(x, names_filter="hook_sae_acts_pre")
        feature_acts = sae.encode(x)
        sae_out = sae.decode(feature_acts)
    frac = (feature_acts > 0).float().mean().item()
    return {"x": x.contiguous(), "hidden_pre": cache["hook_sae_acts_pre"].contiguous(),
            "feature_acts": feature_acts.contiguous(), "sae_out": sae_out.contiguous()}, frac


def write(name, seed, loader, repo_id, folder_name):
    folder = OUT / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "params.npz"
    np.savez(path, **params(seed))  # uncompressed, as Gemma Scope's files
    sae = load_with_sae_lens(loader, repo_id, folder_name, path)
    assert sae.cfg.apply_b_dec_to_input is False, sae.cfg
    x = torch.randn(N, D_IN, generator=torch.Generator().manual_seed(seed)) * 2.0
    tensors, frac = reference(sae, x)
    save_file(tensors, str(folder / "reference.safetensors"))
    print(f"{name}: {type(sae).__name__}, hook {sae.cfg.metadata.hook_name}, active fraction {frac:.2f}")


def main():
    write("gemma_scope", 21, loaders.gemma_2_sae_huggingface_loader,
          "google/gemma-scope-2b-pt-res", "layer_1/width_16k/average_l0_10")
    write("gemma_scope_transcoder", 22, loaders.gemma_2_transcoder_huggingface_loader,
          "google/gemma-scope-2b-pt-transcoders", "layer_1/width_16k/average_l0_10")



class HfAsHooked:
    """The two calls SAELens's get_recons_loss makes on a TransformerLens model, answered
    by the transformers Gemma 2 fixture: `model(tokens, return_type="both",
    loss_per_token=True)` and the same through `run_with_hooks(fwd_hooks=[(hook, fn)])`,
    with `blocks.{l}.hook_resid_post` = the output of decoder layer l."""

    def __init__(self, hf):
        self.hf = hf

    def __call__(self, tokens, return_type="both", loss_per_token=True):
        return self.run_with_hooks(tokens, return_type=return_type, fwd_hooks=[],
                                   loss_per_token=loss_per_token)

    def run_with_hooks(self, tokens, return_type="both", fwd_hooks=(), loss_per_token=True):
        from transformer_lens.utilities.lm_utils import lm_cross_entropy_loss
        handles = []
        for name, fn in fwd_hooks:
            layer = int(name.split(".")[1])
            assert name == f"blocks.{layer}.hook_resid_post", name

            def hook(_module, _inputs, output, fn=fn):
                out = output[0] if isinstance(output, tuple) else output
                new = fn(out, None)
                return (new, *output[1:]) if isinstance(output, tuple) else new
            handles.append(self.hf.model.layers[layer].register_forward_hook(hook))
        try:
            logits = self.hf(input_ids=tokens).logits
        finally:
            for h in handles:
                h.remove()
        return logits, lm_cross_entropy_loss(logits, tokens, per_token=loss_per_token)


class Batches:
    def __init__(self, tokens):
        self.tokens = tokens

    def get_batch_tokens(self, _n):
        return self.tokens


def downstream():
    """CE loss score and KL of the gemma_scope SAE spliced at blocks.1.hook_resid_post of the
    tiny Gemma 2 (final soft-cap on), computed by SAELens's get_downstream_reconstruction_metrics,
    with and without ignored special tokens (pad 0, bos 1, eos 2)."""
    from sae_lens.evals import get_downstream_reconstruction_metrics
    from sae_lens.training.activation_scaler import ActivationScaler
    from transformers import Gemma2ForCausalLM
    hf = Gemma2ForCausalLM.from_pretrained(
        str(OUT.parent.parent.parent / "auto_hook_models" / "tests" / "fixtures" / "gemma2"),
        attn_implementation="eager").eval()
    folder = OUT / "gemma_scope"
    sae = load_with_sae_lens(loaders.gemma_2_sae_huggingface_loader, "google/gemma-scope-2b-pt-res",
                             "layer_1/width_16k/average_l0_10", folder / "params.npz")
    g = torch.Generator().manual_seed(5)
    tokens = torch.randint(3, 64, (3, 10), generator=g)
    tokens[:, 0] = 1  # bos
    tokens[1, 6] = 2  # an eos and a pad inside, so ignoring them shows
    tokens[2, 4] = 0
    out = {"tokens": tokens.to(torch.int64), "ignore_tokens": torch.tensor([0, 1, 2], dtype=torch.int64)}
    for suffix, ignore in [("", None), ("_ignoring", [0, 1, 2])]:
        with torch.no_grad():
            m = get_downstream_reconstruction_metrics(
                sae, HfAsHooked(hf), Batches(tokens), ActivationScaler(), compute_kl=True,
                compute_ce_loss=True, n_batches=1, eval_batch_size_prompts=3, ignore_tokens=ignore)
        print(f"downstream{suffix}: {m}")
        for k, v in m.items():
            out[f"{k}{suffix}"] = torch.tensor([v], dtype=torch.float64)
    save_file(out, str(folder / "downstream.safetensors"))


if __name__ == "__main__":
    import sys
    # No argument: the params.npz fixtures; `downstream`: the CE / KL reference (needs them).
    if sys.argv[1:] == ["downstream"]:
        downstream()
    else:
        main()
