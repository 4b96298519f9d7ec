//! The hand-derived gradients ([`super::analytic`]) against candle's autograd of the
//! training loss ([`SaeTrainer::forward`]), per architecture and option.

use super::config::{SaeTrainConfig, SparsityLoss};
use super::sae::SaeTrainer;
use crate::config::{Architecture, SaeConfig};
use crate::params::SaeParams;
use candle_core::{Device, Tensor};

/// `max |a - b| / max |b|` over all entries.
fn rel_diff(a: &Tensor, b: &Tensor) -> f32 {
    let scale = b.abs().and_then(|b| b.max_all()).unwrap();
    let scale = scale.to_scalar::<f32>().unwrap();
    auto_hook::max_abs_diff(a, b).unwrap() / scale.max(f32::MIN_POSITIVE)
}

fn trainer(arch: Architecture, apply_b_dec: bool, rescale: bool, dead: bool) -> SaeTrainer {
    trainer_with(arch, apply_b_dec, rescale, dead, |_| {})
}

/// [`trainer`] with training settings of its own (`edit`).
fn trainer_with(
    arch: Architecture,
    apply_b_dec: bool,
    rescale: bool,
    dead: bool,
    edit: impl FnOnce(&mut SaeTrainConfig),
) -> SaeTrainer {
    let mut sae = SaeConfig::new(16, 96, arch).with_hook("x");
    sae.apply_b_dec_to_input = apply_b_dec;
    sae.rescale_acts_by_decoder_norm = rescale;
    let mut cfg = SaeTrainConfig::new(sae);
    cfg.decoder_init_norm = Some(0.3);
    edit(&mut cfg);
    let mut t = SaeTrainer::new(cfg, &Device::Cpu).unwrap();
    // Non-zero biases, so every term of their gradients is exercised.
    // (gated: its gate's and magnitude path's biases and log-scales.)
    for (name, std) in [
        ("b_enc", 0.1),
        ("b_gate", 0.1),
        ("r_mag", 0.3),
        ("b_mag", 0.1),
    ] {
        if let Some(v) = t.params().get(name) {
            v.set(&Tensor::randn(0f32, std, 96, &Device::Cpu).unwrap())
                .unwrap();
        }
    }
    let b_dec = Tensor::randn(0f32, 0.2, 16, &Device::Cpu).unwrap();
    t.params().b_dec.set(&b_dec).unwrap();
    if dead {
        let window = t.cfg.dead_feature_window as u32;
        for (i, s) in t.since_fired.iter_mut().enumerate() {
            *s = if i % 4 == 0 { 0 } else { window + 1 };
        }
    }
    t
}

fn check(t: &mut SaeTrainer, coefficient: f64, what: &str) {
    check_to(t, None, coefficient, what)
}

/// [`check`] towards the target `y` (a transcoder's output rows; `None`: `x`).
fn check_to(t: &mut SaeTrainer, y: Option<&Tensor>, coefficient: f64, what: &str) {
    assert!(t.analytic_supported(), "{what}");
    // 600 rows: several blocks of the parallel passes (256 rows each).
    let x = Tensor::randn(0.3f32, 1.0, (600, 16), &Device::Cpu).unwrap();
    let target = y.unwrap_or(&x);
    let out = t.forward_to(&x, target, coefficient).unwrap();
    let grads = out.loss.backward().unwrap();
    let a = t.analytic_to(&x, y, coefficient).unwrap();
    let close = |got: f64, want: f64, name: &str| {
        assert!(
            (got - want).abs() <= 1e-5 * want.abs().max(1e-6),
            "{what} {name}: {got} vs {want}"
        );
    };
    let scalar = |t: &Tensor| t.to_scalar::<f32>().unwrap() as f64;
    close(a.mse, scalar(&out.mse), "mse");
    close(a.aux, scalar(&out.aux), "aux");
    let ev = super::autograd::explained_variance(target, &out.recon).unwrap();
    // Near 0 early in training: compared in absolute terms.
    let ev_diff = (a.explained_variance - ev).abs();
    assert!(
        ev_diff < 1e-5,
        "{what} explained variance: {} vs {ev}",
        a.explained_variance
    );
    match (a.min_kept, out.min_kept) {
        (Some(got), Some(want)) => close(got, want, "smallest kept"),
        (got, want) => assert_eq!(got, want, "{what} smallest kept"),
    }
    let recon = Tensor::from_slice(&t.scratch.recon, out.recon.dims(), &Device::Cpu).unwrap();
    assert!(rel_diff(&recon, &out.recon) < 1e-5, "{what} recon");
    let fired: Vec<u32> = out
        .acts
        .ne(0.0)
        .unwrap()
        .to_dtype(candle_core::DType::U32)
        .unwrap()
        .sum(0)
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(a.fired, fired, "{what} firings");
    let want = t
        .params()
        .try_map(|_, v| Ok(grads.get(v.as_tensor()).unwrap().clone()))
        .unwrap();
    for (name, rel) in grad_diffs(&a.grads, &want, what) {
        assert!(rel < 1e-5, "{what} {name}: relative difference {rel}");
    }
}

