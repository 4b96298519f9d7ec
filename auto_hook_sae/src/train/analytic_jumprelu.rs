//! Hand-derived gradients of jumprelu training (CPU, f32), after the dense decode of
//! `analytic.rs`: `f = h · 1[h > θ]`, `∂h = ∂f · 1[h > θ]` (the straight-through
//! estimator to the input, as SAELens's `JumpReLU.apply`), and to the threshold the
//! rectangle pseudo-derivative `∂θ = Σ_rows −(θ/ε) rect((h − θ)/ε) ∂f`. The step L0
//! penalty `c · mean_rows Σ 1[h > θ]` adds `−(c/n)/ε · rect` to `∂θ`; the tanh penalty
//! `c · mean_rows Σ tanh(scale · f ‖W_dec,i‖)` adds to `∂f` and to `‖W_dec,i‖`.

use super::analytic::{analytic_out, decode_dense, Analytic, Grads, Scratch};
use super::kernels::{read_into, row_norms, sized, BLOCK_ROWS};
use super::sae::SaeTrainer;
use super::SparsityLoss;
use crate::error::Result;
use candle_core::{Device, Tensor};
use rayon::prelude::*;

impl SaeTrainer {
    /// JumpReLU with the rectangle pseudo-derivative and the step or tanh L0 penalty.
    pub(crate) fn analytic_jumprelu(
        &self,
        s: &mut Scratch,
        coefficient: f64,
    ) -> Result<(Analytic, Grads)> {
        let (n, d_out, d_sae) = (s.n, s.d_out, s.d_sae);
        let mut theta = Vec::new();
        read_into(self.threshold_var()?.as_tensor(), &mut theta)?;
        let eps = self.cfg.jumprelu_bandwidth;
        let mut f = std::mem::take(&mut s.f);
        let block = BLOCK_ROWS * d_sae;
        let b_enc = &s.b_enc;
        sized(&mut f, n * d_sae)
            .par_chunks_mut(block)
            .zip(s.h.par_chunks_mut(block))
            .for_each(|(fb, hb)| {
                for (frow, hrow) in fb.chunks_exact_mut(d_sae).zip(hb.chunks_exact_mut(d_sae)) {
                    for (((f, h), &b), &th) in frow.iter_mut().zip(hrow).zip(b_enc).zip(&theta) {
                        *h += b;
                        *f = if *h > th { *h } else { 0.0 };
                    }
                }
            });
        let mse = decode_dense(s, &f);
        let norms = row_norms(&s.w_dec, d_out);
        let tanh = match self.cfg.jumprelu_sparsity_loss {
            SparsityLoss::Tanh { scale } => Some(scale as f32),
            SparsityLoss::Step => None,
        };
        let pass = Pass {
            d: d_sae,
            theta: &theta,
            inv_eps: (1.0 / eps) as f32,
            c_row: (coefficient / n as f64) as f32,
            norms: &norms,
        };
        let parts: Vec<Columns> =
            s.dh.par_chunks_mut(block)
                .zip(s.h.par_chunks(block).zip(f.par_chunks(block)))
                .map(|(gb, (hb, fb))| {
                    let mut cols = Columns::new(d_sae);
                    match tanh {
                        None => pass.step(hb, fb, gb, &mut cols),
                        Some(scale) => pass.tanh(hb, fb, gb, scale, &mut cols),
                    }
                    cols
                })
                .collect();
        let cols = Columns::sum(parts, d_sae);
        let (fired, gb_enc, g_theta, norm_grad) =
            (cols.fired, cols.gb_enc, cols.g_theta, cols.norm_grad);
        let penalty = cols.penalty.iter().map(|&p| p as f64).sum::<f64>();
        s.weight_grads(&f);
        if tanh.is_some() {
            s.add_norm_grad(&norm_grad, &norms);
        }
        s.f = f;
        let mut out = analytic_out(mse, coefficient * penalty / n as f64, &fired);
        out.grads.threshold = Some(Some(Tensor::from_vec(g_theta, d_sae, &Device::Cpu)?));
        Ok((out, Grads::new(gb_enc, s)))
    }
}

