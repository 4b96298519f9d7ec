//! Gated and matryoshka_batchtopk SAEs trained here, saved in SAELens's format and
//! loaded back. With `SAE_EXPORT_DIR=<dir>` the saved folders stay in `<dir>` with our
//! outputs (`reference.safetensors`: x, hidden_pre, feature_acts, sae_out) for
//! `scripts/check_saelens_loads.py <dir>`, which loads them with SAELens and compares.

use auto_hook_sae::{
    compare_sae_with_reference, Architecture, Error, Sae, SaeConfig, SaeTrainConfig, SaeTrainer,
};
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::PathBuf;

fn out_dir(name: &str) -> (PathBuf, bool) {
    match std::env::var("SAE_EXPORT_DIR") {
        Ok(dir) => (PathBuf::from(dir).join(name), true),
        Err(_) => {
            let tmp = std::env::temp_dir();
            (
                tmp.join(format!(
                    "auto_hook_sae_export_{name}_{}",
                    std::process::id()
                )),
                false,
            )
        }
    }
}

/// Trains 40 steps on a fixed random batch; the reconstruction loss must fall.
fn trained(arch: Architecture, tweak: impl FnOnce(&mut SaeTrainConfig)) -> (SaeTrainer, Tensor) {
    let mut cfg =
        SaeTrainConfig::new(SaeConfig::new(16, 48, arch).with_hook("blocks.0.hook_resid_post"));
    cfg.lr = 1e-2;
    tweak(&mut cfg);
    let mut t = SaeTrainer::new(cfg, &Device::Cpu).unwrap();
    let x = Tensor::randn(0f32, 1.0, (128, 16), &Device::Cpu).unwrap();
    let first = t.step(&x, 0, 40).unwrap();
    let mut last = first;
    for step in 1..40 {
        last = t.step(&x, step, 40).unwrap();
    }
    assert!(
        last.mse_loss < 0.8 * first.mse_loss,
        "{first:?} -> {last:?}"
    );
    (t, x)
}

/// Saves `sae`, loads it back, checks it against the saved form and writes that form's
/// outputs next to it.
fn round_trip(name: &str, sae: &Sae, x: &Tensor) -> Sae {
    let (dir, keep) = out_dir(name);
    std::fs::remove_dir_all(&dir).ok();
    sae.save(&dir, None).unwrap();
    let back = Sae::load(&dir, &Device::Cpu).unwrap();
    // What is saved: topk-family decoder norms folded, batchtopk as jumprelu.
    let sae = &sae.inference_form().unwrap();
    let (feature_acts, hidden_pre) = sae.encode_with_hidden_pre(x).unwrap();
    let reference = HashMap::from([
        ("x".to_owned(), x.clone()),
        ("hidden_pre".to_owned(), hidden_pre),
        ("feature_acts".to_owned(), feature_acts),
        ("sae_out".to_owned(), sae.forward(x).unwrap()),
    ]);
    for (key, diff) in compare_sae_with_reference(&back, &reference).unwrap() {
        assert!(diff <= 1e-6, "{name}: {key} differs by {diff} after saving");
    }
    if keep {
        candle_core::safetensors::save(&reference, dir.join("reference.safetensors")).unwrap();
    } else {
        std::fs::remove_dir_all(&dir).ok();
    }
    back
}

#[test]
fn gated_trains_saves_and_loads() {
    let (t, x) = trained(Architecture::Gated, |c| c.l1_coefficient = 0.1);
    let sae = t.export().unwrap();
    let back = round_trip("gated", &sae, &x);
    assert_eq!(back.cfg().architecture, Architecture::Gated);
    let names: Vec<&str> = back.params().iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["W_enc", "W_dec", "b_dec", "b_gate", "r_mag", "b_mag"]
    );
    // Training moved the gate's own parameters (they have gradients).
    for name in ["b_gate", "r_mag", "b_mag"] {
        let v = back
            .params()
            .get(name)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap();
        assert!(v.to_scalar::<f32>().unwrap() > 0.0, "{name} still zero");
    }
}

#[test]
fn matryoshka_batchtopk_trains_and_saves_as_jumprelu() {
    let (t, x) = trained(Architecture::MatryoshkaBatchTopK { k: 4.0 }, |c| {
        c.matryoshka_widths = vec![8, 24];
        c.use_matryoshka_aux_loss = true;
    });
    let sae = t.export().unwrap();
    assert_eq!(
        sae.cfg().architecture,
        Architecture::MatryoshkaBatchTopK { k: 4.0 }
    );
    let back = round_trip("matryoshka_batchtopk", &sae, &x);
    assert_eq!(back.cfg().architecture, Architecture::JumpRelu);
    let theta = back.threshold().unwrap().to_vec1::<f32>().unwrap();
    assert!(
        theta[0] > 0.0 && theta.iter().all(|v| *v == theta[0]),
        "{theta:?}"
    );
}

