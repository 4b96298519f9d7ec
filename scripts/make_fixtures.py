#!/usr/bin/env python3
"""Dev-only: builds tiny random Hugging Face checkpoints and their reference activations.

Never needed by CI (the outputs are committed). Needs: pip install torch transformers safetensors

Writes, under auto_hook_models/tests/fixtures/{gpt2,llama,qwen2}/:
  config.json, model.safetensors         (save_pretrained)
  reference.safetensors                  input_ids (int64 [batch, seq]), logits,
                                         hidden_states.{i} (output_hidden_states),
                                         and one key per PyTorch module path holding that
                                         module's forward output (first element of a tuple),
                                         recorded with plain PyTorch forward hooks.
The format is what `cargo run -p auto_hook_models --example compare_hf` reads.
"""
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import (GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM,
                          Qwen2Config, Qwen2ForCausalLM)

OUT = Path(__file__).resolve().parent.parent / "auto_hook_models" / "tests" / "fixtures"


def rescale(model, std):
    """Non-trivial weight scales: the default init (std 0.02) makes every activation tiny."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or ".ln_" in name or name.endswith("ln_f.weight") or name.endswith("ln_f.bias"):
                if name.endswith("weight"):
                    p.copy_(1.0 + 0.1 * torch.randn_like(p))
                else:
                    p.copy_(0.1 * torch.randn_like(p))
            else:
                p.normal_(0.0, std)


def reference(model, input_ids):
    records = {}

    def record(name):
        def hook(_module, _inputs, output):
            out = output[0] if isinstance(output, tuple) else output
            if isinstance(out, torch.Tensor) and out.is_floating_point():
                records[name] = out.detach().clone()
        return hook

    handles = [m.register_forward_hook(record(n)) for n, m in model.named_modules() if n]
    with torch.no_grad():
        out = model(input_ids=input_ids, output_hidden_states=True)
    for h in handles:
        h.remove()
    tensors = {"input_ids": input_ids.to(torch.int64), "logits": out.logits}
    for i, h in enumerate(out.hidden_states):
        tensors[f"hidden_states.{i}"] = h
    tensors.update(records)
    return {k: v.contiguous() for k, v in tensors.items()}


def write(name, model, vocab):
    folder = OUT / name
    folder.mkdir(parents=True, exist_ok=True)
    model.eval()
    model.save_pretrained(folder, safe_serialization=True)
    input_ids = torch.randint(0, vocab, (2, 7), generator=torch.Generator().manual_seed(1))
    save_file(reference(model, input_ids), str(folder / "reference.safetensors"))
    size = sum(f.stat().st_size for f in folder.iterdir())
    print(f"{name}: {folder} ({size / 1024:.0f} KiB)")


def main():
    torch.manual_seed(0)
    vocab = 64
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_positions=32, n_embd=32, n_layer=2, n_head=4, bos_token_id=0, eos_token_id=0,
                                      attn_implementation="eager"))
    rescale(gpt2, 0.2)
    write("gpt2", gpt2, vocab)

    llama = LlamaForCausalLM(LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=48,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                         max_position_embeddings=64, rope_theta=10000.0,
                                         tie_word_embeddings=False, attn_implementation="eager"))
    rescale(llama, 0.2)
    write("llama", llama, vocab)

    qwen = Qwen2ForCausalLM(Qwen2Config(vocab_size=vocab, hidden_size=32, intermediate_size=48,
                                        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                        max_position_embeddings=64, rope_theta=1000000.0,
                                        tie_word_embeddings=False, attn_implementation="eager"))
    rescale(qwen, 0.2)
    write("qwen2", qwen, vocab)


if __name__ == "__main__":
    main()