/// Column sums of the jumprelu pass over the latents.
struct Columns {
    fired: Vec<f32>,
    gb_enc: Vec<f32>,
    g_theta: Vec<f32>,
    /// tanh penalty: its gradient with respect to `‖W_dec,i‖`.
    norm_grad: Vec<f32>,
    /// The penalty summed over the rows, per latent.
    penalty: Vec<f32>,
}

impl Columns {
    /// The column sums of all blocks, in block order.
    fn sum(parts: Vec<Columns>, d: usize) -> Self {
        let mut out = Columns::new(d);
        for p in parts {
            for (o, v) in [
                (&mut out.fired, p.fired),
                (&mut out.gb_enc, p.gb_enc),
                (&mut out.g_theta, p.g_theta),
                (&mut out.norm_grad, p.norm_grad),
                (&mut out.penalty, p.penalty),
            ] {
                o.iter_mut().zip(&v).for_each(|(o, v)| *o += v);
            }
        }
        out
    }

    fn new(d: usize) -> Self {
        let zeros = || vec![0f32; d];
        Self {
            fired: zeros(),
            gb_enc: zeros(),
            g_theta: zeros(),
            norm_grad: zeros(),
            penalty: zeros(),
        }
    }
}

/// What the passes over blocks of rows share.
struct Pass<'a> {
    d: usize,
    theta: &'a [f32],
    inv_eps: f32,
    /// The penalty coefficient over the rows, `c / n`.
    c_row: f32,
    norms: &'a [f32],
}

impl Pass<'_> {
    /// The step L0 penalty, one branch-free pass: `∂h = ∂f · 1[h > θ]`;
    /// `∂θ = Σ rect((h − θ)/ε) · (−(θ/ε) ∂f − (c/n)/ε)`; the penalty counts `h > θ`.
    fn step(&self, h: &[f32], f: &[f32], dh: &mut [f32], cols: &mut Columns) {
        let (d, theta, inv_eps) = (self.d, self.theta, self.inv_eps);
        let th_coeff: Vec<f32> = theta.iter().map(|&t| t * -inv_eps).collect();
        let step_coeff = -self.c_row * inv_eps;
        let rows = h
            .chunks_exact(d)
            .zip(f.chunks_exact(d))
            .zip(dh.chunks_exact_mut(d));
        for ((hrow, frow), grow) in rows {
            for j in 0..d {
                let (hv, th) = (hrow[j], theta[j]);
                let on = (hv > th) as u8 as f32;
                let window = (((hv - th) * inv_eps).abs() < 0.5) as u8 as f32;
                let df = grow[j];
                cols.g_theta[j] += window * (step_coeff + th_coeff[j] * df);
                let v = df * on;
                grow[j] = v;
                cols.gb_enc[j] += v;
                cols.fired[j] += (frow[j] != 0.0) as u8 as f32;
                cols.penalty[j] += on;
            }
        }
    }

    /// The tanh penalty `Σ tanh(scale · f_i ‖W_dec,i‖)`: its gradient joins `∂f` (and so
    /// `∂θ` through the rectangle) and `‖W_dec,i‖`.
    fn tanh(&self, h: &[f32], f: &[f32], dh: &mut [f32], scale: f32, cols: &mut Columns) {
        let (d, theta, inv_eps, norms) = (self.d, self.theta, self.inv_eps, self.norms);
        let rows = h
            .chunks_exact(d)
            .zip(f.chunks_exact(d))
            .zip(dh.chunks_exact_mut(d));
        for ((hrow, frow), grow) in rows {
            for j in 0..d {
                let (hv, th) = (hrow[j], theta[j]);
                let window = (((hv - th) * inv_eps).abs() < 0.5) as u8 as f32;
                let t = (scale * frow[j] * norms[j]).tanh();
                cols.penalty[j] += t;
                let dt = self.c_row * scale * (1.0 - t * t);
                let df = grow[j] + dt * norms[j];
                cols.norm_grad[j] += dt * frow[j];
                cols.g_theta[j] += window * -(th * inv_eps) * df;
                let v = if hv > th { df } else { 0.0 };
                grow[j] = v;
                cols.gb_enc[j] += v;
                cols.fired[j] += (frow[j] != 0.0) as u8 as f32;
            }
        }
    }
}