/// The relative difference of each analytic gradient from the autograd one, by name.
fn scalar(t: &Tensor) -> f32 {
    t.to_scalar::<f32>().unwrap()
}

fn grad_diffs(
    got: &SaeParams<Option<Tensor>>,
    want: &SaeParams<Tensor>,
    what: &str,
) -> Vec<(&'static str, f32)> {
    let got_names: Vec<&str> = got.iter().map(|(n, _)| n).collect();
    let want_names: Vec<&str> = want.iter().map(|(n, _)| n).collect();
    assert_eq!(got_names, want_names, "{what}: one gradient per variable");
    want.iter()
        .map(|(name, want)| {
            let got = got.get(name).unwrap().as_ref().unwrap();
            assert_eq!(got.dims(), want.dims(), "{what} {name} shape");
            (name, rel_diff(got, want))
        })
        .collect()
}

fn jumprelu_trainer(loss: SparsityLoss, apply_b_dec: bool) -> SaeTrainer {
    let mut t = trainer(Architecture::JumpRelu, apply_b_dec, false, false);
    t.cfg.jumprelu_sparsity_loss = loss;
    spread_thresholds(&t);
    t
}

/// Thresholds spread over the pre-activations, so that many entries fall inside the
/// rectangle window |h − θ| < ε/2 (and some thresholds are negative).
fn spread_thresholds(t: &SaeTrainer) {
    let theta: Vec<f32> = (0..96)
        .map(|j| -0.05 + 0.2 * (j % 12) as f32 / 12.0)
        .collect();
    t.threshold_var()
        .unwrap()
        .set(&Tensor::from_vec(theta, 96, &Device::Cpu).unwrap())
        .unwrap();
}

/// A transcoder from 16 to `D_OUT` = 24 wide rows, with non-zero biases and `W_skip`
/// (its init is zero) and, for the jumprelu kinds, spread thresholds and `loss`.
fn transcoder_trainer(jumprelu: bool, skip: bool, loss: SparsityLoss) -> SaeTrainer {
    let arch = Architecture::Transcoder { jumprelu, skip };
    let sae = SaeConfig::new(16, 96, arch)
        .with_hook("x")
        .with_hook_out("y", D_OUT);
    let mut cfg = SaeTrainConfig::new(sae);
    cfg.decoder_init_norm = Some(0.3);
    cfg.jumprelu_sparsity_loss = loss;
    let t = SaeTrainer::new(cfg, &Device::Cpu).unwrap();
    let p = t.params();
    let randn = |std, shape: &[usize]| Tensor::randn(0f32, std, shape, &Device::Cpu).unwrap();
    p.b_enc.as_ref().unwrap().set(&randn(0.1, &[96])).unwrap();
    p.b_dec.set(&randn(0.2, &[D_OUT])).unwrap();
    assert_eq!(p.w_skip.is_some(), skip);
    if let Some(w_skip) = &p.w_skip {
        w_skip.set(&randn(0.2, &[D_OUT, 16])).unwrap();
    }
    if jumprelu {
        spread_thresholds(&t);
    }
    t
}