#[test]
fn transcoders_train_on_pairs_save_and_load() {
    let x = Tensor::randn(0f32, 1.0, (128, 16), &Device::Cpu).unwrap();
    let map = Tensor::randn(0f32, 0.5, (16, 12), &Device::Cpu).unwrap();
    let y = x.matmul(&map).unwrap().relu().unwrap();
    for (jumprelu, skip) in [(false, false), (false, true), (true, false), (true, true)] {
        let arch = Architecture::Transcoder { jumprelu, skip };
        let sae = SaeConfig::new(16, 48, arch)
            .with_hook("blocks.0.ln2.hook_normalized")
            .with_hook_out("blocks.0.hook_mlp_out", 12);
        let mut cfg = SaeTrainConfig::new(sae);
        (cfg.lr, cfg.l1_coefficient, cfg.l0_coefficient) = (1e-2, 0.01, 0.01);
        let mut t = SaeTrainer::new(cfg, &Device::Cpu).unwrap();
        let name = arch.name();
        assert!(
            t.step(&x, 0, 60).is_err(),
            "{name}: a transcoder needs its target"
        );
        let first = t.step_pair(&x, &y, 0, 60).unwrap();
        let mut last = first;
        for step in 1..60 {
            last = t.step_pair(&x, &y, step, 60).unwrap();
        }
        assert!(
            last.mse_loss < 0.7 * first.mse_loss,
            "{name}: {first:?} -> {last:?}"
        );
        let back = round_trip(name, &t.export().unwrap(), &x);
        assert_eq!(back.cfg().architecture, arch);
        assert_eq!(back.hook_name_out(), Some("blocks.0.hook_mlp_out"));
        assert_eq!(back.forward(&x).unwrap().dims(), [128, 12]);
    }
}

#[test]
fn matryoshka_widths_are_checked() {
    for (widths, problem) in [
        (vec![], "must not be empty"),
        (vec![16, 8], "strictly increasing"),
        (vec![8, 64], "exceeds d_sae"),
    ] {
        let mut cfg = SaeTrainConfig::new(
            SaeConfig::new(16, 48, Architecture::MatryoshkaBatchTopK { k: 4.0 }).with_hook("x"),
        );
        cfg.matryoshka_widths = widths.clone();
        let err = SaeTrainer::new(cfg, &Device::Cpu).err().expect("refused");
        let Error::Invalid(msg) = &err else {
            panic!("{widths:?}: {err}");
        };
        assert!(msg.starts_with("matryoshka_widths"), "{msg}");
        assert!(msg.contains(problem), "{widths:?}: {msg}");
    }
}

#[test]
fn batchtopk_saved_with_an_input_scale_keeps_its_sparsity() {
    let mut sae = SaeConfig::new(16, 48, Architecture::BatchTopK { k: 4.0 }).with_hook("x");
    sae.normalize_activations = auto_hook_sae::Normalization::ExpectedAverageOnlyIn;
    let mut cfg = SaeTrainConfig::new(sae);
    cfg.lr = 1e-2;
    cfg.topk_threshold_lr = 0.5; // θ settles within the run
    let mut t = SaeTrainer::new(cfg, &Device::Cpu).unwrap();
    // Activations of norm ~40: the input scale is ~0.1.
    let x = (Tensor::randn(0f32, 1.0, (256, 16), &Device::Cpu).unwrap() * 10.0).unwrap();
    let s = t.estimate_input_scale([&x]).unwrap().unwrap();
    assert!((s - 0.1).abs() < 0.03, "scale {s}");
    for step in 0..40 {
        t.step(&x, step, 40).unwrap();
    }
    // The saved jumprelu, on raw inputs, fires about k = 4 latents per token as batchtopk
    // did in training (with θ not divided by the scale it fires far more).
    let saved = t.export().unwrap().inference_form().unwrap();
    let fires = saved.encode(&x).unwrap().gt(0.0).unwrap();
    let fires = fires.to_dtype(candle_core::DType::F32).unwrap();
    let l0 = fires.sum_all().unwrap().to_scalar::<f32>().unwrap() / 256.0;
    assert!((2.0..=8.0).contains(&l0), "L0 {l0}");
}
