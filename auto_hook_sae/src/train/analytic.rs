//! Hand-derived gradients of the standard and topk training losses (CPU, f32): a few
//! large matmuls and fused loops over the latents instead of candle's autograd graph of
//! small elementwise ops. The autograd graph ([`SaeTrainer::forward`]) stays the
//! reference; the tests below check these gradients against it.
//!
//! With `x' = x − b_dec` (when `apply_b_dec_to_input`), `h = x' W_enc + b_enc`,
//! `f` the latents, `x̂ = f W_dec + b_dec`, `e = x̂ − x` and `n` rows:
//! `mse = Σ e² / n`, so `g = ∂/∂x̂ = 2e / n`, `∂/∂f = g W_decᵀ`, `∂W_dec = fᵀ g`,
//! `∂b_dec = Σ_rows g − (Σ_rows ∂h) W_encᵀ`, `∂W_enc = x'ᵀ ∂h`, `∂b_enc = Σ_rows ∂h`.
//! Standard: `f = relu(h)`, plus `λ/n Σ f_i ‖W_dec,i‖`. TopK: `f = h · mask` and the
//! aux-k term on the dead latents (residual detached).

use super::sae::SaeTrainer;
use crate::config::Architecture;
use crate::error::Result;
use candle_core::{DType, Tensor};

/// Gradients (in the order of the trainer's variables) and losses of one step.
pub(crate) struct Analytic {
    pub(crate) grads: Vec<Option<Tensor>>,
    pub(crate) mse: f64,
    pub(crate) aux: f64,
    pub(crate) recon: Tensor,
    /// Rows in which each latent is non-zero.
    pub(crate) fired: Vec<u32>,
}

/// The inputs shared by both architectures, as flat f32 buffers.
struct Dense {
    n: usize,
    d_in: usize,
    d_sae: usize,
    /// `x'` as a tensor `[n, d_in]`.
    x_in: Tensor,
    x: Vec<f32>,
    /// `h` `[n, d_sae]`, row-major.
    h: Vec<f32>,
    w_dec: Vec<f32>,
    b_dec: Vec<f32>,
}

impl SaeTrainer {
    /// Whether [`SaeTrainer::analytic`] handles this SAE (standard or topk, f32, CPU).
    pub(crate) fn analytic_supported(&self) -> bool {
        let cfg = &self.cfg.sae;
        cfg.dtype == DType::F32
            && self.sae.w_enc.device().is_cpu()
            && matches!(
                cfg.architecture,
                Architecture::Standard | Architecture::TopK { .. }
            )
    }

    /// The loss gradients on (scaled) inputs `x` `[n, d_in]`, computed by hand.
    pub(crate) fn analytic(&self, x: &Tensor, coefficient: f64) -> Result<Analytic> {
        let sae = &self.sae;
        let x = x.contiguous()?;
        let x_in = if sae.cfg.apply_b_dec_to_input {
            x.broadcast_sub(&sae.b_dec)?
        } else {
            x.clone()
        };
        let h = x_in.matmul(&sae.w_enc)?;
        let (n, d_sae) = h.dims2()?;
        let mut h: Vec<f32> = h.flatten_all()?.to_vec1()?;
        let b_enc: Vec<f32> = sae.b_enc.to_vec1()?;
        for row in h.chunks_exact_mut(d_sae) {
            row.iter_mut().zip(&b_enc).for_each(|(v, &b)| *v += b);
        }
        let dense = Dense {
            n,
            d_in: x.dim(1)?,
            d_sae,
            x: x.flatten_all()?.to_vec1()?,
            h,
            w_dec: sae.w_dec.flatten_all()?.to_vec1()?,
            b_dec: sae.b_dec.to_vec1()?,
            x_in,
        };
        match sae.cfg.architecture {
            Architecture::TopK { k } => self.analytic_topk(dense, k),
            _ => self.analytic_standard(dense, coefficient),
        }
    }