const D_OUT: usize = 24;

/// A random target for the transcoders, `[600, D_OUT]`.
fn target() -> Tensor {
    Tensor::randn(0.1f32, 1.0, (600, D_OUT), &Device::Cpu).unwrap()
}

#[test]
fn standard_analytic_gradients_match_autograd() {
    for apply_b_dec in [true, false] {
        let mut t = trainer(Architecture::Standard, apply_b_dec, false, false);
        check(&mut t, 0.7, &format!("standard apply_b_dec={apply_b_dec}"));
    }
}

#[test]
fn topk_analytic_gradients_match_autograd_with_and_without_aux_k() {
    for (apply_b_dec, rescale, dead) in [
        (true, false, false),
        (true, false, true),
        (true, true, true),
        (false, true, true),
    ] {
        let mut t = trainer(Architecture::TopK { k: 5 }, apply_b_dec, rescale, dead);
        let what = format!("topk apply_b_dec={apply_b_dec} rescale={rescale} dead={dead}");
        if dead {
            let x = Tensor::randn(0f32, 1.0, (4, 16), &Device::Cpu).unwrap();
            let aux = t.forward(&x, 1.0).unwrap().aux.to_scalar::<f32>().unwrap();
            assert!(aux > 0.0, "{what}: the aux-k term is exercised");
        }
        check(&mut t, 1.0, &what);
    }
}

#[test]
fn jumprelu_analytic_gradients_match_autograd_with_step_and_tanh_penalties() {
    for (loss, apply_b_dec) in [
        (SparsityLoss::Step, true),
        (SparsityLoss::Step, false),
        (SparsityLoss::Tanh { scale: 4.0 }, true),
    ] {
        let mut t = jumprelu_trainer(loss, apply_b_dec);
        check(
            &mut t,
            0.8,
            &format!("jumprelu {loss:?} apply_b_dec={apply_b_dec}"),
        );
    }
}

#[test]
fn batchtopk_analytic_gradients_and_threshold_match_autograd() {
    for (rescale, dead, k) in [(false, false, 3.0), (true, true, 3.0), (true, true, 2.5)] {
        let mut t = trainer(Architecture::BatchTopK { k }, true, rescale, dead);
        check(
            &mut t,
            1.0,
            &format!("batchtopk k={k} rescale={rescale} dead={dead}"),
        );
    }
}

#[test]
fn gated_analytic_gradients_match_autograd() {
    for apply_b_dec in [true, false] {
        let mut t = trainer(Architecture::Gated, apply_b_dec, false, false);
        check(&mut t, 0.6, &format!("gated apply_b_dec={apply_b_dec}"));
    }
}

fn matryoshka_trainer(widths: &[usize], level_aux: bool, rescale: bool, dead: bool) -> SaeTrainer {
    let arch = Architecture::MatryoshkaBatchTopK { k: 3.0 };
    trainer_with(arch, true, rescale, dead, |c| {
        c.matryoshka_widths = widths.to_vec();
        c.use_matryoshka_aux_loss = level_aux;
    })
}

/// Level layouts with widths that are not multiples of 16, one level, `d_sae` given as
/// the last width or added; a first band without dead latents (latent 0 is alive); the
/// aux-k loss over all latents or per level.
#[test]
fn matryoshka_analytic_gradients_and_threshold_match_autograd() {
    let layouts: [&[usize]; 5] = [&[8, 20, 48], &[96], &[5, 33, 96], &[37], &[1, 50]];
    for widths in layouts {
        for (level_aux, rescale, dead) in [
            (false, false, false),
            (false, true, true),
            (true, true, true),
            (true, false, true),
        ] {
            let mut t = matryoshka_trainer(widths, level_aux, rescale, dead);
            let what = format!(
                "matryoshka {widths:?} level_aux={level_aux} rescale={rescale} dead={dead}"
            );
            check(&mut t, 1.0, &what);
            if dead {
                // The aux-k term is exercised: without dead latents the aux total drops.
                let x = Tensor::randn(0f32, 1.0, (64, 16), &Device::Cpu).unwrap();
                // (the autograd aux total: the inner levels' MSE and aux-k)
                let aux = |t: &SaeTrainer| scalar(&t.forward(&x, 1.0).unwrap().aux);
                let with_dead = aux(&t);
                t.since_fired.iter_mut().for_each(|s| *s = 0);
                assert!(with_dead > aux(&t) + 1e-6, "{what}: aux-k exercised");
            }
        }
    }
}

