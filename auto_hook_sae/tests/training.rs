//! The training loop on a real model: several SAEs from one stream, deterministic,
//! resumable, with clear errors; evaluation with the SAE spliced in.

use auto_hook::prelude::*;
use auto_hook_models::induction::repeated_tokens;
use auto_hook_models::HookedTransformer;
use auto_hook_sae::*;
use candle_core::{DType, Device, Tensor};
use std::path::Path;

fn model() -> HookedTransformer {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/induction-2l");
    auto_hook_models::load(dir, DType::F32, &Device::Cpu).unwrap()
}

fn forward(m: &HookedTransformer, ids: &Tensor) -> candle_core::Result<Tensor> {
    m.forward(ids, None)
}

fn tokens() -> TokenSource {
    TokenSource::from_tensor(&repeated_tokens(64, 10, 64, 1).unwrap(), 21, None).unwrap()
}

fn store() -> StoreConfig {
    StoreConfig {
        store_batch_size_prompts: 8,
        n_batches_in_buffer: 2,
        train_batch_size_tokens: 84,
        ..Default::default()
    }
}

fn configs() -> Vec<SaeTrainConfig> {
    let topk = SaeTrainConfig::new(
        SaeConfig::new(64, 128, Architecture::TopK { k: 4 }).with_hook("blocks.0.hook_resid_post"),
    );
    let mut standard = SaeTrainConfig::new(
        SaeConfig::new(64, 96, Architecture::Standard).with_hook("blocks.0.hook_resid_post"),
    );
    standard.l1_warm_up_steps = 3;
    let mut z = SaeConfig::new(64, 64, Architecture::JumpRelu).with_hook("blocks.0.attn.hook_z");
    z.reshape_hook_z = true;
    z.normalize_activations = Normalization::ExpectedAverageOnlyIn;
    vec![topk, standard, SaeTrainConfig::new(z)]
}

fn run(steps: usize) -> TrainRunConfig {
    TrainRunConfig {
        total_training_steps: steps,
        n_batches_for_norm_estimate: 2,
        ..Default::default()
    }
}

fn weights(saes: &[TrainedSae]) -> Vec<Vec<f32>> {
    saes.iter()
        .map(|t| {
            t.sae
                .w_dec()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        })
        .collect()
}

