//! The logit lens (nostalgebraist 2020) on factual prompts: at which layer the answer
//! becomes the top token at the last position. Writes `logit_lens.{png,svg}` (the
//! answer's probability per layer) and `logit_lens_rank.{png,svg}`.
//!
//! cargo run --release -p auto_hook_analysis --example logit_lens [MODEL]

mod common;

use auto_hook::prelude::*;
use auto_hook_analysis::{token_ranks, top_tokens, CacheAnalysis, LinePlot, PosSlice};
use candle_core::{DType, Tensor, D};
use common::Res;

const FACTS: [(&str, &str); 6] = [
    ("The capital of France is", " Paris"),
    ("The capital of Germany is", " Berlin"),
    ("The capital of Japan is", " Tokyo"),
    ("The Eiffel Tower is located in the city of", " Paris"),
    ("The largest planet in the solar system is", " Jupiter"),
    ("Water is made of hydrogen and", " oxygen"),
];

fn main() -> Res<()> {
    let (model, _) = common::load()?;
    let tok = common::text(&model)?;
    let started = std::time::Instant::now();
    let n_layers = model.config().n_layers;
    let (mut probs, mut ranks) = (Vec::new(), Vec::new());
    for (prompt, answer) in FACTS {
        let ids = common::ids(&common::encode(tok, prompt)?)?;
        let answer_id = common::encode(tok, answer)?[0];
        let (logits, cache) =
            model.run_with_cache(CacheOptions::all(), |m| m.forward(&ids, None))?;
        let lens = CacheAnalysis::new(&model, &cache).logit_lens(PosSlice::Last)?; // [layer+1, 1, 1, vocab]
        let answer_t = Tensor::new(&[answer_id], ids.device())?;
        let rank: Vec<u32> = token_ranks(lens.tensor(), &answer_t)?
            .flatten_all()?
            .to_vec1()?;
        let p = candle_nn::ops::softmax(&lens.tensor().to_dtype(DType::F32)?, D::Minus1)?;
        let p: Vec<f32> = p
            .narrow(3, answer_id as usize, 1)?
            .flatten_all()?
            .to_vec1()?;
        let first_top = rank.iter().position(|&r| r == 0);
        let top = top_tokens(&logits.get(0)?.get(ids.dim(1)? - 1)?, 3)?;
        let top: Vec<String> = top
            .iter()
            .map(|(t, p)| format!("{:?} {p:.2}", common::show(tok, *t)))
            .collect();
        println!("{prompt:?} -> {answer:?}: model's top 3 {}", top.join(", "));
        match first_top {
            Some(l) => println!(
                "  top token from {} on (layers 0..{n_layers}; {n_layers} = final)",
                lens.axis("component")?.labels[l]
            ),
            None => println!(
                "  never the top token; best rank {} at {}",
                rank.iter().min().unwrap_or(&0),
                lens.axis("component")?.labels[rank
                    .iter()
                    .enumerate()
                    .min_by_key(|r| r.1)
                    .map_or(0, |r| r.0)]
            ),
        }
        let shown: Vec<String> = rank
            .iter()
            .zip(&p)
            .map(|(r, p)| format!("{r}/{p:.2}"))
            .collect();
        println!("  rank/probability by layer input: {}", shown.join(" "));
        probs.push((
            answer.trim().to_owned() + " (" + &prompt[..prompt.len().min(24)] + "..)",
            p,
        ));
        ranks.push((
            answer.trim().to_owned(),
            rank.iter()
                .map(|&r| ((r + 1) as f32).log10())
                .collect::<Vec<_>>(),
        ));
    }
    let x: Vec<String> = (0..n_layers)
        .map(|l| l.to_string())
        .chain(["final".to_owned()])
        .collect();
    let dir = common::figures()?;
    for ext in ["png", "svg"] {
        LinePlot {
            title: "logit lens: probability of the answer".into(),
            x: x.clone(),
            x_name: "residual stream entering layer".into(),
            y_name: "probability".into(),
            series: probs.clone(),
        }
        .write(dir.join(format!("logit_lens.{ext}")))?;
        LinePlot {
            title: "logit lens: log10(rank + 1) of the answer".into(),
            x: x.clone(),
            x_name: "residual stream entering layer".into(),
            y_name: "log10(rank + 1)".into(),
            series: ranks.clone(),
        }
        .write(dir.join(format!("logit_lens_rank.{ext}")))?;
    }
    println!(
        "figures in {}; {:.1} s",
        dir.display(),
        started.elapsed().as_secs_f32()
    );
    Ok(())
}
