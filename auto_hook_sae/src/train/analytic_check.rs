//! The hand-derived gradients ([`super::analytic`]) against candle's autograd of the
//! training loss ([`SaeTrainer::forward`]), per architecture and option.

use super::config::TrainConfig;
use super::sae::SaeTrainer;
use crate::config::{Architecture, SaeConfig};
use candle_core::{Device, Tensor};

/// `max |a - b| / max |b|` over all entries.
fn rel_diff(a: &Tensor, b: &Tensor) -> f32 {
    let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap();
    let scale = b
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    diff.to_scalar::<f32>().unwrap() / scale.max(f32::MIN_POSITIVE)
}

fn trainer(arch: Architecture, apply_b_dec: bool, rescale: bool, dead: bool) -> SaeTrainer {
    let mut sae = SaeConfig::new(16, 96, arch).with_hook("x");
    sae.apply_b_dec_to_input = apply_b_dec;
    sae.rescale_acts_by_decoder_norm = rescale;
    let mut cfg = TrainConfig::new(sae);
    cfg.decoder_init_norm = Some(0.3);
    let mut t = SaeTrainer::new(cfg, &Device::Cpu).unwrap();
    // Non-zero biases, so every term of their gradients is exercised.
    let b_enc = Tensor::randn(0f32, 0.1, 96, &Device::Cpu).unwrap();
    let b_dec = Tensor::randn(0f32, 0.2, 16, &Device::Cpu).unwrap();
    t.vars()[1].set(&b_enc).unwrap();
    t.vars()[3].set(&b_dec).unwrap();
    if dead {
        let window = t.cfg.dead_feature_window as u32;
        for (i, s) in t.since_fired.iter_mut().enumerate() {
            *s = if i % 4 == 0 { 0 } else { window + 1 };
        }
    }
    t
}

fn check(t: &SaeTrainer, coefficient: f64, what: &str) {
    assert!(t.analytic_supported(), "{what}");
    let x = Tensor::randn(0.3f32, 1.0, (80, 16), &Device::Cpu).unwrap();
    let out = t.forward(&x, coefficient).unwrap();
    let grads = out.loss.backward().unwrap();
    let a = t.analytic(&x, coefficient).unwrap();
    let close = |got: f64, want: &Tensor, name: &str| {
        let want = want.to_scalar::<f32>().unwrap() as f64;
        assert!(
            (got - want).abs() <= 1e-5 * want.abs().max(1e-6),
            "{what} {name}: {got} vs {want}"
        );
    };
    close(a.mse, &out.mse, "mse");
    close(a.aux, &out.aux, "aux");
    assert!(rel_diff(&a.recon, &out.recon) < 1e-5, "{what} recon");
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
    for (i, (name, var)) in ["W_enc", "b_enc", "W_dec", "b_dec"]
        .iter()
        .zip(t.vars())
        .enumerate()
    {
        let want = grads.get(var.as_tensor()).unwrap();
        let got = a.grads[i].as_ref().unwrap();
        assert_eq!(got.dims(), want.dims(), "{what} {name} shape");
        let rel = rel_diff(got, want);
        assert!(rel < 1e-5, "{what} {name}: relative difference {rel}");
    }
}

#[test]
fn standard_analytic_gradients_match_autograd() {
    for apply_b_dec in [true, false] {
        let t = trainer(Architecture::Standard, apply_b_dec, false, false);
        check(&t, 0.7, &format!("standard apply_b_dec={apply_b_dec}"));
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
        let t = trainer(Architecture::TopK { k: 5 }, apply_b_dec, rescale, dead);
        let what = format!("topk apply_b_dec={apply_b_dec} rescale={rescale} dead={dead}");
        if dead {
            let x = Tensor::randn(0f32, 1.0, (4, 16), &Device::Cpu).unwrap();
            let aux = t.forward(&x, 1.0).unwrap().aux.to_scalar::<f32>().unwrap();
            assert!(aux > 0.0, "{what}: the aux-k term is exercised");
        }
        check(&t, 1.0, &what);
    }
}

#[test]
fn the_one_pass_top_k_keeps_what_topk_select_keeps() {
    let h = Tensor::randn(0f32, 1.0, (50, 40), &Device::Cpu).unwrap();
    let scale: Vec<f32> = (0..40).map(|i| 0.5 + (i % 7) as f32 * 0.1).collect();
    let values: Vec<f32> = h.flatten_all().unwrap().to_vec1().unwrap();
    for k in [1, 3, 8, 39, 40, 45] {
        for scale in [None, Some(&scale[..])] {
            let mask = crate::activation::topk_select(&h, scale, k, None).unwrap();
            let mask: Vec<f32> = mask.flatten_all().unwrap().to_vec1().unwrap();
            let want: Vec<Vec<usize>> = mask
                .chunks_exact(40)
                .map(|r| (0..40).filter(|&j| r[j] > 0.0).collect())
                .collect();
            assert_eq!(
                super::analytic::select(&values, 40, scale, k, None),
                want,
                "k={k}"
            );
        }
    }
}