#[test]
fn transcoder_analytic_gradients_match_autograd_for_all_four_kinds() {
    let y = target();
    for (jumprelu, skip, loss, coefficient) in [
        (false, false, SparsityLoss::Step, 0.7),
        (false, true, SparsityLoss::Step, 0.7),
        (true, false, SparsityLoss::Step, 0.8),
        (true, true, SparsityLoss::Step, 0.8),
        (true, false, SparsityLoss::Tanh { scale: 4.0 }, 0.8),
        (true, true, SparsityLoss::Tanh { scale: 4.0 }, 0.8),
    ] {
        let mut t = transcoder_trainer(jumprelu, skip, loss);
        let what = format!("{} {loss:?}", t.cfg.sae.architecture.imp().name());
        check_to(&mut t, Some(&y), coefficient, &what);
        let names: Vec<&str> = t.params().iter().map(|(n, _)| n).collect();
        assert_eq!(names.contains(&"W_skip"), skip, "{what}: {names:?}");
        assert_eq!(names.contains(&"threshold"), jumprelu, "{what}: {names:?}");
    }
}

/// The checks above can fail: an analytic step computed with a different penalty
/// coefficient or bandwidth, or other matryoshka levels or aux-k terms, than the
/// reference is caught, in the terms they touch.
#[test]
fn a_wrong_penalty_or_bandwidth_term_is_caught() {
    let x = Tensor::randn(0.3f32, 1.0, (600, 16), &Device::Cpu).unwrap();
    let reference = |t: &SaeTrainer, coefficient: f64| -> SaeParams<Tensor> {
        let grads = t.forward(&x, coefficient).unwrap().loss.backward().unwrap();
        t.params()
            .try_map(|_, v| Ok(grads.get(v.as_tensor()).unwrap().clone()))
            .unwrap()
    };
    let worst = |diffs: Vec<(&str, f32)>, name: &str| {
        diffs.into_iter().find(|(n, _)| *n == name).unwrap().1
    };
    // Standard: the L1 term (coefficient 0.7 in the reference, 0.9 here).
    let mut t = trainer(Architecture::Standard, true, false, false);
    let want = reference(&t, 0.7);
    let got = t.analytic(&x, 0.9).unwrap().grads;
    assert!(worst(grad_diffs(&got, &want, "l1"), "b_enc") > 1e-3);
    // Gated: the L1 term reaches the gate's bias only.
    let mut t = trainer(Architecture::Gated, true, false, false);
    let want = reference(&t, 0.6);
    let got = t.analytic(&x, 0.8).unwrap().grads;
    assert!(worst(grad_diffs(&got, &want, "gated l1"), "b_gate") > 1e-3);
    assert!(worst(grad_diffs(&got, &want, "gated l1"), "b_mag") < 1e-5);
    // JumpReLU: the step penalty's own θ term (coefficient), then the rectangle (ε).
    let mut t = jumprelu_trainer(SparsityLoss::Step, true);
    let want = reference(&t, 0.8);
    let got = t.analytic(&x, 1.0).unwrap().grads;
    assert!(worst(grad_diffs(&got, &want, "l0"), "threshold") > 1e-3);
    t.cfg.jumprelu_bandwidth = 0.06;
    let got = t.analytic(&x, 0.8).unwrap().grads;
    assert!(worst(grad_diffs(&got, &want, "bandwidth"), "threshold") > 1e-3);
    // The same comparison with matching settings passes.
    t.cfg.jumprelu_bandwidth = 0.05;
    let got = t.analytic(&x, 0.8).unwrap().grads;
    assert!(worst(grad_diffs(&got, &want, "same"), "threshold") < 1e-5);
    // Matryoshka: a level left out, then the aux-k loss per level instead of over all.
    let mut t = matryoshka_trainer(&[8, 20, 48], false, true, true);
    let want = reference(&t, 1.0);
    t.cfg.matryoshka_widths = vec![8, 48];
    let got = t.analytic(&x, 1.0).unwrap().grads;
    assert!(worst(grad_diffs(&got, &want, "level"), "b_dec") > 1e-3);
    t.cfg.matryoshka_widths = vec![8, 20, 48];
    t.cfg.use_matryoshka_aux_loss = true;
    let got = t.analytic(&x, 1.0).unwrap().grads;
    assert!(worst(grad_diffs(&got, &want, "level aux"), "W_dec") > 1e-3);
    t.cfg.use_matryoshka_aux_loss = false;
    let got = t.analytic(&x, 1.0).unwrap().grads;
    assert!(worst(grad_diffs(&got, &want, "same levels"), "W_dec") < 1e-5);
}

