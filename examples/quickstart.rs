//! The main job on a real model. `models/induction-2l` is a 2-layer GPT-2 trained from
//! scratch on random tokens repeated once (`auto_hook_models/examples/train_induction.rs`).
//! This example lists its hook points, caches every attention pattern to score each
//! head as a previous-token, duplicate-token and induction head, zero-ablates heads through
//! hooks to show the loss on the repeated half rising, stops a forward early, and shows
//! the error a misspelled hook name gets.
//!
//! cargo run --release --example quickstart [MODEL_DIR]

use auto_hook::prelude::*;
use auto_hook_models::induction::{
    duplicate_token_scores, induction_scores, previous_token_scores, repeated_tokens,
};
use auto_hook_models::{next_token_log_probs, HookedTransformer};
use candle_core::{DType, Device, Tensor};
use std::path::PathBuf;

type Res<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const HALF: usize = 10; // random tokens per copy: [BOS] x1..x10 x1..x10
const BATCH: usize = 32;

/// Mean next-token loss (nats) over the predictions at positions `from..from + len`.
fn loss(logits: &Tensor, tokens: &Tensor, from: usize, len: usize) -> Res<f32> {
    let log_probs = next_token_log_probs(logits, tokens)?.narrow(1, from, len)?;
    Ok(-log_probs.mean_all()?.to_scalar::<f32>()?)
}

/// Runs the model with the given `(layer, head)`s zeroed at `blocks.{layer}.attn.hook_z`
/// (`[batch, pos, head, d_head]`): one hook per layer multiplies by a 0/1 head mask.
fn ablated(model: &HookedTransformer, tokens: &Tensor, zeroed: &[(usize, usize)]) -> Res<Tensor> {
    let n_heads = model.config().n_heads;
    let mut hooks = Hooks::new();
    for layer in 0..model.config().n_layers {
        let keep: Vec<f32> = (0..n_heads)
            .map(|h| f32::from(!zeroed.contains(&(layer, h))))
            .collect();
        if keep.iter().all(|&k| k == 1.0) {
            continue;
        }
        let keep = Tensor::from_vec(keep, (1, 1, n_heads, 1), &Device::Cpu)?;
        hooks = hooks.add(format!("blocks.{layer}.attn.hook_z"), move |z, _| {
            z.broadcast_mul(&keep)
        });
    }
    Ok(model.run_with_hooks(hooks, |m| m.forward(tokens, None))?)
}

fn main() -> Res<()> {
    let dir = match std::env::args().nth(1) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/induction-2l"),
    };
    let model = auto_hook_models::load(&dir, DType::F32, &Device::Cpu)?;
    let cfg = model.config().clone();
    println!(
        "loaded {}: {} layers x {} heads, d_model {}, vocab {}",
        dir.display(),
        cfg.n_layers,
        cfg.n_heads,
        cfg.d_model,
        cfg.vocab_size
    );

    // (a) Every activation has a TransformerLens name.
    let names = model.hook_point_names();
    let attn: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| n.starts_with("blocks.1.attn.hook_"))
        .collect();
    println!("{} hook points, e.g. {}", names.len(), attn.join(", "));

    // (b) Cache the attention patterns [batch, head, q_pos, k_pos] of every layer.
    let tokens = repeated_tokens(BATCH, HALF, cfg.vocab_size, 0x9e37_79b9)?;
    println!(
        "\n{BATCH} sequences {:?}: [BOS] + {HALF} random tokens + the same {HALF} again",
        tokens.dims()
    );
    let (logits, cache) = model
        .run_with_cache(CacheOptions::names("blocks.*.attn.hook_pattern"), |m| {
            m.forward(&tokens, None)
        })?;

    // Previous-token score: mean attention from each position to the one before it.
    // Induction score: mean attention from each token of the repeat to the token that
    // followed its first occurrence (query i, key i - HALF + 1).
    println!("\nhead   previous-token   duplicate-token   induction");
    let mut heads = Vec::new(); // (layer, head, previous-token score, induction score)
    for layer in 0..cfg.n_layers {
        let pattern = cache.get(&format!("blocks.{layer}.attn.hook_pattern"))?;
        let prev = previous_token_scores(pattern)?;
        let duplicate = duplicate_token_scores(pattern, HALF)?;
        let induction = induction_scores(pattern, HALF)?;
        for head in 0..cfg.n_heads {
            println!(
                "L{layer}H{head}   {:>14.2}   {:>15.2}   {:>9.2}",
                prev[head], duplicate[head], induction[head]
            );
            heads.push((layer, head, prev[head], induction[head]));
        }
    }
    let best = |score: fn(&(usize, usize, f32, f32)) -> f32| {
        let h = heads.iter().max_by(|a, b| score(a).total_cmp(&score(b)));
        h.map(|&(layer, head, ..)| (layer, head))
            .ok_or("the model has no heads")
    };
    let best_induction = best(|h| h.3)?;
    let best_prev = best(|h| h.2)?;
    let all_above = |score: fn(&(usize, usize, f32, f32)) -> f32, min: f32| -> Vec<_> {
        let above = heads.iter().filter(|h| score(h) > min);
        above.map(|&(layer, head, ..)| (layer, head)).collect()
    };

    // (c) Zero heads' outputs with hooks and compare the loss on the repeat (the
    // predictions of x2..xN made at the second copy of x1..xN-1).
    let repeat_loss = |logits: &Tensor| loss(logits, &tokens, HALF + 1, HALF - 1);
    println!(
        "\nloss on the first copy: {:.3} nats/token (uniform guess over {} tokens: {:.3})",
        loss(&logits, &tokens, 0, HALF)?,
        cfg.vocab_size - 1,
        ((cfg.vocab_size - 1) as f32).ln()
    );
    println!("loss on the repeat:     {:.3} clean", repeat_loss(&logits)?);
    let cases = [
        ("the best induction head", vec![best_induction]),
        (
            "every head with induction score > 0.3",
            all_above(|h| h.3, 0.3),
        ),
        ("the best previous-token head", vec![best_prev]),
        (
            "every head with previous-token score > 0.2",
            all_above(|h| h.2, 0.2),
        ),
    ];
    for (what, zeroed) in cases {
        let logits = ablated(&model, &tokens, &zeroed)?;
        let names: Vec<String> = zeroed.iter().map(|(l, h)| format!("L{l}H{h}")).collect();
        println!(
            "                        {:.3} with {} zeroed ({what})",
            repeat_loss(&logits)?,
            names.join(", ")
        );
    }

    // (d) Stop early: only block 0 runs; nothing after its last hook point is computed.
    let early = model.run_with_cache_stop_at("blocks.0.**", |m| m.forward(&tokens, None))?;
    println!(
        "\nstop_at blocks.0.**: cached {} activations, the last {:?}; block 1 ran: {}",
        early.len(),
        early.names().last().unwrap_or_default(),
        early.names().any(|n| n.starts_with("blocks.1."))
    );

    // (e) A misspelled hook name is an error that names the nearest hook points.
    let typo = Hooks::new().add("blocks.1.attn.hook_patern", |_, _| ());
    if let Err(e) = model.run_with_hooks(typo, |m| m.forward(&tokens, None)) {
        println!("\na misspelled name: {e}");
    }
    Ok(())
}
