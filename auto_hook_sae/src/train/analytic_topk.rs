//! Hand-derived gradients of topk and batchtopk training (CPU, f32): after the dense
//! encode, everything touches only the kept latents of each row. `f = h · mask`, so
//! `∂h = ∂f` on the kept entries; the aux-k term reconstructs the detached residual
//! `x − x̂` from the top `d_in / 2` dead latents of each row (no bias).
//!
//! TopK keeps the `k` largest positive scores `h_ij · ‖W_dec,j‖` (or `h_ij`) of each
//! row; BatchTopK the `k · n` largest of the whole batch, and reports the smallest kept
//! score for its threshold.

use super::analytic::{Analytic, Grads, Scratch};
use super::kernels::{axpy, dot, mse_grad, row_norms};
use super::sae::SaeTrainer;
use crate::error::Result;
use crate::select;
use std::ops::Range;

/// Per row, `(latent, ∂h)`.
pub(crate) type RowGrads = Vec<Vec<(usize, f32)>>;

impl SaeTrainer {
    /// TopK (`batch = false`, `k` per row) or BatchTopK (`k · n` over the batch).
    pub(crate) fn analytic_topk(
        &self,
        s: &mut Scratch,
        k: f64,
        batch: bool,
    ) -> Result<(Analytic, Grads)> {
        let (n, d_in, d_sae) = (s.n, s.d_in, s.d_sae);
        let norms = self
            .cfg
            .sae
            .rescale_acts_by_decoder_norm
            .then(|| row_norms(&s.w_dec, d_in));
        let (main, min_kept) = if batch {
            select::batch(&s.h, d_sae, norms.as_deref(), k)
        } else {
            (
                select::rows(&s.h, d_sae, norms.as_deref(), k as usize, None),
                None,
            )
        };
        let recon = super::kernels::sized(&mut s.recon, n * d_in);
        for (i, o) in recon.chunks_exact_mut(d_in).enumerate() {
            o.copy_from_slice(&s.b_dec);
            for &j in &main[i] {
                axpy(o, s.h[i * d_sae + j], &s.w_dec[j * d_in..][..d_in]);
            }
        }
        let mse = mse_grad(&s.recon, &s.x, n, &mut s.g);
        let mut gh: RowGrads = vec![Vec::new(); n];
        let mut gw_dec = vec![0f32; d_sae * d_in];
        let mut fired = vec![0u32; d_sae];
        for i in 0..n {
            let gi = &s.g[i * d_in..][..d_in];
            for &j in &main[i] {
                fired[j] += 1;
                let w = &s.w_dec[j * d_in..][..d_in];
                gh[i].push((j, dot(w, gi)));
                axpy(&mut gw_dec[j * d_in..][..d_in], s.h[i * d_sae + j], gi);
            }
        }
        let aux = self.aux_grad(s, norms.as_deref(), &mut gh, &mut gw_dec);
        let gb_enc = sparse_weight_grads(s, &gh, gw_dec);
        let out = Analytic {
            grads: Default::default(),
            mse,
            aux,
            explained_variance: 0.0,
            fired,
            min_kept,
        };
        Ok((out, Grads::new(gb_enc, s)))
    }

    /// The aux-k loss over every latent, towards the residual `x − x̂` (see
    /// [`SaeTrainer::aux_k_loss`]); adds its gradients to `gh` and `gw_dec`.
    fn aux_grad(
        &self,
        s: &Scratch,
        norms: Option<&[f32]>,
        gh: &mut RowGrads,
        gw_dec: &mut [f32],
    ) -> f64 {
        let d_in = s.d_in;
        let Some(mut aux) = self.aux_k(s, norms, &self.dead_mask(), 0..s.d_sae) else {
            return 0.0;
        };
        (0..s.n)
            .map(|i| aux.row(s, i, &s.recon[i * d_in..][..d_in], &mut gh[i], gw_dec))
            .sum()
    }

