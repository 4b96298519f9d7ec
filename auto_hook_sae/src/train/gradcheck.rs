//! Gradient checks (f64): the aux-k loss against central finite differences, and the
//! jumprelu pseudo-derivatives against finite differences of the rectangle-smoothed step.

use super::config::SaeTrainConfig;
use super::sae::SaeTrainer;
use crate::activation::{jumprelu_ste, step_l0};
use crate::config::{Architecture, SaeConfig};
use auto_hook::rng::Rng;
use candle_core::{DType, Device, Tensor, Var};

fn randn(rng: &mut Rng, shape: (usize, usize), scale: f64) -> Tensor {
    let v: Vec<f64> = (0..shape.0 * shape.1)
        .map(|_| rng.normal() * scale)
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// The aux-k loss as a function of (W_enc, b_enc, W_dec) with the residual held fixed.
fn aux_loss(t: &SaeTrainer, x: &Tensor, residual: &Tensor, dead: &[bool]) -> Tensor {
    let sae = &t.sae;
    let h = x
        .broadcast_sub(&sae.p.b_dec)
        .unwrap()
        .matmul(&sae.p.w_enc)
        .unwrap()
        .broadcast_add(sae.b_enc().unwrap())
        .unwrap();
    t.aux_k_loss(residual, &h, dead).unwrap()
}

#[test]
fn topk_aux_loss_gradient_matches_finite_differences() {
    let mut sae_cfg = SaeConfig::new(6, 12, Architecture::TopK { k: 2 }).with_hook("x");
    sae_cfg.dtype = DType::F64;
    let mut cfg = SaeTrainConfig::new(sae_cfg);
    cfg.decoder_init_norm = Some(0.7);
    let t = SaeTrainer::new(cfg, &Device::Cpu).unwrap();
    let mut rng = Rng::new(9);
    let x = randn(&mut rng, (5, 6), 1.0);
    let residual = randn(&mut rng, (5, 6), 0.5);
    let dead: Vec<bool> = (0..12).map(|i| i % 3 != 0).collect(); // 8 dead > k_aux = 3
    let loss = aux_loss(&t, &x, &residual, &dead);
    assert!(loss.to_scalar::<f64>().unwrap() > 0.0);
    let grads = loss.backward().unwrap();
    let mut checked = 0;
    for (name, var) in t.params().iter().filter(|(name, _)| *name != "b_dec") {
        let g = grads
            .get(var.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let base = var
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        for i in (0..base.len()).step_by(5) {
            let eps = 1e-6;
            let at = |delta: f64| {
                let mut v = base.clone();
                v[i] += delta;
                var.set(&Tensor::from_vec(v, var.dims(), &Device::Cpu).unwrap())
                    .unwrap();
                aux_loss(&t, &x, &residual, &dead)
                    .to_scalar::<f64>()
                    .unwrap()
            };
            let fd = (at(eps) - at(-eps)) / (2.0 * eps);
            var.set(&Tensor::from_vec(base.clone(), var.dims(), &Device::Cpu).unwrap())
                .unwrap();
            assert!(
                (fd - g[i]).abs() < 1e-5 * (1.0 + fd.abs()),
                "{name}[{i}]: autograd {} vs finite difference {fd}",
                g[i]
            );
            checked += (g[i] != 0.0) as usize;
        }
    }
    assert!(checked > 10, "only {checked} non-zero gradients checked");
}

/// `Σ_ij c_ij · clamp((h_ij - θ_j)/ε + 1/2, 0, 1)`: the step smoothed by a rectangle of
/// width ε, whose exact derivative in θ is the rectangle pseudo-derivative.
fn smoothed_step(h: &[f64], theta: &[f64], c: &[f64], eps: f64) -> f64 {
    let d = theta.len();
    h.iter()
        .enumerate()
        .map(|(i, &hv)| c[i / d] * ((hv - theta[i % d]) / eps + 0.5).clamp(0.0, 1.0))
        .sum()
}

#[test]
fn step_pseudo_derivative_is_the_derivative_of_the_smoothed_step() {
    let (n, d, eps) = (40, 6, 0.05);
    let mut rng = Rng::new(3);
    let theta: Vec<f64> = (0..d).map(|_| 0.3 + 0.1 * rng.uniform()).collect();
    // Pre-activations near the thresholds, so many fall inside the rectangle.
    let h: Vec<f64> = (0..n * d)
        .map(|i| theta[i % d] + (rng.uniform() - 0.5) * 0.12)
        .collect();
    let c: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
    let ht = Tensor::from_vec(h.clone(), (n, d), &Device::Cpu).unwrap();
    let tv = Var::new(theta.as_slice(), &Device::Cpu).unwrap();
    let ct = Tensor::from_vec(c.clone(), n, &Device::Cpu).unwrap();
    let l0 = step_l0(&ht, tv.as_tensor(), eps).unwrap();
    let g = (l0 * ct).unwrap().sum_all().unwrap().backward().unwrap();
    let g = g.get(tv.as_tensor()).unwrap().to_vec1::<f64>().unwrap();
    for j in 0..d {
        let delta = 1e-7;
        let mut up = theta.clone();
        up[j] += delta;
        let mut down = theta.clone();
        down[j] -= delta;
        let fd =
            (smoothed_step(&h, &up, &c, eps) - smoothed_step(&h, &down, &c, eps)) / (2.0 * delta);
        assert!(
            (fd - g[j]).abs() < 1e-5 * (1.0 + fd.abs()),
            "θ[{j}]: autograd {} vs {fd}",
            g[j]
        );
        assert!(g[j] != 0.0);
    }
}

#[test]
fn jumprelu_gradients_follow_saelens_formulas() {
    let (n, d, eps) = (30, 5, 0.05);
    let mut rng = Rng::new(4);
    let theta: Vec<f64> = (0..d).map(|_| 0.2 + 0.2 * rng.uniform()).collect();
    let h: Vec<f64> = (0..n * d)
        .map(|i| theta[i % d] + (rng.uniform() - 0.5) * 0.2)
        .collect();
    let g_out: Vec<f64> = (0..n * d).map(|_| rng.normal()).collect();
    let hv = Var::new(
        Tensor::from_vec(h.clone(), (n, d), &Device::Cpu)
            .unwrap()
            .to_vec2::<f64>()
            .unwrap(),
        &Device::Cpu,
    )
    .unwrap();
    let tv = Var::new(theta.as_slice(), &Device::Cpu).unwrap();
    let go = Tensor::from_vec(g_out.clone(), (n, d), &Device::Cpu).unwrap();
    let f = jumprelu_ste(hv.as_tensor(), tv.as_tensor(), eps).unwrap();
    let grads = (f * go).unwrap().sum_all().unwrap().backward().unwrap();
    let gh = grads
        .get(hv.as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let gt = grads.get(tv.as_tensor()).unwrap().to_vec1::<f64>().unwrap();
    let mut expected_t = vec![0f64; d];
    for i in 0..n * d {
        let (hv, th) = (h[i], theta[i % d]);
        let expected_h = if hv > th { g_out[i] } else { 0.0 };
        assert!((gh[i] - expected_h).abs() < 1e-12, "h[{i}]");
        if ((hv - th) / eps).abs() < 0.5 {
            expected_t[i % d] += -(th / eps) * g_out[i];
        }
    }
    for j in 0..d {
        assert!(
            (gt[j] - expected_t[j]).abs() < 1e-9,
            "θ[{j}]: {} vs {}",
            gt[j],
            expected_t[j]
        );
    }
}