#[test]
fn several_saes_train_from_one_stream_deterministically() {
    let model = model();
    let train = || {
        let mut t = Trainer::new(&model, forward, tokens(), store(), configs(), run(6)).unwrap();
        t.train().unwrap()
    };
    let (a, b) = (train(), train());
    assert_eq!(a.len(), 3);
    assert_eq!(weights(&a), weights(&b), "same seeds, same weights");
    assert!(a.iter().all(|t| t.last.loss.is_finite() && t.last.l0 > 0.0));
    // The scale was folded in when exporting: the z SAE reads raw activations.
    assert_eq!(a[2].sae.cfg().normalize_activations, Normalization::None);
    let dir = std::env::temp_dir().join(format!("auto_hook_sae_trained_{}", std::process::id()));
    a[0].save(&dir).unwrap();
    let back = Sae::load(&dir, &Device::Cpu).unwrap();
    assert_eq!(
        back.cfg().metadata.hook_name.as_deref(),
        Some("blocks.0.hook_resid_post")
    );
    assert!(dir.join("sparsity.safetensors").exists());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_resumed_run_ends_where_an_uninterrupted_one_does() {
    let model = model();
    let dir = std::env::temp_dir().join(format!("auto_hook_sae_ckpt_{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let straight = Trainer::new(&model, forward, tokens(), store(), configs(), run(8))
        .unwrap()
        .train()
        .unwrap();
    let cfg = TrainRunConfig {
        checkpoint_every: Some(4),
        checkpoint_dir: Some(dir.clone()),
        ..run(8)
    };
    let mut first = Trainer::new(&model, forward, tokens(), store(), configs(), cfg).unwrap();
    for _ in 0..5 {
        first.step().unwrap(); // stops after step 5: the checkpoint is from step 4
    }
    drop(first);
    let mut resumed = Trainer::new(&model, forward, tokens(), store(), configs(), run(8)).unwrap();
    resumed.resume(dir.join("step_4")).unwrap();
    assert_eq!(resumed.steps_done(), 4);
    let resumed = resumed.train().unwrap();
    assert_eq!(weights(&straight), weights(&resumed));
    assert!(dir.join("step_4/sae_0/cfg.json").exists());
    // Checkpoints written before named keys (`sae.{i}.var.{j}`, `sae.{i}.adam_m.{j}`,
    // the store's numbers as `[cursor, rng, served, tokens_seen]`) resume the same way.
    let state = dir.join("step_4/trainer_state.safetensors");
    let tensors = candle_core::safetensors::load(&state, &Device::Cpu).unwrap();
    assert!(tensors.contains_key("sae.2.threshold") && tensors.contains_key("sae.0.adam_v.W_dec"));
    let legacy: std::collections::HashMap<String, Tensor> = tensors
        .into_iter()
        .map(|(key, t)| (legacy_key(&key), t))
        .collect();
    assert!(legacy.contains_key("sae.2.var.4") && legacy.contains_key("sae.0.adam_v.2"));
    candle_core::safetensors::save(&legacy, &state).unwrap();
    let json_path = dir.join("step_4/trainer_state.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    let nums = json["store"].clone();
    let names = ["cursor", "rng", "served", "tokens_seen"];
    assert!(names.iter().all(|n| nums[n].is_u64()), "{nums}");
    json["store"] = names.iter().map(|n| nums[n].clone()).collect();
    std::fs::write(&json_path, json.to_string()).unwrap();
    let mut old = Trainer::new(&model, forward, tokens(), store(), configs(), run(8)).unwrap();
    old.resume(dir.join("step_4")).unwrap();
    assert_eq!(weights(&straight), weights(&old.train().unwrap()));
    std::fs::remove_dir_all(&dir).ok();
}

/// A named checkpoint key in the numbering used before names: `var.{j}` for weights,
/// `adam_m.{j}` / `adam_v.{j}` for Adam's moments.
fn legacy_key(key: &str) -> String {
    let (head, name) = key.rsplit_once('.').unwrap();
    match SaeParams::<()>::NAMES.iter().position(|n| *n == name) {
        Some(j) if head.ends_with("adam_m") || head.ends_with("adam_v") => format!("{head}.{j}"),
        Some(j) => format!("{head}.var.{j}"),
        None => key.to_owned(),
    }
}

#[test]
fn a_checkpoint_of_other_saes_is_refused() {
    let model = model();
    let dir = std::env::temp_dir().join(format!("auto_hook_sae_ckpt_other_{}", std::process::id()));
    let t = Trainer::new(&model, forward, tokens(), store(), configs(), run(2)).unwrap();
    t.save_checkpoint(&dir).unwrap();
    let mut other = Trainer::new(
        &model,
        forward,
        tokens(),
        store(),
        configs()[..2].to_vec(),
        run(2),
    )
    .unwrap();
    let err = other.resume(&dir).unwrap_err().to_string();
    assert!(
        err.contains("the checkpoint has 3 SAEs, this trainer 2"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_d_in_that_differs_from_the_hook_width_is_named() {
    let model = model();
    let bad = vec![SaeTrainConfig::new(
        SaeConfig::new(32, 64, Architecture::Standard).with_hook("blocks.0.hook_resid_post"),
    )];
    let mut t = Trainer::new(&model, forward, tokens(), store(), bad, run(2)).unwrap();
    let err = t.step().unwrap_err().to_string();
    assert_eq!(
        err,
        "hook `blocks.0.hook_resid_post` gives activations of width 64, but the SAE has d_in = 32"
    );
}

#[test]
fn an_empty_batch_is_an_error_for_every_architecture() {
    for arch in [
        Architecture::Standard,
        Architecture::TopK { k: 2 },
        Architecture::BatchTopK { k: 2.0 },
        Architecture::JumpRelu,
    ] {
        let cfg = SaeTrainConfig::new(SaeConfig::new(8, 16, arch).with_hook("h"));
        let mut t = SaeTrainer::new(cfg, &Device::Cpu).unwrap();
        let empty = Tensor::zeros((0, 8), DType::F32, &Device::Cpu).unwrap();
        let err = t.step(&empty, 0, 10).unwrap_err().to_string();
        assert!(err.contains("empty training batch"), "{arch:?}: {err}");
    }
}

#[test]
fn bad_training_settings_are_refused_before_any_work() {
    let model = model();
    let no_hook = vec![SaeTrainConfig::new(SaeConfig::new(
        64,
        64,
        Architecture::Standard,
    ))];
    let err = Trainer::new(&model, forward, tokens(), store(), no_hook, run(2))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("hook_name is not set"), "{err}");
    let mut warm = configs();
    warm[0].lr_warm_up_steps = 10;
    let err = Trainer::new(&model, forward, tokens(), store(), warm, run(5))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("exceeds the 5 training steps"), "{err}");
    let big_k = vec![SaeTrainConfig::new(
        SaeConfig::new(64, 16, Architecture::TopK { k: 17 }).with_hook("blocks.0.hook_resid_post"),
    )];
    let err = Trainer::new(&model, forward, tokens(), store(), big_k, run(2))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("k = 17 must be between 1 and d_sae = 16"),
        "{err}"
    );
}

/// relu(x) - relu(-x) = x: a standard SAE with W_enc = [I, -I], W_dec = [I; -I]
/// reconstructs exactly.
fn exact_sae(d: usize) -> Sae {
    let eye = Tensor::eye(d, DType::F32, &Device::Cpu).unwrap();
    let w_enc = Tensor::cat(&[&eye, &eye.neg().unwrap()], 1).unwrap();
    let w_dec = w_enc.t().unwrap().contiguous().unwrap();
    let z = |n| Tensor::zeros(n, DType::F32, &Device::Cpu).unwrap();
    Sae::new(
        SaeConfig::new(d, 2 * d, Architecture::Standard),
        w_enc,
        z(2 * d),
        w_dec,
        z(d),
        None,
    )
    .unwrap()
}

#[test]
fn downstream_scores_are_one_for_an_exact_sae_and_zero_for_a_zero_one() {
    let model = model();
    let held_out = repeated_tokens(16, 10, 64, 99).unwrap();
    let hook = "blocks.0.hook_resid_post";
    let exact = downstream_scores(&model, &exact_sae(64), hook, &held_out, forward).unwrap();
    assert!((exact.ce_loss_score - 1.0).abs() < 1e-3, "{exact:?}");
    assert!((exact.kl_score - 1.0).abs() < 1e-3, "{exact:?}");
    assert!(
        exact.ce_zero > exact.ce_clean + 0.5,
        "zeroing the residual stream hurts: {exact:?}"
    );
    let z = |s: &[usize]| Tensor::zeros(s, DType::F32, &Device::Cpu).unwrap();
    let zero = Sae::new(
        SaeConfig::new(64, 8, Architecture::Standard),
        z(&[64, 8]),
        z(&[8]),
        z(&[8, 64]),
        z(&[64]),
        None,
    )
    .unwrap();
    let zeroed = downstream_scores(&model, &zero, hook, &held_out, forward).unwrap();
    assert!(
        zeroed.ce_loss_score.abs() < 1e-3 && zeroed.kl_score.abs() < 1e-3,
        "{zeroed:?}"
    );
    let m = reconstruction_metrics(
        &exact_sae(64),
        &Tensor::randn(0f32, 1.0, (50, 64), &Device::Cpu).unwrap(),
        0.1,
    )
    .unwrap();
    assert!(
        m.mse < 1e-10 && (m.explained_variance - 1.0).abs() < 1e-6 && (m.l0 - 64.0).abs() < 1e-9
    );
    assert_eq!((m.dead, m.dense), (0, 128));
}

#[test]
fn a_short_run_caps_the_dead_window_at_a_quarter_of_it() {
    // One repeated row: each step fires one latent of 64, the others stay silent.
    let cfg =
        SaeTrainConfig::new(SaeConfig::new(8, 64, Architecture::TopK { k: 1 }).with_hook("x"));
    assert_eq!(cfg.dead_feature_window, 1000);
    let mut trainer = SaeTrainer::new(cfg, &Device::Cpu).unwrap();
    let x = Tensor::randn(0f32, 1.0, (1, 8), &Device::Cpu)
        .unwrap()
        .repeat((16, 1))
        .unwrap();
    let total = 40;
    let dead: Vec<usize> = (0..total)
        .map(|step| trainer.step(&x, step, total).unwrap().dead)
        .collect();
    // Window min(1000, 40 / 4) = 10: nothing is dead before step 10, most latents after.
    assert!(dead[..10].iter().all(|&d| d == 0), "{dead:?}");
    assert!(dead[total - 1] >= 32, "{dead:?}");
}

#[test]
fn a_transcoder_trains_on_pairs_from_one_stopped_forward() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let mut model = model();
    let later = Arc::new(AtomicUsize::new(0));
    let counter = later.clone();
    model
        .add_hook("blocks.1.hook_resid_mid", move |_, _| {
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    // Block 0's MLP with its residual: from resid_mid to the next block's input.
    let arch = Architecture::Transcoder {
        jumprelu: false,
        skip: true,
    };
    let sae = SaeConfig::new(64, 128, arch)
        .with_hook("blocks.0.hook_resid_mid")
        .with_hook_out("blocks.1.hook_resid_pre", 64);
    let mut cfg = SaeTrainConfig::new(sae);
    cfg.lr = 3e-3;
    let mut trainer = Trainer::new(&model, forward, tokens(), store(), vec![cfg], run(40)).unwrap();
    let first = trainer.step().unwrap()[0];
    let trained = trainer.train().unwrap();
    let last = trained[0].last;
    assert!(
        last.mse_loss < 0.5 * first.mse_loss,
        "{first:?} -> {last:?}"
    );
    assert!(last.explained_variance > 0.5, "{last:?}");
    // Both hooks come from forwards stopped at the later one (block 1 never ran).
    assert_eq!(later.load(Ordering::SeqCst), 0);
    assert_eq!(
        trained[0].sae.hook_name_out(),
        Some("blocks.1.hook_resid_pre")
    );
    // Without an output hook a transcoder is refused, typed.
    let sae = SaeConfig::new(64, 128, arch).with_hook("blocks.0.hook_resid_mid");
    let mut sae = sae;
    sae.apply_b_dec_to_input = false;
    let err = Trainer::new(
        &model,
        forward,
        tokens(),
        store(),
        vec![SaeTrainConfig::new(sae)],
        run(4),
    )
    .err()
    .expect("refused");
    assert!(err.to_string().contains("hook_name_out"), "{err}");
}

/// Gated, matryoshka and a skip transcoder: architectures with their own parameters
/// (`b_gate`, `r_mag`, `b_mag`, `W_skip`) and a second hook in the store.
fn newer_configs() -> Vec<SaeTrainConfig> {
    let gated = SaeTrainConfig::new(
        SaeConfig::new(64, 96, Architecture::Gated).with_hook("blocks.0.hook_resid_post"),
    );
    let mut matryoshka = SaeTrainConfig::new(
        SaeConfig::new(64, 96, Architecture::MatryoshkaBatchTopK { k: 4.0 })
            .with_hook("blocks.0.hook_resid_post"),
    );
    matryoshka.matryoshka_widths = vec![16, 48];
    let arch = Architecture::Transcoder {
        jumprelu: true,
        skip: true,
    };
    let transcoder = SaeTrainConfig::new(
        SaeConfig::new(64, 96, arch)
            .with_hook("blocks.0.hook_resid_mid")
            .with_hook_out("blocks.1.hook_resid_pre", 64),
    );
    vec![gated, matryoshka, transcoder]
}

/// Every trained parameter of every SAE, flattened, by name.
fn all_params(saes: &[TrainedSae]) -> Vec<(String, Vec<f32>)> {
    saes.iter()
        .flat_map(|t| {
            t.sae
                .params()
                .iter()
                .map(|(n, v)| (n.to_owned(), v.clone()))
                .collect::<Vec<_>>()
        })
        .map(|(n, v)| (n, v.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
        .collect()
}

#[test]
fn newer_architectures_resume_bit_identically() {
    let model = model();
    let dir = std::env::temp_dir().join(format!("auto_hook_sae_ckpt_new_{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let new = |cfg| Trainer::new(&model, forward, tokens(), store(), newer_configs(), cfg).unwrap();
    let straight = new(run(8)).train().unwrap();
    let mut first = new(TrainRunConfig {
        checkpoint_every: Some(4),
        checkpoint_dir: Some(dir.clone()),
        ..run(8)
    });
    for _ in 0..5 {
        first.step().unwrap();
    }
    drop(first);
    let state =
        candle_core::safetensors::load(dir.join("step_4/trainer_state.safetensors"), &Device::Cpu)
            .unwrap();
    for key in [
        "sae.0.b_gate",
        "sae.0.adam_m.r_mag",
        "sae.2.W_skip",
        "sae.2.threshold",
    ] {
        assert!(state.contains_key(key), "{key} not in the checkpoint");
    }
    let mut resumed = new(run(8));
    resumed.resume(dir.join("step_4")).unwrap();
    let resumed = resumed.train().unwrap();
    assert_eq!(all_params(&straight), all_params(&resumed));
    std::fs::remove_dir_all(&dir).ok();
}
