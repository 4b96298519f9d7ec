"""Dev-only: tiny SAELens SAEs of each architecture and their reference activations.

Writes auto_hook_sae/tests/fixtures/<name>/ with SAELens's own files (cfg.json,
sae_weights.safetensors, saved by SAELens's save_model / save_inference_model) and
reference.safetensors: x, hidden_pre (what hook_sae_acts_pre sees), feature_acts
(encode(x)) and sae_out (decode(encode(x))). The Rust parity test and the compare_sae
example read them. Needs `pip install sae-lens` (6.x, CPU torch).

    /work/pyenv/bin/python scripts/make_sae_fixtures.py [newer | transcoders]

`transcoders` writes only the four transcoder fixtures (d_in 16, d_out 12). `newer`
writes only the fixtures of the newer architectures (gated,
matryoshka_batchtopk: `newer_architectures`), from their own seed, leaving the others
as they are. Their `training.safetensors` holds a fixed batch, the dead-latent mask,
the coefficient, the training weights (`param.*`, before any folding), SAELens's
`training_forward_pass` loss terms and every parameter's gradient of the total loss.
"""

import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

import sae_lens
from sae_lens import (
    BatchTopKTrainingSAE,
    BatchTopKTrainingSAEConfig,
    JumpReLUSAE,
    JumpReLUSAEConfig,
    StandardSAE,
    StandardSAEConfig,
    TopKSAE,
    TopKSAEConfig,
    TopKTrainingSAE,
    TopKTrainingSAEConfig,
)
from sae_lens.saes.sae import SAEMetadata

OUT = Path(__file__).resolve().parent.parent / "auto_hook_sae" / "tests" / "fixtures"
D_IN, D_SAE, N = 16, 48, 32


def metadata(hook="blocks.0.hook_resid_post"):
    return SAEMetadata(hook_name=hook, model_name="tiny", context_size=8, prepend_bos=True)


def randomize(sae, threshold=None):
    """Random weights that leave a mix of active and inactive latents."""
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn_like(sae.W_enc) / D_IN**0.5)
        sae.W_dec.copy_(torch.randn_like(sae.W_dec) / D_SAE**0.5)
        sae.b_enc.copy_(torch.randn_like(sae.b_enc) * 0.1)
        sae.b_dec.copy_(torch.randn_like(sae.b_dec) * 0.1)
        if threshold is not None:
            sae.threshold.copy_(torch.rand_like(sae.threshold) * threshold)


def reference(sae, x):
    with torch.no_grad():
        _, cache = sae.run_with_cache(x, names_filter="hook_sae_acts_pre")
        feature_acts = sae.encode(x)
        sae_out = sae.decode(feature_acts)
    return {
        "x": x.contiguous(),
        "hidden_pre": cache["hook_sae_acts_pre"].contiguous(),
        "feature_acts": feature_acts.contiguous(),
        "sae_out": sae_out.contiguous(),
    }


def write(name, sae, x, save=None):
    folder = OUT / name
    shutil.rmtree(folder, ignore_errors=True)
    (save or sae.save_model)(folder)
    save_file(reference(sae, x), folder / "reference.safetensors")
    print(name, json.loads((folder / "cfg.json").read_text())["architecture"])
    return folder