    fn analytic_standard(&self, d: Dense, coefficient: f64) -> Result<Analytic> {
        let dev = self.sae.w_enc.device().clone();
        let (n, d_in, d_sae) = (d.n, d.d_in, d.d_sae);
        let norms: Vec<f32> = self.sae.decoder_norms()?.to_vec1()?;
        let mut f = d.h;
        f.iter_mut().for_each(|v| *v = v.max(0.0));
        let f = Tensor::from_vec(f, (n, d_sae), &dev)?;
        let recon = f.matmul(&self.sae.w_dec)?.broadcast_add(&self.sae.b_dec)?;
        let recon_v: Vec<f32> = recon.flatten_all()?.to_vec1()?;
        let (g, mse) = mse_grad(&recon_v, &d.x, n);
        let g = Tensor::from_vec(g, (n, d_in), &dev)?;
        let mut dh: Vec<f32> = g.matmul(&self.sae.w_dec.t()?)?.flatten_all()?.to_vec1()?;
        let fv: Vec<f32> = f.flatten_all()?.to_vec1()?;
        let l1: Vec<f32> = norms
            .iter()
            .map(|&w| (coefficient as f32) * w / n as f32)
            .collect();
        // One branch-free pass: ∂h = (∂f + λ‖W_dec,i‖/n) · [f > 0], with the column sums
        // of ∂h (∂b_enc), of f and of the firings.
        let mut fired = vec![0f32; d_sae];
        let mut f_sum = vec![0f32; d_sae];
        let mut gb_enc = vec![0f32; d_sae];
        for (grow, frow) in dh.chunks_exact_mut(d_sae).zip(fv.chunks_exact(d_sae)) {
            for j in 0..d_sae {
                let on = if frow[j] > 0.0 { 1f32 } else { 0.0 };
                let v = (grow[j] + l1[j]) * on;
                grow[j] = v;
                gb_enc[j] += v;
                fired[j] += on;
                f_sum[j] += frow[j];
            }
        }
        let mut l1_total = 0f64;
        let mut w_dec_l1 = vec![0f32; d_sae * d_in];
        for j in 0..d_sae {
            l1_total += f_sum[j] as f64 * norms[j] as f64;
            let c = (coefficient * f_sum[j] as f64 / n as f64) as f32 / norms[j];
            let (src, dst) = (
                &d.w_dec[j * d_in..][..d_in],
                &mut w_dec_l1[j * d_in..][..d_in],
            );
            dst.iter_mut().zip(src).for_each(|(o, &w)| *o = c * w);
        }
        let dh = Tensor::from_vec(dh, (n, d_sae), &dev)?;
        let gw_dec = (f.t()?.matmul(&g)? + Tensor::from_vec(w_dec_l1, (d_sae, d_in), &dev)?)?;
        let gw_enc = d.x_in.t()?.matmul(&dh)?;
        let gb_enc = Tensor::from_vec(gb_enc, d_sae, &dev)?;
        let gb_dec = self.b_dec_grad(&g, &gb_enc)?;
        Ok(Analytic {
            grads: vec![Some(gw_enc), Some(gb_enc), Some(gw_dec), Some(gb_dec)],
            mse,
            aux: coefficient * l1_total / n as f64,
            recon,
            fired: fired.iter().map(|&c| c as u32).collect(),
        })
    }

    /// `∂b_dec = Σ_rows g − (Σ_rows ∂h) W_encᵀ` (the second term when `apply_b_dec_to_input`).
    fn b_dec_grad(&self, g: &Tensor, gb_enc: &Tensor) -> Result<Tensor> {
        let direct = g.sum(0)?;
        if !self.sae.cfg.apply_b_dec_to_input {
            return Ok(direct);
        }
        let through = gb_enc
            .unsqueeze(0)?
            .matmul(&self.sae.w_enc.t()?)?
            .squeeze(0)?;
        Ok((direct - through)?)
    }