    /// The aux-k term over the latents `range` (see [`SaeTrainer::aux_k_loss_in`]): each
    /// row's top `d_in / 2` dead latents of `range`; `None` when none of them is dead.
    pub(crate) fn aux_k(
        &self,
        s: &Scratch,
        norms: Option<&[f32]>,
        dead: &[bool],
        range: Range<usize>,
    ) -> Option<AuxK> {
        let n_dead = dead[range.clone()].iter().filter(|d| **d).count();
        if n_dead == 0 {
            return None;
        }
        let k_aux = s.d_in / 2;
        let scale = (n_dead as f64 / k_aux.max(1) as f64).min(1.0);
        let c = self.cfg.aux_loss_coefficient * scale;
        let k_aux = k_aux.min(n_dead).max(1);
        // The dead latents of `range` (select::rows scans only the allowed ones).
        let only: Vec<bool> = (0..s.d_sae)
            .map(|j| dead[j] && range.contains(&j))
            .collect();
        Some(AuxK {
            sel: select::rows(&s.h, s.d_sae, norms, k_aux, Some(&only)),
            loss_scale: c / s.n as f64,
            grad_scale: (2.0 * c / s.n as f64) as f32,
            diff: vec![0f32; s.d_in],
        })
    }
}

/// One aux-k term: the dead latents each row selects and its coefficient.
pub(crate) struct AuxK {
    sel: Vec<Vec<usize>>,
    /// `c · scale / n` (on the sum of squares).
    loss_scale: f64,
    /// `2 c · scale / n`.
    grad_scale: f32,
    diff: Vec<f32>,
}

impl AuxK {
    /// Row `i`'s term, reconstructing the detached residual `x_i − recon` (`recon`: this
    /// row's reconstruction the term targets): adds its gradients to the row's `gh` and
    /// to `gw_dec`, returns its loss.
    pub(crate) fn row(
        &mut self,
        s: &Scratch,
        i: usize,
        recon: &[f32],
        gh: &mut Vec<(usize, f32)>,
        gw_dec: &mut [f32],
    ) -> f64 {
        let (d_in, d_sae) = (s.d_in, s.d_sae);
        let (sel, diff) = (&self.sel[i], &mut self.diff);
        // aux_recon − residual = aux_recon − (x − recon)
        let xi = &s.x[i * d_in..][..d_in];
        diff.iter_mut()
            .zip(recon.iter().zip(xi))
            .for_each(|(o, (r, x))| *o = r - x);
        for &j in sel {
            axpy(diff, s.h[i * d_sae + j], &s.w_dec[j * d_in..][..d_in]);
        }
        let total = diff.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>();
        diff.iter_mut().for_each(|v| *v *= self.grad_scale);
        for &j in sel {
            let v = dot(&s.w_dec[j * d_in..][..d_in], diff);
            match gh.iter_mut().find(|(l, _)| *l == j) {
                Some(e) => e.1 += v,
                None => gh.push((j, v)),
            }
            axpy(&mut gw_dec[j * d_in..][..d_in], s.h[i * d_sae + j], diff);
        }
        self.loss_scale * total
    }
}

/// From the kept latents' `∂h` of each row: `∂b_enc` (returned) and `∂W_enc = x'ᵀ ∂h`,
/// set with `gw_dec` as the weight gradients of `s`.
pub(crate) fn sparse_weight_grads(s: &mut Scratch, gh: &RowGrads, gw_dec: Vec<f32>) -> Vec<f32> {
    let (d_in, d_sae) = (s.d_in, s.d_sae);
    let mut gw_enc_t = vec![0f32; d_sae * d_in];
    let mut gb_enc = vec![0f32; d_sae];
    for (i, row) in gh.iter().enumerate() {
        let xi = &s.x_in[i * d_in..][..d_in];
        for &(j, v) in row {
            gb_enc[j] += v;
            axpy(&mut gw_enc_t[j * d_in..][..d_in], v, xi);
        }
    }
    let mut gw_enc = vec![0f32; d_in * d_sae];
    for (j, row) in gw_enc_t.chunks_exact(d_in).enumerate() {
        for (a, &v) in row.iter().enumerate() {
            gw_enc[a * d_sae + j] = v;
        }
    }
    s.set_weight_grads(gw_enc, gw_dec);
    gb_enc
}