def main():
    torch.manual_seed(0)
    x = torch.randn(N, D_IN)

    sae = StandardSAE(StandardSAEConfig(d_in=D_IN, d_sae=D_SAE, metadata=metadata()))
    randomize(sae)
    write("standard", sae, x)

    sae = StandardSAE(
        StandardSAEConfig(d_in=D_IN, d_sae=D_SAE, apply_b_dec_to_input=False, metadata=metadata())
    )
    randomize(sae)
    write("standard_no_bdec", sae, x)

    sae = StandardSAE(
        StandardSAEConfig(d_in=D_IN, d_sae=D_SAE, normalize_activations="layer_norm", metadata=metadata())
    )
    randomize(sae)
    write("standard_layer_norm", sae, x * 3 + 1)

    sae = TopKSAE(TopKSAEConfig(d_in=D_IN, d_sae=D_SAE, k=6, metadata=metadata()))
    randomize(sae)
    folder = write("topk", sae, x)

    # The same SAE as a pre-v6 config: hook_point at the top level, activation_fn topk.
    old = OUT / "topk_pre_v6"
    shutil.rmtree(old, ignore_errors=True)
    shutil.copytree(folder, old)
    (old / "cfg.json").write_text(
        json.dumps(
            {
                "architecture": "standard",
                "d_in": D_IN,
                "d_sae": D_SAE,
                "dtype": "torch.float32",
                "device": "cpu",
                "model_name": "tiny",
                "hook_point": "blocks.0.hook_resid_post",
                "hook_point_layer": 0,
                "hook_point_head_index": None,
                "activation_fn_str": "topk",
                "activation_fn_kwargs": {"k": 6},
                "apply_b_dec_to_input": True,
                "finetuning_scaling_factor": False,
                "context_size": 8,
                "prepend_bos": True,
                "normalize_activations": "none",
            }
        )
    )
    print("topk_pre_v6 (hand-written pre-v6 cfg.json)")

    # A training topk SAE (rescale_acts_by_decoder_norm), saved as SAELens saves it
    # after training: norms folded, inference config.
    sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=D_IN, d_sae=D_SAE, k=5, metadata=metadata()))
    randomize(sae)
    folder = OUT / "topk_trained"
    shutil.rmtree(folder, ignore_errors=True)
    sae.save_inference_model(folder)
    from sae_lens import SAE

    loaded = SAE.load_from_disk(folder)
    save_file(reference(loaded, x), folder / "reference.safetensors")
    print("topk_trained", type(loaded).__name__)

    sae = JumpReLUSAE(JumpReLUSAEConfig(d_in=D_IN, d_sae=D_SAE, metadata=metadata()))
    randomize(sae, threshold=0.4)
    write("jumprelu", sae, x)

    sae = BatchTopKTrainingSAE(BatchTopKTrainingSAEConfig(d_in=D_IN, d_sae=D_SAE, k=4, metadata=metadata()))
    randomize(sae)
    sae.topk_threshold = torch.tensor(0.15, dtype=torch.double)
    folder = OUT / "batchtopk"
    shutil.rmtree(folder, ignore_errors=True)
    sae.save_inference_model(folder)
    loaded = SAE.load_from_disk(folder)
    save_file(reference(loaded, x), folder / "reference.safetensors")
    print("batchtopk ->", type(loaded).__name__)

    heads, d_head = 4, 4
    sae = StandardSAE(
        StandardSAEConfig(
            d_in=heads * d_head,
            d_sae=D_SAE,
            reshape_activations="hook_z",
            metadata=metadata("blocks.0.attn.hook_z"),
        )
    )
    randomize(sae)
    write("hook_z", sae, x.reshape(N, heads, d_head))
    print("sae_lens", sae_lens.__version__, "torch", torch.__version__)


def training_reference(sae, x, dead, coefficients, params):
    """SAELens's training forward on `x`: loss terms and the gradient of each parameter."""
    from sae_lens.saes.sae import TrainStepInput

    weights = {f"param.{name}": getattr(sae, name).detach().clone().contiguous() for name in params}
    sae.zero_grad()
    step = TrainStepInput(
        sae_in=x, coefficients=coefficients, dead_neuron_mask=dead,
        n_training_steps=0, is_logging_step=False,
    )
    out = sae.training_forward_pass(step)
    out.loss.backward()
    ref = {"x": x.contiguous(), "dead": dead.to(torch.float32), "loss": out.loss.detach().reshape(1)}
    ref.update(weights)
    for name, value in out.losses.items():
        ref[f"loss.{name}"] = value.detach().float().reshape(1)
    ref["feature_acts"] = out.feature_acts.detach().contiguous()
    ref["sae_out"] = out.sae_out.detach().contiguous()
    for name in params:
        ref[f"grad.{name}"] = getattr(sae, name).grad.contiguous()
    for name, value in coefficients.items():
        ref[f"coefficient.{name}"] = torch.tensor([value], dtype=torch.float32)
    return ref


