//! Hand-derived gradients of the training losses of every architecture (CPU, f32): a
//! few strided matmuls on reused flat buffers and fused loops over the latents instead
//! of candle's autograd graph of small elementwise ops. The autograd graph
//! ([`SaeTrainer::forward`]) stays the reference; `analytic_check.rs` checks these
//! gradients against it.
//!
//! With `x' = x − b_dec` (when `apply_b_dec_to_input`), `h = x' W_enc + b_enc`,
//! `f` the latents, `x̂ = f W_dec + b_dec`, `e = x̂ − x` and `n` rows:
//! `mse = Σ e² / n`, so `g = ∂/∂x̂ = 2e / n`, `∂/∂f = g W_decᵀ`, `∂W_dec = fᵀ g`,
//! `∂b_dec = Σ_rows g − (Σ_rows ∂h) W_encᵀ`, `∂W_enc = x'ᵀ ∂h`, `∂b_enc = Σ_rows ∂h`.
//! Transcoders (standard's or jumprelu's pass) reconstruct a target `y` of width
//! `d_out` instead of `x`: `ŷ = f W_dec + b_dec (+ x W_skipᵀ)`, `e = ŷ − y`, `x' = x`,
//! and a skip connection's `∂W_skip = gᵀ x`.
//! Standard: `f = relu(h)`, plus `λ/n Σ f_i ‖W_dec,i‖`. JumpReLU: `f = h · 1[h > θ]`,
//! `∂h = ∂f · 1[h > θ]`, `∂θ = Σ_rows −(θ/ε) rect((h − θ)/ε) ∂f` plus the L0 penalty's
//! own terms (`analytic_jumprelu.rs`). TopK / BatchTopK: `analytic_topk.rs`.

use super::kernels::mse_grad;
use super::kernels::{
    add_column_sums, axpy, explained_variance, matmul, matmul_long_inner, read_into, row_norms,
    sized, sum_blocks, Mat, BLOCK_ROWS,
};
use super::sae::SaeTrainer;
use crate::error::{Error, Result};
use crate::params::SaeParams;
use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;

/// Gradients (by parameter) and losses of one step.
pub(crate) struct Analytic {
    pub(crate) grads: SaeParams<Option<Tensor>>,
    pub(crate) mse: f64,
    pub(crate) aux: f64,
    pub(crate) explained_variance: f64,
    /// Rows in which each latent is non-zero.
    pub(crate) fired: Vec<u32>,
    /// batchtopk: the smallest kept (rescaled) activation.
    pub(crate) min_kept: Option<f64>,
}

/// Flat buffers reused from step to step (no large allocation, copy or page fault per
/// step). After a step, `recon` holds `x̂`.
#[derive(Default)]
pub(crate) struct Scratch {
    pub(crate) n: usize,
    pub(crate) d_in: usize,
    pub(crate) d_sae: usize,
    /// The width of the reconstruction: `d_in`, or a transcoder's `d_out`.
    pub(crate) d_out: usize,
    pub(crate) x: Vec<f32>,
    /// A transcoder's target `y` `[n, d_out]` (when `pair`).
    pub(crate) y: Vec<f32>,
    /// Whether the target is `y` (a transcoder) rather than `x`.
    pub(crate) pair: bool,
    /// `x'` (a copy of `x` without `apply_b_dec_to_input`).
    pub(crate) x_in: Vec<f32>,
    /// `h` `[n, d_sae]` (bias included once the first pass over it ran).
    pub(crate) h: Vec<f32>,
    /// The latents (standard: `h` itself is turned into them).
    pub(crate) f: Vec<f32>,
    /// `∂/∂f`, then `∂/∂h`.
    pub(crate) dh: Vec<f32>,
    pub(crate) recon: Vec<f32>,
    /// `∂/∂x̂`.
    pub(crate) g: Vec<f32>,
    pub(crate) w_enc: Vec<f32>,
    pub(crate) b_enc: Vec<f32>,
    pub(crate) w_dec: Vec<f32>,
    pub(crate) b_dec: Vec<f32>,
    /// A skip transcoder's `W_skip` `[d_out, d_in]` (empty without one).
    pub(crate) w_skip: Vec<f32>,
    pub(crate) gw_enc: Vec<f32>,
    pub(crate) gw_dec: Vec<f32>,
    pub(crate) gw_skip: Vec<f32>,
    /// Partial products of [`matmul_long_inner`].
    pub(crate) partial: Vec<f32>,
}

/// `∂b_enc` and `Σ_rows g`, flat: with the weight gradients in [`Scratch`],
/// [`Grads::finish`] makes the four gradient tensors.
pub(crate) struct Grads {
    pub(crate) gb_enc: Vec<f32>,
    /// `Σ_rows g`.
    pub(crate) g_sum: Vec<f32>,
}

