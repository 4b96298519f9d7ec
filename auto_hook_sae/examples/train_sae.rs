//! Trains a topk SAE on `blocks.0.hook_resid_post` of the embedded induction model
//! (`models/induction-2l`, sequences `[BOS] x1..x15 x1..x15` of random tokens), saves it
//! in SAELens's format, evaluates it on held-out sequences, and lists the latents that
//! fire on the repeated half but not on the first.
//!
//! cargo run --release -p auto_hook_sae --example train_sae [-- OUTPUT_FOLDER]

use auto_hook_models::induction::repeated_tokens;
use auto_hook_models::HookedTransformer;
use auto_hook_sae::*;
use candle_core::{DType, Device, Tensor};
use std::path::{Path, PathBuf};

const HOOK: &str = "blocks.0.hook_resid_post";
const HALF: usize = 15;

fn forward(m: &HookedTransformer, ids: &Tensor) -> candle_core::Result<Tensor> {
    m.forward(ids, None)
}

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out: PathBuf = std::env::args()
        .nth(1)
        .map_or_else(|| root.join("target/sae/induction-2l-topk"), PathBuf::from);
    let model = auto_hook_models::load(root.join("models/induction-2l"), DType::F32, &Device::Cpu)?;
    let vocab = model.config().vocab_size;
    let context = 1 + 2 * HALF;
    let train_ids = repeated_tokens(8192, HALF, vocab, 1)?;
    let tokens = TokenSource::from_tensor(&train_ids, context, None)?;

    let mut sae = SaeConfig::new(64, 256, Architecture::TopK { k: 8 }).with_hook(HOOK);
    sae.metadata.model_name = Some("induction-2l".into());
    sae.metadata.context_size = Some(context);
    sae.metadata.prepend_bos = Some(true);
    let mut cfg = SaeTrainConfig::new(sae);
    cfg.lr = 2e-3;
    cfg.lr_warm_up_steps = 50;
    cfg.lr_scheduler = LrSchedule::Cosine;
    cfg.dead_feature_window = 200;
    let store = StoreConfig {
        store_batch_size_prompts: 64,
        n_batches_in_buffer: 16,
        train_batch_size_tokens: 2048,
        seed: 7,
        ..Default::default()
    };
    let run = TrainRunConfig {
        total_training_steps: 1500,
        progress: true,
        ..Default::default()
    };
    let start = std::time::Instant::now();
    let mut trainer = Trainer::new(&model, forward, tokens, store, vec![cfg], run)?;
    let trained = trainer.train()?.remove(0);
    let seconds = start.elapsed().as_secs_f64();
    let tokens_seen = 1500 * 2048;
    println!(
        "trained {} steps x 2048 tokens in {seconds:.1} s ({:.0} tokens/s)",
        1500,
        tokens_seen as f64 / seconds
    );
    trained.save(&out)?;
    println!("saved to {}", out.display());

    let sae = Sae::load(&out, &Device::Cpu)?;
    let held_out = repeated_tokens(256, HALF, vocab, 2)?;
    let cache = {
        use auto_hook::HookedRoot;
        model.run_with_cache_stop_at(HOOK, |m| forward(m, &held_out))?
    };
    let resid = cache.get(HOOK)?;
    let m = reconstruction_metrics(&sae, resid, 0.1)?;
    println!(
        "held out: L0 {:.2}, explained variance {:.3}, MSE {:.4}, dead {} / {}, dense {}",
        m.l0,
        m.explained_variance,
        m.mse,
        m.dead,
        sae.cfg().d_sae,
        m.dense
    );
    let s = downstream_scores(&model, &sae, HOOK, &held_out, forward)?;
    println!(
        "CE clean {:.3}, with SAE {:.3}, zero-ablated {:.3}: ce_loss_score {:.3}; KL score {:.3}",
        s.ce_clean, s.ce_sae, s.ce_zero, s.ce_loss_score, s.kl_score
    );
    repeat_latents(&sae, resid)?;
    Ok(())
}

/// Latents that fire on the repeated half (positions HALF+1..) and rarely on the first.
fn repeat_latents(sae: &Sae, resid: &Tensor) -> auto_hook_sae::Result<()> {
    let acts = sae.encode(resid)?; // [batch, pos, d_sae]
    let on = |from: usize| -> auto_hook_sae::Result<Vec<f32>> {
        let part = acts.narrow(1, from, HALF)?.ne(0.0)?.to_dtype(DType::F32)?;
        Ok(part.mean(0)?.mean(0)?.to_vec1::<f32>()?)
    };
    let (first, second) = (on(1)?, on(1 + HALF)?);
    let mut latents: Vec<usize> = (0..first.len()).collect();
    latents.sort_by(|&a, &b| (second[b] - first[b]).total_cmp(&(second[a] - first[a])));
    println!("latents firing on the repeated half (fraction of tokens firing):");
    println!("latent | first half | repeated half");
    for &i in latents.iter().take(6) {
        println!("{i:6} | {:10.3} | {:13.3}", first[i], second[i]);
    }
    let selective = latents
        .iter()
        .filter(|&&i| second[i] > 0.2 && first[i] < 0.02)
        .count();
    println!("{selective} latents fire on >20% of repeated tokens and <2% of first-half tokens");
    Ok(())
}