def newer_architectures():
    """gated and matryoshka_batchtopk: inference (gated) and training references."""
    from sae_lens import (
        GatedTrainingSAE,
        GatedTrainingSAEConfig,
        MatryoshkaBatchTopKTrainingSAE,
        MatryoshkaBatchTopKTrainingSAEConfig,
    )

    torch.manual_seed(17)
    x = torch.randn(N, D_IN)
    dead = torch.rand(D_SAE) < 0.4

    cfg = GatedTrainingSAEConfig(d_in=D_IN, d_sae=D_SAE, l1_coefficient=0.7, metadata=metadata())
    sae = GatedTrainingSAE(cfg)
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn_like(sae.W_enc) / D_IN**0.5)
        sae.W_dec.copy_(torch.randn_like(sae.W_dec) / D_SAE**0.5)
        sae.b_dec.copy_(torch.randn_like(sae.b_dec) * 0.1)
        sae.b_gate.copy_(torch.randn_like(sae.b_gate) * 0.2)
        sae.b_mag.copy_(torch.randn_like(sae.b_mag) * 0.2)
        sae.r_mag.copy_(torch.randn_like(sae.r_mag) * 0.3)
    folder = OUT / "gated"
    shutil.rmtree(folder, ignore_errors=True)
    sae.save_inference_model(folder)
    from sae_lens import SAE

    loaded = SAE.load_from_disk(folder)
    save_file(reference(loaded, x), folder / "reference.safetensors")
    params = ["W_enc", "W_dec", "b_dec", "b_gate", "b_mag", "r_mag"]
    ref = training_reference(sae, x, dead, {"l1": 0.7}, params)
    save_file(ref, folder / "training.safetensors")
    print("gated ->", type(loaded).__name__, sorted(k for k in ref if k.startswith("loss")))

    for name, aux in [("matryoshka", False), ("matryoshka_aux", True)]:
        cfg = MatryoshkaBatchTopKTrainingSAEConfig(
            d_in=D_IN, d_sae=D_SAE, k=5, matryoshka_widths=[8, 20, D_SAE],
            use_matryoshka_aux_loss=aux, aux_loss_coefficient=0.5, metadata=metadata(),
        )
        sae = MatryoshkaBatchTopKTrainingSAE(cfg)
        randomize(sae)
        sae.topk_threshold = torch.tensor(0.12, dtype=torch.double)
        folder = OUT / name
        shutil.rmtree(folder, ignore_errors=True)
        params = ["W_enc", "b_enc", "W_dec", "b_dec"]
        ref = training_reference(sae, x, dead, {}, params)
        ref["topk_threshold_before"] = torch.tensor([0.12])
        ref["topk_threshold"] = sae.topk_threshold.float().reshape(1)
        sae.save_inference_model(folder)
        save_file(ref, folder / "training.safetensors")
        loaded = SAE.load_from_disk(folder)
        save_file(reference(loaded, x), folder / "reference.safetensors")
        print(name, "->", type(loaded).__name__, sorted(k for k in ref if k.startswith("loss")))


def transcoders():
    """transcoder, skip_transcoder, jumprelu_transcoder, jumprelu_skip_transcoder:
    d_in 16 -> d_out 12, saved with SAELens's save_model; sae_out is SAELens's forward
    (the skip connection included)."""
    from sae_lens import (
        JumpReLUSkipTranscoder,
        JumpReLUSkipTranscoderConfig,
        JumpReLUTranscoder,
        JumpReLUTranscoderConfig,
        SkipTranscoder,
        SkipTranscoderConfig,
        Transcoder,
        TranscoderConfig,
    )
    from sae_lens.saes.sae import SAEMetadata

    torch.manual_seed(23)
    d_out = 12
    x = torch.randn(N, D_IN)
    meta = SAEMetadata(
        hook_name="blocks.0.ln2.hook_normalized", hook_name_out="blocks.0.hook_mlp_out",
        model_name="tiny", context_size=8, prepend_bos=True,
    )
    kinds = [
        ("transcoder", Transcoder, TranscoderConfig),
        ("skip_transcoder", SkipTranscoder, SkipTranscoderConfig),
        ("jumprelu_transcoder", JumpReLUTranscoder, JumpReLUTranscoderConfig),
        ("jumprelu_skip_transcoder", JumpReLUSkipTranscoder, JumpReLUSkipTranscoderConfig),
    ]
    for name, cls, cfg_cls in kinds:
        sae = cls(cfg_cls(d_in=D_IN, d_sae=D_SAE, d_out=d_out, apply_b_dec_to_input=False, metadata=meta))
        with torch.no_grad():
            sae.W_enc.copy_(torch.randn_like(sae.W_enc) / D_IN**0.5)
            sae.W_dec.copy_(torch.randn_like(sae.W_dec) / D_SAE**0.5)
            sae.b_enc.copy_(torch.randn_like(sae.b_enc) * 0.1)
            sae.b_dec.copy_(torch.randn_like(sae.b_dec) * 0.1)
            if hasattr(sae, "W_skip"):
                sae.W_skip.copy_(torch.randn_like(sae.W_skip) * 0.2)
            if hasattr(sae, "threshold"):
                sae.threshold.copy_(torch.rand_like(sae.threshold) * 0.4)
        folder = OUT / name
        shutil.rmtree(folder, ignore_errors=True)
        sae.save_model(folder)
        loaded = sae_lens.SAE.load_from_disk(folder)
        with torch.no_grad():
            _, cache = loaded.run_with_cache(x, names_filter="hook_sae_acts_pre")
            ref = {
                "x": x.contiguous(),
                "hidden_pre": cache["hook_sae_acts_pre"].contiguous(),
                "feature_acts": loaded.encode(x).contiguous(),
                "sae_out": loaded(x).contiguous(),
            }
        save_file(ref, folder / "reference.safetensors")
        print(name, "->", type(loaded).__name__, tuple(ref["sae_out"].shape))


if __name__ == "__main__":
    if sys.argv[1:] == ["newer"]:
        newer_architectures()
    elif sys.argv[1:] == ["transcoders"]:
        transcoders()
    else:
        main()
        newer_architectures()
        transcoders()
