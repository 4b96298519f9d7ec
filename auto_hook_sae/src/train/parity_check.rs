//! The training forward of the newer architectures against SAELens 6.54's
//! `training_forward_pass` on a fixed batch (fixtures from
//! `scripts/make_sae_fixtures.py`): every loss term and every parameter's gradient.

use super::config::SaeTrainConfig;
use super::sae::SaeTrainer;
use crate::arch::TrainForward;
use crate::config::Architecture;
use crate::sae::Sae;
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::PathBuf;

const TOLERANCE: f32 = 1e-5;

fn fixture(name: &str) -> (Sae, HashMap<String, Tensor>) {
    let folder = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let sae = Sae::load(&folder, &Device::Cpu).unwrap();
    let path = folder.join("training.safetensors");
    (
        sae,
        candle_core::safetensors::load(path, &Device::Cpu).unwrap(),
    )
}

/// A trainer with the fixture's training weights (`param.*`) and dead latents.
fn trainer(cfg: SaeTrainConfig, reference: &HashMap<String, Tensor>) -> SaeTrainer {
    let mut t = SaeTrainer::new(cfg, &Device::Cpu).unwrap();
    for (name, var) in t.params.iter() {
        var.set(&reference[&format!("param.{name}")]).unwrap();
    }
    let dead = reference["dead"].to_vec1::<f32>().unwrap();
    let window = t.dead_window;
    for (s, d) in t.since_fired.iter_mut().zip(dead) {
        *s = if d > 0.0 { window + 1 } else { 0 };
    }
    t
}

fn scalar(t: &Tensor) -> f32 {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()[0]
}

fn assert_close(got: &Tensor, want: &Tensor, what: &str) {
    let diff = auto_hook::max_abs_diff(got, want).unwrap();
    assert!(diff <= TOLERANCE, "{what}: differs by {diff}");
}

/// Checks the loss and every trained parameter's gradient against the reference.
fn assert_grads(t: &SaeTrainer, loss: &Tensor, reference: &HashMap<String, Tensor>) {
    assert_close(loss, &reference["loss"].squeeze(0).unwrap(), "loss");
    let grads = loss.backward().unwrap();
    let mut checked = 0;
    for (name, var) in t.params.iter() {
        let want = &reference[&format!("grad.{name}")];
        assert_close(grads.get(var).unwrap(), want, name);
        checked += 1;
    }
    assert_eq!(
        checked,
        reference.keys().filter(|k| k.starts_with("grad.")).count()
    );
}

#[test]
fn gated_training_forward_matches_saelens() {
    let (sae, r) = fixture("gated");
    let coefficient = scalar(&r["coefficient.l1"]) as f64;
    let mut cfg = SaeTrainConfig::new(sae.cfg().clone());
    cfg.l1_coefficient = coefficient;
    let t = trainer(cfg, &r);
    let x = &r["x"];
    let out = t.forward(x, coefficient).unwrap();
    assert_close(&out.mse, &r["loss.mse_loss"].squeeze(0).unwrap(), "mse");
    let x_in = x.broadcast_sub(&t.sae.p.b_dec).unwrap();
    let (l1, aux) = crate::arch::gated_losses(&t, x, &x_in, coefficient).unwrap();
    assert_close(&l1, &r["loss.l1_loss"].squeeze(0).unwrap(), "l1");
    let want_aux = r["loss.auxiliary_reconstruction_loss"].squeeze(0).unwrap();
    assert_close(&aux, &want_aux, "aux");
    assert_close(&out.acts, &r["feature_acts"], "feature_acts");
    assert_close(&out.recon, &r["sae_out"], "sae_out");
    assert_grads(&t, &out.loss, &r);
}

/// A matryoshka trainer on the fixture `name` (widths 8, 20, 48; k 5; aux coefficient
/// 0.5): its forward, loss terms, gradients and threshold update against the reference.
fn matryoshka(name: &str, matryoshka_aux: bool) {
    let (sae, r) = fixture(name);
    let mut sae_cfg = sae.cfg().clone();
    sae_cfg.architecture = Architecture::MatryoshkaBatchTopK { k: 5.0 };
    let mut cfg = SaeTrainConfig::new(sae_cfg);
    cfg.matryoshka_widths = vec![8, 20, 48];
    cfg.use_matryoshka_aux_loss = matryoshka_aux;
    cfg.aux_loss_coefficient = 0.5;
    let mut t = trainer(cfg, &r);
    t.batchtopk_threshold = scalar(&r["topk_threshold_before"]) as f64;
    let x = &r["x"];
    let out = t.forward(x, 0.0).unwrap();
    let want = |key: &str| r[key].squeeze(0).unwrap();
    assert_close(&out.mse, &want("loss.mse_loss"), "mse");
    let x_in = x.broadcast_sub(&t.sae.p.b_dec).unwrap();
    let h = x_in
        .matmul(&t.sae.p.w_enc)
        .unwrap()
        .broadcast_add(t.sae.b_enc().unwrap())
        .unwrap();
    let fwd = TrainForward {
        x_in: &x_in,
        h: &h,
        acts: &out.acts,
        recon: &out.recon,
        coefficient: 0.0,
    };
    let (inner, aux) = crate::arch::matryoshka_losses(&t, x, &fwd).unwrap();
    assert_eq!(inner.iter().map(|(w, _)| *w).collect::<Vec<_>>(), [8, 20]);
    for (width, term) in &inner {
        assert_close(
            term,
            &want(&format!("loss.inner_mse_loss_{width}")),
            "inner mse",
        );
    }
    assert_close(&aux, &want("loss.auxiliary_reconstruction_loss"), "aux");
    assert!(scalar(&aux) > 0.0, "{name}: the aux-k loss is exercised");
    // SAELens's latents are in rescaled units (h · ‖W_dec,i‖).
    let rescaled = out
        .acts
        .broadcast_mul(&t.sae.decoder_norms().unwrap())
        .unwrap();
    assert_close(&rescaled, &r["feature_acts"], "feature_acts");
    assert_close(&out.recon, &r["sae_out"], "sae_out");
    assert_grads(&t, &out.loss, &r);
    let arch = t.cfg.sae.architecture.imp();
    arch.post_step(&mut t, out.min_kept);
    let theta = t.batchtopk_threshold as f32;
    let want_theta = scalar(&r["topk_threshold"]);
    assert!(
        (theta - want_theta).abs() <= TOLERANCE,
        "{name} threshold: {theta} vs {want_theta}"
    );
}

#[test]
fn matryoshka_batchtopk_training_forward_matches_saelens() {
    matryoshka("matryoshka", false);
}

#[test]
fn matryoshka_batchtopk_with_per_level_aux_loss_matches_saelens() {
    matryoshka("matryoshka_aux", true);
}