impl SaeTrainer {
    /// Whether [`SaeTrainer::analytic`] handles this SAE (f32 on the CPU).
    pub(crate) fn analytic_supported(&self) -> bool {
        self.cfg.sae.dtype == DType::F32 && self.sae.device().is_cpu()
    }

    /// The loss gradients on (scaled) inputs `x` `[n, d_in]`, computed by hand.
    #[cfg(test)]
    pub(crate) fn analytic(&mut self, x: &Tensor, coefficient: f64) -> Result<Analytic> {
        self.analytic_to(x, None, coefficient)
    }

    /// [`Self::analytic`] towards the target `y` `[n, d_out]` (a transcoder's output
    /// rows; `None`: `x`, an SAE).
    pub(crate) fn analytic_to(
        &mut self,
        x: &Tensor,
        y: Option<&Tensor>,
        coefficient: f64,
    ) -> Result<Analytic> {
        let mut s = std::mem::take(&mut self.scratch);
        let out = self.analytic_in(&mut s, x, y, coefficient);
        self.scratch = s;
        out
    }

    fn analytic_in(
        &self,
        s: &mut Scratch,
        x: &Tensor,
        y: Option<&Tensor>,
        coefficient: f64,
    ) -> Result<Analytic> {
        let arch = self.cfg.sae.architecture.imp();
        self.encode_into(s, x, arch.analytic_adds_b_enc())?;
        self.read_target(s, y)?;
        let (mut out, grads) = arch.analytic(self, s, coefficient)?;
        grads.finish(self, s, &mut out.grads)?;
        if s.pair && !s.w_skip.is_empty() {
            let g = Tensor::from_slice(&s.gw_skip, (s.d_out, s.d_in), &Device::Cpu)?;
            out.grads.w_skip = Some(Some(g));
        }
        out.explained_variance = explained_variance(s.target(), out.mse, s.n, s.d_out);
        Ok(out)
    }

    /// A transcoder's target `y` and `W_skip` into `s` (an SAE: the target is `x`).
    fn read_target(&self, s: &mut Scratch, y: Option<&Tensor>) -> Result<()> {
        s.d_out = self.cfg.sae.d_out();
        s.pair = y.is_some();
        if let Some(y) = y {
            read_into(y, &mut s.y)?;
        }
        s.w_skip.clear();
        if let Some(w_skip) = &self.sae.p.w_skip {
            read_into(w_skip, &mut s.w_skip)?;
        }
        Ok(())
    }

    /// Reads `x` and the weights; `x'` and `h = x' W_enc + b_enc` (without `b_enc` when
    /// `bias_later`: the architecture's first pass adds it).
    fn encode_into(&self, s: &mut Scratch, x: &Tensor, bias_later: bool) -> Result<()> {
        let sae = &self.sae;
        let (n, d_in) = x.dims2()?;
        let d_sae = self.cfg.sae.d_sae;
        (s.n, s.d_in, s.d_sae) = (n, d_in, d_sae);
        read_into(x, &mut s.x)?;
        match sae.b_enc() {
            Some(b_enc) => read_into(b_enc, &mut s.b_enc)?,
            None if bias_later => s.b_enc.clear(),
            None => {
                return Err(Error::Weights {
                    name: "b_enc".into(),
                    problem: "missing (the analytic step needs it)".into(),
                })
            }
        }
        read_into(&sae.p.w_enc, &mut s.w_enc)?;
        read_into(&sae.p.w_dec, &mut s.w_dec)?;
        read_into(&sae.p.b_dec, &mut s.b_dec)?;
        s.x_in.clear();
        s.x_in.extend_from_slice(&s.x);
        if sae.cfg.apply_b_dec_to_input {
            for row in s.x_in.chunks_exact_mut(d_in) {
                row.iter_mut().zip(&s.b_dec).for_each(|(v, &b)| *v -= b);
            }
        }
        let h = sized(&mut s.h, n * d_sae);
        // Standard and jumprelu add b_enc in their first pass over h (`bias_later`; gated
        // has none: `h` is `x' W_enc`); the others get it from the product, accumulated
        // onto rows of b_enc.
        if !bias_later {
            for row in h.chunks_exact_mut(d_sae) {
                row.copy_from_slice(&s.b_enc);
            }
        }
        let (x_in, w_enc) = (Mat::new(&s.x_in, n, d_in), Mat::new(&s.w_enc, d_in, d_sae));
        matmul(h, x_in, w_enc, !bias_later);
        Ok(())
    }