/// The transcoder checks can fail: a step towards a slightly different target, or with
/// a different L0 coefficient, than the reference is caught in the terms they touch.
#[test]
fn a_wrong_transcoder_target_or_penalty_is_caught() {
    let x = Tensor::randn(0.3f32, 1.0, (600, 16), &Device::Cpu).unwrap();
    let y = target();
    let mut t = transcoder_trainer(true, true, SparsityLoss::Step);
    let grads = t.forward_to(&x, &y, 0.8).unwrap().loss.backward().unwrap();
    let want = t
        .params()
        .try_map(|_, v| Ok(grads.get(v.as_tensor()).unwrap().clone()))
        .unwrap();
    let mut worst = |y: &Tensor, coefficient: f64, name: &str| {
        let got = t.analytic_to(&x, Some(y), coefficient).unwrap().grads;
        let diffs = grad_diffs(&got, &want, name);
        diffs.into_iter().find(|(n, _)| *n == name).unwrap().1
    };
    // One column of the target moved by 0.05: the skip connection's and b_dec's terms.
    let shift: Vec<f32> = (0..D_OUT)
        .map(|c| if c == 3 { 0.05 } else { 0.0 })
        .collect();
    let shift = Tensor::from_vec(shift, D_OUT, &Device::Cpu).unwrap();
    let moved = y.broadcast_add(&shift).unwrap();
    assert!(worst(&moved, 0.8, "W_skip") > 1e-3);
    assert!(worst(&moved, 0.8, "b_dec") > 1e-3);
    // The step L0 penalty's own θ term (coefficient 0.8 in the reference).
    assert!(worst(&y, 1.0, "threshold") > 1e-3);
    // Matching settings pass.
    assert!(worst(&y, 0.8, "W_skip") < 1e-5);
    assert!(worst(&y, 0.8, "threshold") < 1e-5);
}

/// As SAELens 6.54, each jumprelu step first projects the threshold onto θ ≥ 0: a
/// threshold set to −0.5 is within one Adam step (lr) of 0 after a step.
#[test]
fn jumprelu_steps_project_the_threshold_onto_non_negative_values() {
    let mut t = jumprelu_trainer(SparsityLoss::Step, true);
    let theta: Vec<f32> = (0..96)
        .map(|j| if j % 2 == 0 { -0.5 } else { 0.2 })
        .collect();
    t.threshold_var()
        .unwrap()
        .set(&Tensor::from_vec(theta, 96, &Device::Cpu).unwrap())
        .unwrap();
    let x = Tensor::randn(0.3f32, 1.0, (64, 16), &Device::Cpu).unwrap();
    t.step(&x, 0, 10).unwrap();
    let lr = t.cfg.lr as f32;
    let after: Vec<f32> = t.threshold_var().unwrap().to_vec1().unwrap();
    for (j, &v) in after.iter().enumerate() {
        let want = if j % 2 == 0 { 0.0 } else { 0.2 };
        assert!((v - want).abs() <= 1.01 * lr, "θ[{j}] = {v}");
    }
}
