//! Induction heads (Olsson et al. 2022): induction and previous-token scores of every
//! head on repeated random tokens, the loss on the repeated half, and the loss after
//! ablating the top induction heads. Writes `induction_scores.{png,svg}`.
//!
//! cargo run --release -p auto_hook_analysis --example induction_heads [MODEL]

mod common;

use auto_hook::prelude::*;
use auto_hook_analysis::{ablate_heads, Ablation, Axis, Heatmap, Labelled};
use auto_hook_models::induction::{induction_scores, previous_token_scores, repeated_tokens};
use auto_hook_models::{next_token_log_probs, HookedTransformer, Positions};
use candle_core::{Device, Tensor};
use common::Res;

const BATCH: usize = 8;

/// Mean next-token loss (nats) on the repeated half (predictions of tokens 2..=half of the repeat).
fn repeat_loss(logits: &Tensor, tokens: &Tensor, half: usize) -> Res<f32> {
    let log_probs = next_token_log_probs(logits, tokens)?.narrow(1, half + 1, half - 1)?;
    Ok(-log_probs.mean_all()?.to_scalar::<f32>()?)
}

fn first_half_loss(logits: &Tensor, tokens: &Tensor, half: usize) -> Res<f32> {
    let log_probs = next_token_log_probs(logits, tokens)?.narrow(1, 1, half - 1)?;
    Ok(-log_probs.mean_all()?.to_scalar::<f32>()?)
}

fn grid(model: &HookedTransformer, rows: Vec<Vec<f32>>) -> Res<Labelled> {
    let (layers, heads) = (model.config().n_layers, model.config().n_heads);
    let t = Tensor::new(rows, &Device::Cpu)?;
    Ok(Labelled::new(
        t,
        vec![Axis::indices("layer", layers), Axis::indices("head", heads)],
    )?)
}

fn main() -> Res<()> {
    let (model, _) = common::load()?;
    let started = std::time::Instant::now();
    let vocab = model.config().vocab_size;
    // 20 tokens per copy, fewer when learned positions do not reach 41.
    let half = match model.config().positions {
        Positions::Learned { n_ctx } => ((n_ctx - 1) / 2).min(20),
        Positions::Rotary { .. } => 20,
    };
    // Random tokens from the lower ids of the vocabulary (ids past 1000 in a BPE
    // vocabulary are mostly rare pieces), [BOS] x1..xN x1..xN.
    let tokens = repeated_tokens(BATCH, half, vocab.min(10_000), 42)?;
    let (logits, cache) =
        model.run_with_cache("blocks.*.attn.hook_pattern", |m| m.forward(&tokens, None))?;
    let (mut induction, mut previous) = (Vec::new(), Vec::new());
    for layer in 0..model.config().n_layers {
        let pattern = cache.get(&format!("blocks.{layer}.attn.hook_pattern"))?;
        induction.push(induction_scores(pattern, half)?);
        previous.push(previous_token_scores(pattern)?);
    }
    let induction = grid(&model, induction)?;
    let previous = grid(&model, previous)?;
    println!("{BATCH} sequences of [BOS] + {half} random tokens + the same {half}");
    println!("top induction heads (score = attention to the token after the current token's first occurrence):");
    let top = induction.top(10)?;
    for (labels, score) in &top {
        let (l, h): (usize, usize) = (labels[0].parse()?, labels[1].parse()?);
        println!(
            "  L{l}H{h}: induction {score:.3}, previous-token {:.3}",
            previous.value(&[l, h])?
        );
    }
    println!("top previous-token heads:");
    for (labels, score) in previous.top(5)? {
        println!("  L{}H{}: {score:.3}", labels[0], labels[1]);
    }
    let n_induction = induction
        .to_rows()?
        .iter()
        .flatten()
        .filter(|&&s| s > 0.4)
        .count();
    println!(
        "heads with induction score > 0.4: {n_induction} of {}",
        model.config().n_layers * model.config().n_heads
    );
    println!(
        "loss, first half (unpredictable): {:.3} nats/token",
        first_half_loss(&logits, &tokens, half)?
    );
    println!(
        "loss, repeated half:               {:.3}",
        repeat_loss(&logits, &tokens, half)?
    );
    let reference = cache_z(&model, &tokens)?;
    for k in [1usize, 5, 10] {
        let heads: Vec<(usize, usize)> = top
            .iter()
            .take(k)
            .map(|(labels, _)| Ok((labels[0].parse()?, labels[1].parse()?)))
            .collect::<Res<_>>()?;
        for (name, how) in [
            ("zero", Ablation::Zero),
            ("mean", Ablation::Mean(&reference)),
        ] {
            let hooks = ablate_heads(&model, &heads, how)?;
            let ablated = model.run_with_hooks(hooks, |m| m.forward(&tokens, None))?;
            println!(
                "loss, repeated half, top {k:>2} induction heads {name}-ablated: {:.3}",
                repeat_loss(&ablated, &tokens, half)?
            );
        }
    }
    let dir = common::figures()?;
    for ext in ["png", "svg"] {
        Heatmap::from_labelled(&induction, "induction score per head")?
            .write(dir.join(format!("induction_scores.{ext}")))?;
        Heatmap::from_labelled(&previous, "previous-token score per head")?
            .write(dir.join(format!("previous_token_scores.{ext}")))?;
    }
    println!(
        "figures in {}; {:.1} s",
        dir.display(),
        started.elapsed().as_secs_f32()
    );
    Ok(())
}

/// A cache of every `hook_z` on the same tokens, for mean ablation.
fn cache_z(model: &HookedTransformer, tokens: &Tensor) -> Res<ActivationCache> {
    Ok(model
        .run_with_cache("blocks.*.attn.hook_z", |m| m.forward(tokens, None))?
        .1)
}
