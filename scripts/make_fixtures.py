#!/usr/bin/env python3
"""Dev-only: builds tiny random Hugging Face checkpoints and their reference activations.

Never needed by CI (the outputs are committed). Needs: pip install torch transformers safetensors

Writes, under auto_hook_models/tests/fixtures/{gpt2,llama,qwen2}/ (no argument), or
{mixtral,mamba,gemma2,gemma}/ (`make_fixtures.py mixtral mamba gemma2 gemma`):
  config.json, model.safetensors         (save_pretrained)
  reference.safetensors                  input_ids (int64 [batch, seq]), logits,
                                         hidden_states.{i} (output_hidden_states),
                                         and one key per PyTorch module path holding that
                                         module's forward output (first element of a tuple),
                                         recorded with plain PyTorch forward hooks.
The format is what `cargo run -p auto_hook_models --example compare_hf` reads.
mixtral/reference.safetensors also holds the router's top-k per layer (router.{i}.indices,
router.{i}.weights) and load-balancing losses (aux_loss, aux_loss_masked with aux_mask);
mamba/reference_padded.safetensors is a left-padded batch with its attention_mask;
gemma2/ and gemma/ references also hold attentions.{i} (the attention pattern per layer),
gemma2/reference_padded.safetensors a left-padded batch.
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


def reference(model, input_ids, attention_mask=None, attentions=False, position_ids=None):
    records = {}

    def record(name):
        def hook(_module, _inputs, output):
            out = output[0] if isinstance(output, tuple) else output
            if isinstance(out, torch.Tensor) and out.is_floating_point():
                records[name] = out.detach().clone()
        return hook

    handles = [m.register_forward_hook(record(n)) for n, m in model.named_modules() if n]
    with torch.no_grad():
        extra = {"output_attentions": True} if attentions else {}
        if position_ids is not None:
            extra["position_ids"] = position_ids
        out = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True, **extra)
    for h in handles:
        h.remove()
    tensors = {"input_ids": input_ids.to(torch.int64), "logits": out.logits}
    if attention_mask is not None:
        tensors["attention_mask"] = attention_mask
    for i, h in enumerate(out.hidden_states):
        tensors[f"hidden_states.{i}"] = h
    if attentions:
        for i, a in enumerate(out.attentions):
            tensors[f"attentions.{i}"] = a
    tensors.update(records)
    return {k: v.contiguous() for k, v in tensors.items()}


def write(name, model, vocab, attentions=False):
    folder = OUT / name
    folder.mkdir(parents=True, exist_ok=True)
    model.eval()
    model.save_pretrained(folder, safe_serialization=True)
    input_ids = torch.randint(0, vocab, (2, 7), generator=torch.Generator().manual_seed(1))
    save_file(reference(model, input_ids, attentions=attentions), str(folder / "reference.safetensors"))
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


def mixtral():
    """Tiny Mixtral (4 experts, top-2, sliding window 4 < seq 7). Also checks that the
    in-memory fused layout is cat(w1, w3) of what save_pretrained writes."""
    from safetensors.torch import load_file
    from transformers import MixtralConfig, MixtralForCausalLM
    torch.manual_seed(11)
    vocab = 64
    model = MixtralForCausalLM(MixtralConfig(vocab_size=vocab, hidden_size=32, intermediate_size=32,
                                             num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                             num_local_experts=4, num_experts_per_tok=2, sliding_window=4,
                                             max_position_embeddings=64, rope_theta=10000.0,
                                             tie_word_embeddings=False, attn_implementation="eager"))
    rescale(model, 0.2)
    write("mixtral", model, vocab)
    saved = load_file(str(OUT / "mixtral" / "model.safetensors"))
    fused = model.state_dict()
    for i in range(2):
        p = f"model.layers.{i}"
        w1 = torch.stack([saved[f"{p}.block_sparse_moe.experts.{e}.w1.weight"] for e in range(4)])
        w3 = torch.stack([saved[f"{p}.block_sparse_moe.experts.{e}.w3.weight"] for e in range(4)])
        w2 = torch.stack([saved[f"{p}.block_sparse_moe.experts.{e}.w2.weight"] for e in range(4)])
        assert torch.equal(fused[f"{p}.mlp.experts.gate_up_proj"], torch.cat([w1, w3], dim=1))
        assert torch.equal(fused[f"{p}.mlp.experts.down_proj"], w2)
        assert torch.equal(fused[f"{p}.mlp.gate.weight"], saved[f"{p}.block_sparse_moe.gate.weight"])
    print("mixtral: save_pretrained wrote the legacy layout; the fused in-memory one is cat(w1, w3)")
    # Load-balancing loss references: unmasked, and with a mask that drops 3 positions.
    from transformers.models.mixtral.modeling_mixtral import load_balancing_loss_func
    path = OUT / "mixtral" / "reference.safetensors"
    tensors = load_file(str(path))
    routes = {}

    def route(i):
        def hook(_module, _inputs, output):
            _, scores, indices = output
            routes[f"router.{i}.weights"] = scores.detach().clone()
            routes[f"router.{i}.indices"] = indices.detach().clone()
        return hook

    handles = [layer.mlp.gate.register_forward_hook(route(i)) for i, layer in enumerate(model.model.layers)]
    with torch.no_grad():
        out = model(input_ids=tensors["input_ids"], output_router_logits=True)
    for h in handles:
        h.remove()
    # The router's top-k (renormalised weights and expert ids, best first) per layer.
    tensors.update({k: v.contiguous() for k, v in routes.items()})
    mask = torch.ones(2, 7, dtype=torch.int64)
    mask[0, :3] = 0
    tensors["aux_loss"] = load_balancing_loss_func(out.router_logits, 4, 2).reshape(1)
    tensors["aux_loss_masked"] = load_balancing_loss_func(out.router_logits, 4, 2, mask).reshape(1)
    tensors["aux_mask"] = mask
    assert torch.allclose(out.aux_loss, tensors["aux_loss"][0])
    save_file(tensors, str(path))


def mamba():
    """Tiny Mamba (slow path: no CUDA kernels), untied lm_head, plus a tied copy's config check."""
    from transformers import MambaConfig, MambaForCausalLM
    torch.manual_seed(12)
    vocab = 64
    model = MambaForCausalLM(MambaConfig(vocab_size=vocab, hidden_size=32, state_size=8, num_hidden_layers=2,
                                         expand=2, conv_kernel=4, time_step_rank=4, use_conv_bias=True,
                                         use_bias=False, tie_word_embeddings=False, residual_in_fp32=True))
    rescale(model, 0.2)
    with torch.no_grad():
        for layer in model.backbone.layers:
            mixer = layer.mixer
            mixer.A_log.copy_(torch.log(torch.arange(1, 9, dtype=torch.float32)).expand(64, -1)
                              + 0.1 * torch.randn(64, 8))
            mixer.D.copy_(1.0 + 0.1 * torch.randn(64))
            mixer.dt_proj.bias.copy_(torch.log(torch.expm1(torch.full((64,), 0.05))) + 0.3 * torch.randn(64))
    write("mamba", model, vocab)
    # Left padding: the second row's first 3 positions are padding.
    input_ids = torch.randint(0, vocab, (2, 7), generator=torch.Generator().manual_seed(2))
    mask = torch.ones(2, 7, dtype=torch.int64)
    mask[1, :3] = 0
    save_file(reference(model, input_ids, mask), str(OUT / "mamba" / "reference_padded.safetensors"))


