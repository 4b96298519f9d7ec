//! Causal tracing (Meng et al. 2022): Gaussian noise on the subject's token embeddings
//! (3 × the embeddings' standard deviation, fixed draws), then the residual stream of
//! the clean run restored at one layer and position at a time; the heatmap shows where
//! restoring brings the answer's probability back. Writes `causal_tracing_*.{png,svg}`.
//!
//! cargo run --release -p auto_hook_analysis --example causal_tracing [MODEL]

mod common;

use auto_hook::prelude::*;
use auto_hook::rng::Rng;
use auto_hook_analysis::{Heatmap, Metric, Patching};
use candle_core::{Device, Tensor, D};
use common::Res;

/// `(prompt, subject, answer)`.
const FACTS: [(&str, &str, &str); 3] = [
    (
        "The Eiffel Tower is located in the city of",
        "The Eiffel Tower",
        " Paris",
    ),
    (
        "The Space Needle is located in the city of",
        "The Space Needle",
        " Seattle",
    ),
    (
        "The Colosseum is located in the city of",
        "The Colosseum",
        " Rome",
    ),
];

fn main() -> Res<()> {
    let (model, _) = common::load()?;
    let tok = common::text(&model)?;
    let started = std::time::Instant::now();
    let w_e = model.w_e()?;
    let sigma = w_e.flatten_all()?.var(0)?.sqrt()?.to_scalar::<f32>()?;
    let dir = common::figures()?;
    for (n, (prompt, subject, answer)) in FACTS.into_iter().enumerate() {
        let ids = common::encode(tok, prompt)?;
        let n_subject = common::encode(tok, subject)?.len();
        let answer_id = common::encode(tok, answer)?[0] as usize;
        let tokens = common::ids(&ids)?;
        let (len, d) = (ids.len(), model.config().d_model);
        // Fixed noise on the subject's positions, zero elsewhere.
        let mut rng = Rng::new(7 + n as u64);
        let noise: Vec<f32> = (0..len * d)
            .map(|i| {
                if i / d < n_subject {
                    3.0 * sigma * rng.normal() as f32
                } else {
                    0.0
                }
            })
            .collect();
        let noise = Tensor::from_vec(noise, (1, len, d), &Device::Cpu)?;
        let prob = move |logits: &Tensor| -> candle_core::Result<f32> {
            let last = logits.get(0)?.get(logits.dim(1)? - 1)?;
            candle_nn::ops::softmax(&last, D::Minus1)?
                .get(answer_id)?
                .to_scalar::<f32>()
        };
        let (clean_logits, cache) =
            model.run_with_cache("blocks.*.hook_resid_pre", |m| m.forward(&tokens, None))?;
        let patching = Patching::new(&model, &tokens, &cache, Metric::logits(prob))
            .corrupt_with(|h| {
                let noise = noise.clone();
                h.add("hook_embed", move |x, _| x + &noise)
            })
            .pos_labels(
                ids.iter()
                    .enumerate()
                    .map(|(i, &t)| {
                        let s = common::show(tok, t);
                        if i < n_subject {
                            format!("{s}*")
                        } else {
                            s
                        }
                    })
                    .collect(),
            );
        let corrupted = patching.baseline()?;
        let grid = patching.resid_pre_by_pos()?;
        println!("{prompt:?} -> {answer:?} (subject {subject:?}, {n_subject} tokens noised, sigma {sigma:.4}):");
        println!(
            "  p(answer) clean {:.4}, noised {corrupted:.4}",
            prob(&clean_logits)?
        );
        let rows = grid.to_rows()?;
        let last_subject = n_subject - 1;
        let best = |pos: usize| {
            rows.iter()
                .enumerate()
                .map(|(l, r)| (l, r[pos]))
                .fold((0, f32::MIN), |a, b| if b.1 > a.1 { b } else { a })
        };
        let (l_s, p_s) = best(last_subject);
        let (l_e, p_e) = best(len - 1);
        println!("  restoring the last subject token: best at layer {l_s}, p {p_s:.4}; the last token: best at layer {l_e}, p {p_e:.4}");
        let early: Vec<String> = (0..rows.len())
            .step_by(3)
            .map(|l| format!("L{l} {:.3}/{:.3}", rows[l][last_subject], rows[l][len - 1]))
            .collect();
        println!(
            "  p after restoring (last subject token / last token) by layer: {}",
            early.join(", ")
        );
        let name = format!(
            "causal_tracing_{}",
            subject
                .split_whitespace()
                .last()
                .unwrap_or("fact")
                .to_lowercase()
        );
        for ext in ["png", "svg"] {
            Heatmap::from_labelled(
                &grid.transpose()?,
                &format!(
                    "causal tracing: p({}) restoring the residual stream",
                    answer.trim()
                ),
            )?
            .write(dir.join(format!("{name}.{ext}")))?;
        }
    }
    println!(
        "figures in {}; {:.1} s",
        dir.display(),
        started.elapsed().as_secs_f32()
    );
    Ok(())
}
