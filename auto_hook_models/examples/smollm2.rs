//! A real pretrained model end to end: SmolLM2-135M-Instruct from its Q4_1 GGUF file,
//! kept quantized, with every hook point.
//!
//! GGUF=$(scripts/fetch_smollm2.sh | tail -1)
//! cargo run --release -p auto_hook_models --example smollm2 -- "$GGUF"
//!
//! Caches every hook point on "The capital of France is", prints the top next tokens
//! and the hook names with their shapes, then renders a chat with the file's template
//! and generates a reply, counting with a hook how often layer 15's attention ran.

use auto_hook::prelude::*;
use auto_hook_models::{ChatMessage, Eos, GenerateOptions};
use candle_core::{Device, IndexOp, D};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("AUTO_HOOK_SMOLLM2").ok())
        .ok_or("usage: smollm2 PATH.gguf (fetch it with scripts/fetch_smollm2.sh)")?;
    let dev = Device::Cpu;
    let start = Instant::now();
    let model = auto_hook_models::load_quantized(&path, &dev)?;
    let cfg = model.config();
    println!(
        "loaded {path} in {:.1} s: {} layers, d_model {}, {} heads ({} KV), vocab {}, projections {:?}",
        start.elapsed().as_secs_f64(),
        cfg.n_layers,
        cfg.d_model,
        cfg.n_heads,
        cfg.n_kv_heads,
        cfg.vocab_size,
        model.blocks()[0].attn().q_proj().quant_type().expect("quantized"),
    );

    let prompt = "The capital of France is";
    let tokens = model.to_tokens(prompt, &dev)?;
    println!("\n{prompt:?} -> {:?}", model.to_str_tokens(prompt)?);
    let start = Instant::now();
    let (logits, cache) =
        model.run_with_cache(CacheOptions::all(), |m| m.forward(&tokens, None))?;
    let elapsed = start.elapsed().as_secs_f64();
    let last = logits.i((0, tokens.dim(1)? - 1))?;
    let top = last
        .arg_sort_last_dim(false)?
        .narrow(D::Minus1, 0, 5)?
        .to_vec1::<u32>()?;
    println!("top next tokens:");
    for id in top {
        let logit = last.i(id as usize)?.to_scalar::<f32>()?;
        println!(
            "  {:>10} {logit:>7.3}",
            format!("{:?}", model.to_string(&[id])?)
        );
    }
    let names: Vec<&str> = cache.names().collect();
    println!(
        "\ncached all {} hook points in one forward ({elapsed:.2} s); {} listed:",
        names.len(),
        model.hook_point_names().len()
    );
    for name in names.iter().take(26) {
        println!("  {name:<36} {:?}", cache.get(name)?.dims());
    }
    println!("  ... ({} more)", names.len().saturating_sub(26));

    let chat = [ChatMessage::new("user", "What is the capital of France?")];
    let rendered = model.apply_chat_template(&chat, true)?;
    let ids = model.to_tokens(&rendered, &dev)?;
    let opts = GenerateOptions {
        max_new_tokens: 24,
        eos: Eos::FromConfig,
        ..GenerateOptions::default()
    };
    let mut calls = 0;
    let hooks = Hooks::new().add("blocks.15.attn.hook_pattern", |_, _| calls += 1);
    let start = Instant::now();
    let out = model.run_with_hooks(hooks, |m| m.generate(&ids, None, &opts))?;
    let reply: Vec<u32> = out.i(0)?.to_vec1::<u32>()?[ids.dim(1)?..].to_vec();
    println!("\nchat prompt ({} tokens):\n{rendered}", ids.dim(1)?);
    println!(
        "reply ({} tokens, {:.1} s, blocks.15.attn.hook_pattern fired {calls} times):\n{}",
        reply.len(),
        start.elapsed().as_secs_f64(),
        model.to_string(&reply)?
    );
    Ok(())
}