    fn analytic_topk(&self, d: Dense, k: usize) -> Result<Analytic> {
        let dev = self.sae.w_enc.device().clone();
        let (n, d_in, d_sae) = (d.n, d.d_in, d.d_sae);
        let norms = self.selection_norms()?;
        let main = select(&d.h, d_sae, norms.as_deref(), k, None);
        let mut recon = vec![0f32; n * d_in];
        for (i, o) in recon.chunks_exact_mut(d_in).enumerate() {
            o.copy_from_slice(&d.b_dec);
            for &j in &main[i] {
                axpy(o, d.h[i * d_sae + j], &d.w_dec[j * d_in..][..d_in]);
            }
        }
        let (g, mse) = mse_grad(&recon, &d.x, n);
        let mut gh: Vec<Vec<(usize, f32)>> = vec![Vec::new(); n];
        let mut gw_dec = vec![0f32; d_sae * d_in];
        let mut fired = vec![0u32; d_sae];
        for i in 0..n {
            let gi = &g[i * d_in..][..d_in];
            for &j in &main[i] {
                fired[j] += 1;
                let w = &d.w_dec[j * d_in..][..d_in];
                gh[i].push((j, dot(w, gi)));
                axpy(&mut gw_dec[j * d_in..][..d_in], d.h[i * d_sae + j], gi);
            }
        }
        let aux = self.aux_grad(&d, &recon, norms.as_deref(), &mut gh, &mut gw_dec)?;
        let x_in: Vec<f32> = d.x_in.flatten_all()?.to_vec1()?;
        let mut gw_enc_t = vec![0f32; d_sae * d_in];
        let mut gb_enc = vec![0f32; d_sae];
        for (i, row) in gh.iter().enumerate() {
            let xi = &x_in[i * d_in..][..d_in];
            for &(j, v) in row {
                gb_enc[j] += v;
                axpy(&mut gw_enc_t[j * d_in..][..d_in], v, xi);
            }
        }
        let g = Tensor::from_vec(g, (n, d_in), &dev)?;
        let gb_enc = Tensor::from_vec(gb_enc, d_sae, &dev)?;
        let gw_enc = Tensor::from_vec(gw_enc_t, (d_sae, d_in), &dev)?
            .t()?
            .contiguous()?;
        let gb_dec = self.b_dec_grad(&g, &gb_enc)?;
        Ok(Analytic {
            grads: vec![
                Some(gw_enc),
                Some(gb_enc),
                Some(Tensor::from_vec(gw_dec, (d_sae, d_in), &dev)?),
                Some(gb_dec),
            ],
            mse,
            aux,
            recon: Tensor::from_vec(recon, (n, d_in), &dev)?,
            fired,
        })
    }

    /// The aux-k loss (see [`SaeTrainer::aux_k_loss`]); adds its gradients to `gh`
    /// (per row, `(latent, ∂h)`) and `gw_dec`.
    fn aux_grad(
        &self,
        d: &Dense,
        recon: &[f32],
        norms: Option<&[f32]>,
        gh: &mut [Vec<(usize, f32)>],
        gw_dec: &mut [f32],
    ) -> Result<f64> {
        let dead = self.dead_mask();
        let n_dead = dead.iter().filter(|d| **d).count();
        if n_dead == 0 {
            return Ok(0.0);
        }
        let (n, d_in, d_sae) = (d.n, d.d_in, d.d_sae);
        let k_aux = d_in / 2;
        let scale = (n_dead as f64 / k_aux.max(1) as f64).min(1.0);
        let c = self.cfg.aux_loss_coefficient * scale;
        let k_aux = k_aux.min(n_dead).max(1);
        let sel = select(&d.h, d_sae, norms, k_aux, Some(&dead));
        let mut total = 0f64;
        let mut diff = vec![0f32; d_in];
        for i in 0..n {
            // aux_recon − residual = aux_recon − (x − x̂)
            for t in 0..d_in {
                diff[t] = recon[i * d_in + t] - d.x[i * d_in + t];
            }
            for &j in &sel[i] {
                axpy(&mut diff, d.h[i * d_sae + j], &d.w_dec[j * d_in..][..d_in]);
            }
            total += diff.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>();
            let s = (2.0 * c / n as f64) as f32;
            diff.iter_mut().for_each(|v| *v *= s);
            for &j in &sel[i] {
                let w = &d.w_dec[j * d_in..][..d_in];
                let v = dot(w, &diff);
                match gh[i].iter_mut().find(|(l, _)| *l == j) {
                    Some(e) => e.1 += v,
                    None => gh[i].push((j, v)),
                }
                axpy(&mut gw_dec[j * d_in..][..d_in], d.h[i * d_sae + j], &diff);
            }
        }
        Ok(c * total / n as f64)
    }
}