def gemma2():
    """Tiny Gemma 2 where everything Gemma 2 changes shows: head_dim 12 != 32 / 4,
    query_pre_attn_scalar 20 != head_dim, window 3 < seq 7, a layer order other than
    transformers' default (full, sliding, sliding), soft-caps small enough to bite (the
    script prints how often they do), tied embeddings. Also a left-padded batch with
    Hugging Face generate's position ids (cumsum(mask) - 1)."""
    from transformers import Gemma2Config, Gemma2ForCausalLM
    torch.manual_seed(13)
    vocab = 64
    cfg = Gemma2Config(vocab_size=vocab, hidden_size=32, intermediate_size=48, num_hidden_layers=3,
                       num_attention_heads=4, num_key_value_heads=2, head_dim=12, query_pre_attn_scalar=20,
                       sliding_window=3, layer_types=["full_attention", "sliding_attention", "sliding_attention"],
                       attn_logit_softcapping=2.0, final_logit_softcapping=3.0, max_position_embeddings=64,
                       rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                       tie_word_embeddings=True, attn_implementation="eager",
                       pad_token_id=0, bos_token_id=1, eos_token_id=2)
    model = Gemma2ForCausalLM(cfg)
    rescale(model, 0.3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:  # Gemma multiplies by (1 + w)
                p.copy_(0.2 * torch.randn_like(p))
    write("gemma2", model, vocab, attentions=True)
    folder = OUT / "gemma2"
    from safetensors.torch import load_file
    ref = load_file(str(folder / "reference.safetensors"))
    capped = ref["logits"].abs().max().item()
    print(f"gemma2: max |logit| {capped:.3f} of cap 3.0")
    scores = {}

    def raw_scores(i):
        def hook(module, args, kwargs, _output):
            h = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
            b, t, _ = h.shape
            q = module.q_proj(h).view(b, t, -1, 12).transpose(1, 2)
            k = module.k_proj(h).view(b, t, -1, 12).transpose(1, 2)
            scores[i] = (q @ k.repeat_interleave(2, dim=1).transpose(2, 3) * module.scaling).abs().max().item()
        return hook
    handles = [layer.self_attn.register_forward_hook(raw_scores(i), with_kwargs=True)
               for i, layer in enumerate(model.model.layers)]
    with torch.no_grad():
        model(input_ids=ref["input_ids"])
    for h in handles:
        h.remove()
    print(f"gemma2: max |q.k * scale| per layer (before rope, cap 2.0): {scores}")
    input_ids = torch.randint(0, vocab, (2, 7), generator=torch.Generator().manual_seed(2))
    mask = torch.ones(2, 7, dtype=torch.int64)
    mask[1, :3] = 0
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    save_file(reference(model, input_ids, mask, attentions=True, position_ids=position_ids),
              str(folder / "reference_padded.safetensors"))


def gemma():
    """Tiny Gemma (v1): the Llama recipe with (1 + w) norms, scaled embeddings, GeGLU."""
    from transformers import GemmaConfig, GemmaForCausalLM
    torch.manual_seed(14)
    vocab = 64
    model = GemmaForCausalLM(GemmaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=48,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1,
                                         head_dim=12, max_position_embeddings=64, hidden_act="gelu",
                                         attn_implementation="eager", pad_token_id=0, bos_token_id=1,
                                         eos_token_id=2))
    rescale(model, 0.3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(0.2 * torch.randn_like(p))
    write("gemma", model, vocab, attentions=True)


if __name__ == "__main__":
    import sys
    extra = {"mixtral": mixtral, "mamba": mamba, "gemma2": gemma2, "gemma": gemma}
    # No argument: the original three fixtures (unchanged); `mixtral` / `mamba`: those.
    for name in sys.argv[1:]:
        extra[name]()
    if len(sys.argv) == 1:
        main()