    /// Standard: `f = relu(h)` (in place of `h`), L1 weighted by the decoder norms.
    pub(crate) fn analytic_standard(
        &self,
        s: &mut Scratch,
        coefficient: f64,
    ) -> Result<(Analytic, Grads)> {
        let (n, d_out, d_sae) = (s.n, s.d_out, s.d_sae);
        let norms = row_norms(&s.w_dec, d_out);
        let b_enc = &s.b_enc;
        s.h.par_chunks_mut(BLOCK_ROWS * d_sae).for_each(|block| {
            for row in block.chunks_exact_mut(d_sae) {
                row.iter_mut()
                    .zip(b_enc)
                    .for_each(|(v, &b)| *v = (*v + b).max(0.0));
            }
        });
        let f = std::mem::take(&mut s.h);
        let mse = decode_dense(s, &f);
        let l1: Vec<f32> = norms
            .iter()
            .map(|&w| (coefficient as f32) * w / n as f32)
            .collect();
        // One branch-free pass per block of rows: ∂h = (∂f + λ‖W_dec,i‖/n) · [f > 0],
        // with the column sums of ∂h (∂b_enc), of f and of the firings.
        let block = BLOCK_ROWS * d_sae;
        let parts: Vec<[Vec<f32>; 3]> =
            s.dh.par_chunks_mut(block)
                .zip(f.par_chunks(block))
                .map(|(gb, fb)| standard_block(gb, fb, &l1))
                .collect();
        let [gb_enc, fired, f_sum] =
            [0, 1, 2].map(|i| sum_blocks(parts.iter().map(|p| p[i].clone()), d_sae));
        s.weight_grads(&f);
        let l1_total = s.add_l1_norm_grad(&f_sum, &norms, coefficient);
        s.h = f;
        let out = analytic_out(mse, coefficient * l1_total / n as f64, &fired);
        Ok((out, Grads::new(gb_enc, s)))
    }
}

impl Scratch {
    /// `∂W_dec = fᵀ g` and `∂W_enc = x'ᵀ ∂h` (from `dh`), into `gw_dec` and `gw_enc`;
    /// with a skip connection, `∂W_skip = gᵀ x` into `gw_skip`.
    pub(crate) fn weight_grads(&mut self, f: &[f32]) {
        let (n, d_in, d_sae, d_out) = (self.n, self.d_in, self.d_sae, self.d_out);
        let (f, g) = (Mat::new(f, n, d_sae), Mat::new(&self.g, n, d_out));
        let gw_dec = sized(&mut self.gw_dec, d_sae * d_out);
        matmul_long_inner(gw_dec, f.t(), g, &mut self.partial);
        let (x_in, dh) = (Mat::new(&self.x_in, n, d_in), Mat::new(&self.dh, n, d_sae));
        let gw_enc = sized(&mut self.gw_enc, d_in * d_sae);
        matmul_long_inner(gw_enc, x_in.t(), dh, &mut self.partial);
        if !self.w_skip.is_empty() {
            let gw_skip = sized(&mut self.gw_skip, d_out * d_in);
            let x = Mat::new(&self.x, n, d_in);
            matmul_long_inner(gw_skip, g.t(), x, &mut self.partial);
        }
    }

    /// The target rows: a transcoder's `y`, otherwise `x`.
    pub(crate) fn target(&self) -> &[f32] {
        if self.pair {
            &self.y
        } else {
            &self.x
        }
    }

    /// `g = 2 (x̂ − y) / n` from `recon` and the target into `g` ([`mse_grad`]).
    pub(crate) fn target_mse_grad(&mut self) -> f64 {
        let mut g = std::mem::take(&mut self.g);
        let mse = mse_grad(&self.recon, self.target(), self.n, &mut g);
        self.g = g;
        mse
    }

    /// `∂W_dec,i += per_latent_i · W_dec,i / ‖W_dec,i‖`: a penalty's gradient through
    /// the decoder norms.
    pub(crate) fn add_norm_grad(&mut self, per_latent: &[f32], norms: &[f32]) {
        let d_out = self.d_out;
        let rows = self
            .gw_dec
            .chunks_exact_mut(d_out)
            .zip(self.w_dec.chunks_exact(d_out));
        for ((dst, w), (&g, &norm)) in rows.zip(per_latent.iter().zip(norms)) {
            axpy(dst, g / norm, w);
        }
    }

    /// The L1 penalty `(c/n) Σ_i sums_i ‖W_dec,i‖` (`sums`: the latents' column sums):
    /// its decoder-norm gradient into `gw_dec`; returns `Σ_i sums_i ‖W_dec,i‖`.
    pub(crate) fn add_l1_norm_grad(&mut self, sums: &[f32], norms: &[f32], c: f64) -> f64 {
        let n = self.n as f64;
        let per_latent: Vec<f32> = sums.iter().map(|&v| (c * v as f64 / n) as f32).collect();
        self.add_norm_grad(&per_latent, norms);
        sums.iter()
            .zip(norms)
            .map(|(&v, &w)| v as f64 * w as f64)
            .sum()
    }

