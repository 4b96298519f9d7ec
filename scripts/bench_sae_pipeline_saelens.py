"""Dev-only: SAELens's whole training pipeline on the embedded induction model, in the
configuration of the `pipeline/*` bench of auto_hook_sae (benches/sae.rs).

models/induction-2l (a Hugging Face GPT-2 checkpoint: 2 layers, d_model 64, n_ctx 32,
vocab 64) becomes a TransformerLens HookedTransformer through TransformerLens's own GPT-2
weight conversion (no weight processing, so the activations are the checkpoint's own;
checked against the checkpoint's logits). SAELens's LanguageModelSAETrainingRunner builds
its ActivationsStore (model forwards stopped after block 0, context 32 with BOS, 32
prompts per forward, a mixing buffer of 8192 rows = 8 forwards, mixing fraction 0.5) and
SAE from an in-memory pretokenized dataset (BOS, then 31 random ids, as the Rust bench's
packing makes them); then SAETrainer's own steps run (the body of SAETrainer.fit:
sparsity window, next batch from the store, training_forward_pass, backward, clipping,
Adam, firing statistics). Prints the mean tokens/s over the timed steps (buffer refills
included), per architecture. One torch thread (SAELENS_THREADS=2 for two).

    /work/pyenv/bin/python scripts/bench_sae_pipeline_saelens.py [standard topk ...]
"""

import logging
import os
import sys
import time
from pathlib import Path

import torch
from datasets import Dataset
from safetensors.torch import load_file
from sae_lens import (
    BatchTopKTrainingSAEConfig,
    JumpReLUTrainingSAEConfig,
    LanguageModelSAERunnerConfig,
    LanguageModelSAETrainingRunner,
    LoggingConfig,
    StandardTrainingSAEConfig,
    TopKTrainingSAEConfig,
)
from sae_lens.training.sae_trainer import SAETrainer
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformer_lens.pretrained.weight_conversions.gpt2 import convert_gpt2_weights
from transformers import GPT2Config, GPT2LMHeadModel

# One torch thread unless SAELENS_THREADS says otherwise (as scripts/bench_sae_saelens.py).
torch.set_num_threads(int(os.environ.get("SAELENS_THREADS", "1")))
logging.disable(logging.WARNING)
ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "induction-2l"
TOKENS, CONTEXT, WARMUP, STEPS = 4096, 32, 5, 40
BUFFER_ROWS = 32 * CONTEXT * 8


class Tokenizer:
    """What SAELens's store reads from a tokenizer: the special ids (BOS = 0)."""

    bos_token_id = eos_token_id = pad_token_id = 0
    sep_token_id = None
    padding_side = "right"


def hooked_model() -> HookedTransformer:
    hf_cfg = GPT2Config.from_pretrained(MODEL)
    hf = GPT2LMHeadModel(hf_cfg)
    hf.load_state_dict(load_file(MODEL / "model.safetensors"), strict=False)
    hf.tie_weights()
    cfg = HookedTransformerConfig(
        n_layers=hf_cfg.n_layer,
        d_model=hf_cfg.n_embd,
        n_ctx=hf_cfg.n_positions,
        d_head=hf_cfg.n_embd // hf_cfg.n_head,
        n_heads=hf_cfg.n_head,
        d_mlp=hf_cfg.n_inner,
        d_vocab=hf_cfg.vocab_size,
        act_fn="gelu_new",
        normalization_type="LN",
        eps=hf_cfg.layer_norm_epsilon,
        original_architecture="GPT2LMHeadModel",
        default_prepend_bos=True,
        device="cpu",
    )
    model = HookedTransformer(cfg)
    model.load_and_process_state_dict(
        convert_gpt2_weights(hf, cfg),
        fold_ln=False,
        center_writing_weights=False,
        center_unembed=False,
    )
    model.tokenizer = Tokenizer()
    return model.eval()


def check_model(model: HookedTransformer) -> None:
    """The converted model computes what the checkpoint does (logits within 1e-4)."""
    hf = GPT2LMHeadModel.from_pretrained(MODEL).eval()
    ids = torch.randint(1, 64, (2, CONTEXT))
    with torch.no_grad():
        diff = (model(ids) - hf(ids).logits).abs().max().item()
    assert diff < 1e-4, f"converted model differs from the checkpoint: {diff}"


def sae_config(name: str):
    sizes = dict(d_in=64, d_sae=512)
    return {
        "standard": lambda: StandardTrainingSAEConfig(**sizes, l1_coefficient=1.0),
        "topk": lambda: TopKTrainingSAEConfig(**sizes, k=8),
        "batchtopk": lambda: BatchTopKTrainingSAEConfig(**sizes, k=8),
        "jumprelu": lambda: JumpReLUTrainingSAEConfig(**sizes),
    }[name]()


def bench(name: str, model: HookedTransformer, dataset: Dataset) -> None:
    cfg = LanguageModelSAERunnerConfig(
        sae=sae_config(name),
        model_name="induction-2l",
        hook_name="blocks.0.hook_resid_post",
        dataset_path="in-memory",
        is_dataset_tokenized=True,
        streaming=False,
        context_size=CONTEXT,
        prepend_bos=True,
        store_batch_size_prompts=32,
        # SAELens 6.54 sizes its mixing buffer as n_batches_in_buffer × context_size
        # rows: the Rust store's 32 prompts × 32 × 8 forwards = 8192 rows is 256 here.
        n_batches_in_buffer=BUFFER_ROWS // CONTEXT,
        activations_mixing_fraction=0.5,
        train_batch_size_tokens=TOKENS,
        training_tokens=TOKENS * 1_000_000,
        device="cpu",
        dtype="float32",
        n_checkpoints=0,
        output_path=None,
        logger=LoggingConfig(log_to_wandb=False),
        verbose=False,
    )
    runner = LanguageModelSAETrainingRunner(
        cfg, override_dataset=dataset, override_model=model
    )
    trainer = SAETrainer(
        sae=runner.sae,
        data_provider=runner.activations_store,
        evaluator=runner.evaluator,
        save_checkpoint_fn=runner.save_checkpoint,
        cfg=cfg.to_sae_trainer_config(),
    )

    def step():
        trainer.maybe_reset_sparsity()
        trainer.step(next(trainer.data_provider))
        trainer.n_training_steps += 1

    for _ in range(WARMUP):
        step()
    t0 = time.perf_counter()
    for _ in range(STEPS):
        step()
    per_step = (time.perf_counter() - t0) / STEPS
    print(
        f"saelens pipeline/{name}: mean {per_step * 1e3:.2f} ms/step = "
        f"{TOKENS / per_step:,.0f} tokens/s"
    )


def main() -> None:
    names = sys.argv[1:] or ["standard", "topk", "batchtopk", "jumprelu"]
    model = hooked_model()
    check_model(model)
    gen = torch.Generator().manual_seed(1)
    # Pretokenized rows are used as they are: BOS (0), then 31 random ids.
    ids = torch.randint(1, 64, (200_000, CONTEXT - 1), generator=gen)
    rows = torch.cat([torch.zeros(len(ids), 1, dtype=ids.dtype), ids], dim=1)
    dataset = Dataset.from_dict({"input_ids": rows.tolist()}).with_format("torch")
    for name in names:
        bench(name, model, dataset)
    print("torch", torch.__version__, "threads", torch.get_num_threads())


if __name__ == "__main__":
    main()