/// `g = 2 (x̂ − x) / n` and `Σ (x̂ − x)² / n`.
fn mse_grad(recon: &[f32], x: &[f32], n: usize) -> (Vec<f32>, f64) {
    let s = 2.0 / n as f32;
    let mut sq = 0f64;
    let g = recon
        .iter()
        .zip(x)
        .map(|(&r, &x)| {
            let e = r - x;
            sq += (e as f64) * (e as f64);
            s * e
        })
        .collect();
    (g, sq / n as f64)
}

/// Per row, the (ascending) latents kept by [`crate::activation::topk_select`] with the
/// same arguments (up to which of exactly tied scores is kept).
pub(crate) fn select(
    h: &[f32],
    d: usize,
    scale: Option<&[f32]>,
    k: usize,
    only: Option<&[bool]>,
) -> Vec<Vec<usize>> {
    if only.is_some() || k == 0 {
        return select_nth(h, d, scale, k, only);
    }
    // The main top-k keeps the k largest positive scores: one pass per row over a
    // sorted list of the best k so far.
    let mut top: Vec<(f32, usize)> = Vec::with_capacity(k + 1);
    h.chunks_exact(d)
        .map(|vals| {
            top.clear();
            for (j, &v) in vals.iter().enumerate() {
                let s = v * scale.map_or(1.0, |s| s[j]);
                let floor = if top.len() == k { top[k - 1].0 } else { 0.0 };
                if s > floor {
                    let at = top.partition_point(|&(t, _)| t >= s);
                    top.insert(at, (s, j));
                    top.truncate(k);
                }
            }
            let mut kept: Vec<usize> = top.iter().map(|&(_, j)| j).collect();
            kept.sort_unstable();
            kept
        })
        .collect()
}

/// [`select`] as [`crate::activation::topk_select`] does it, with `select_nth_unstable`.
fn select_nth(
    h: &[f32],
    d: usize,
    scale: Option<&[f32]>,
    k: usize,
    only: Option<&[bool]>,
) -> Vec<Vec<usize>> {
    let allowed: Vec<usize> = match only {
        Some(only) => (0..d).filter(|&j| only[j]).collect(),
        None => (0..d).collect(),
    };
    let k = k.min(allowed.len());
    let mut scores: Vec<(f32, usize)> = Vec::with_capacity(allowed.len());
    h.chunks_exact(d)
        .map(|vals| {
            scores.clear();
            scores.extend(
                allowed
                    .iter()
                    .map(|&j| (vals[j] * scale.map_or(1.0, |s| s[j]), j)),
            );
            if k < scores.len() {
                scores.select_nth_unstable_by(k, |a, b| b.0.total_cmp(&a.0));
            }
            let mut kept: Vec<usize> = scores[..k]
                .iter()
                .filter(|(s, _)| only.is_some() || *s > 0.0)
                .map(|&(_, j)| j)
                .collect();
            kept.sort_unstable();
            kept
        })
        .collect()
}

fn axpy(out: &mut [f32], a: f32, x: &[f32]) {
    out.iter_mut().zip(x).for_each(|(o, &x)| *o += a * x);
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(a, b)| a * b).sum()
}