    /// The sparse steps' weight gradients, given flat.
    pub(crate) fn set_weight_grads(&mut self, gw_enc: Vec<f32>, gw_dec: Vec<f32>) {
        self.gw_enc = gw_enc;
        self.gw_dec = gw_dec;
    }
}

impl Grads {
    pub(crate) fn new(gb_enc: Vec<f32>, s: &Scratch) -> Self {
        let mut g_sum = vec![0f32; s.d_out];
        add_column_sums(&mut g_sum, &s.g);
        Self { gb_enc, g_sum }
    }

    /// `∂W_enc, ∂b_enc, ∂W_dec, ∂b_dec` as tensors into `out`, with
    /// `∂b_dec = Σ_rows g − W_enc ∂b_enc` (the second term when `apply_b_dec_to_input`;
    /// for gated, `gb_enc` is `Σ_rows ∂(x' W_enc)` and there is no `b_enc`).
    fn finish(
        self,
        t: &SaeTrainer,
        s: &Scratch,
        out: &mut SaeParams<Option<Tensor>>,
    ) -> Result<()> {
        let (d_in, d_sae, d_out) = (s.d_in, s.d_sae, s.d_out);
        let mut gb_dec = self.g_sum;
        if t.sae.cfg.apply_b_dec_to_input {
            for (a, o) in gb_dec.iter_mut().enumerate() {
                *o -= super::kernels::dot(&s.w_enc[a * d_sae..][..d_sae], &self.gb_enc);
            }
        }
        let dev = Device::Cpu;
        out.w_enc = Some(Tensor::from_slice(&s.gw_enc, (d_in, d_sae), &dev)?);
        if t.sae.b_enc().is_some() {
            out.b_enc = Some(Some(Tensor::from_vec(self.gb_enc, d_sae, &dev)?));
        }
        out.w_dec = Some(Tensor::from_slice(&s.gw_dec, (d_sae, d_out), &dev)?);
        out.b_dec = Some(Tensor::from_vec(gb_dec, d_out, &dev)?);
        Ok(())
    }
}

/// The standard pass over one block of rows of `∂f` (turned into `∂h`) and `f`: the
/// column sums of `∂h`, of the firings and of `f`.
fn standard_block(dh: &mut [f32], f: &[f32], l1: &[f32]) -> [Vec<f32>; 3] {
    let d = l1.len();
    let [mut gb_enc, mut fired, mut f_sum] = [0, 1, 2].map(|_| vec![0f32; d]);
    for (grow, frow) in dh.chunks_exact_mut(d).zip(f.chunks_exact(d)) {
        let cols = gb_enc
            .iter_mut()
            .zip(fired.iter_mut())
            .zip(f_sum.iter_mut());
        let row = grow.iter_mut().zip(frow).zip(l1);
        for (((g, &f), &l), ((gb, fi), fs)) in row.zip(cols) {
            let on = if f > 0.0 { 1f32 } else { 0.0 };
            let v = (*g + l) * on;
            *g = v;
            *gb += v;
            *fi += on;
            *fs += f;
        }
    }
    [gb_enc, fired, f_sum]
}

/// `x̂ = f W_dec + b_dec` (`+ x W_skipᵀ` with a skip connection) into `recon`, `g` and
/// the MSE to the target, `∂f = g W_decᵀ` into `dh`.
pub(crate) fn decode_dense(s: &mut Scratch, f: &[f32]) -> f64 {
    let (n, d_in, d_sae, d_out) = (s.n, s.d_in, s.d_sae, s.d_out);
    let recon = sized(&mut s.recon, n * d_out);
    for row in recon.chunks_exact_mut(d_out) {
        row.copy_from_slice(&s.b_dec);
    }
    matmul(
        recon,
        Mat::new(f, n, d_sae),
        Mat::new(&s.w_dec, d_sae, d_out),
        true,
    );
    if !s.w_skip.is_empty() {
        let w_skip = Mat::new(&s.w_skip, d_out, d_in);
        matmul(recon, Mat::new(&s.x, n, d_in), w_skip.t(), true);
    }
    let mse = s.target_mse_grad();
    let dh = sized(&mut s.dh, n * d_sae);
    let w_dec_t = Mat::new(&s.w_dec, d_sae, d_out).t();
    matmul(dh, Mat::new(&s.g, n, d_out), w_dec_t, false);
    mse
}

pub(crate) fn analytic_out(mse: f64, aux: f64, fired: &[f32]) -> Analytic {
    Analytic {
        grads: SaeParams::default(),
        mse,
        aux,
        explained_variance: 0.0,
        fired: fired.iter().map(|&c| c as u32).collect(),
        min_kept: None,
    }
}
