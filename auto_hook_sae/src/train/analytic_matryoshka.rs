//! Hand-derived gradients of matryoshka_batchtopk training (CPU, f32): batchtopk's
//! selection, then per row the nested prefix reconstructions of the kept latents only.
//!
//! With levels of widths `w_0 < … < w_{m−1} = d_sae`, level `l` reconstructs
//! `R_l = b_dec + Σ_{kept j < w_l} h_j W_dec,j` and adds `mean_rows ‖R_l − x‖²` to the
//! loss (the widest is the main MSE, the others join the aux term). With
//! `g_l = 2 (R_l − x) / n`, a kept latent `j` of band `b` (`w_{b−1} ≤ j < w_b`) is in
//! every level `l ≥ b`, so its gradient is taken against `G_b = Σ_{l ≥ b} g_l`
//! (accumulated from the widest level down): one dot (`∂h_j = W_dec,j · G_b`) and one
//! axpy (`∂W_dec,j += h_j G_b`) per kept latent, and `∂b_dec` sums `G_0` over the rows.
//! The aux-k term is batchtopk's (residual `x − R_{m−1}`, all latents) or, with
//! `use_matryoshka_aux_loss`, one per level (its band's dead latents, residual
//! `x − R_l`), each [`SaeTrainer::aux_k`].

use super::analytic::{Analytic, Grads, Scratch};
use super::analytic_topk::{sparse_weight_grads, AuxK, RowGrads};
use super::kernels::{axpy, dot, row_norms, sized, sum_squares};
use super::sae::SaeTrainer;
use crate::error::Result;
use crate::select;

impl SaeTrainer {
    /// Matryoshka BatchTopK (`k · n` kept over the batch) with the levels `widths`
    /// (increasing, the last `d_sae`).
    pub(crate) fn analytic_matryoshka(
        &self,
        s: &mut Scratch,
        k: f64,
        widths: &[usize],
    ) -> Result<(Analytic, Grads)> {
        let (n, d_in, d_sae) = (s.n, s.d_in, s.d_sae);
        let norms = self
            .cfg
            .sae
            .rescale_acts_by_decoder_norm
            .then(|| row_norms(&s.w_dec, d_in));
        let (main, min_kept) = select::batch(&s.h, d_sae, norms.as_deref(), k);
        let mut aux = self.level_aux_terms(s, norms.as_deref(), widths);
        let mut lv = Levels::new(widths, d_in);
        let (mut recon, mut g) = (std::mem::take(&mut s.recon), std::mem::take(&mut s.g));
        sized(&mut recon, n * d_in);
        sized(&mut g, n * d_in);
        let mut gh: RowGrads = vec![Vec::new(); n];
        let mut gw_dec = vec![0f32; d_sae * d_in];
        let mut fired = vec![0u32; d_sae];
        let mut aux_loss = 0f64;
        let two_n = (2.0 / n as f64) as f32;
        for (i, kept) in main.iter().enumerate() {
            lv.decode(s, i, kept);
            lv.grads(&s.x[i * d_in..][..d_in], two_n);
            recon[i * d_in..][..d_in].copy_from_slice(lv.recon(widths.len() - 1));
            g[i * d_in..][..d_in].copy_from_slice(lv.g(0));
            let mut start = 0;
            for (b, &end) in lv.ends.iter().enumerate() {
                let gb = lv.g(b);
                for &j in &kept[start..end] {
                    fired[j] += 1;
                    let w = &s.w_dec[j * d_in..][..d_in];
                    gh[i].push((j, dot(w, gb)));
                    axpy(&mut gw_dec[j * d_in..][..d_in], s.h[i * d_sae + j], gb);
                }
                start = end;
            }
            for (l, term) in aux.iter_mut() {
                aux_loss += term.row(s, i, lv.recon(*l), &mut gh[i], &mut gw_dec);
            }
        }
        (s.recon, s.g) = (recon, g);
        let gb_enc = sparse_weight_grads(s, &gh, gw_dec);
        let (inner, widest) = lv.sq.split_at(widths.len() - 1);
        let out = Analytic {
            grads: Default::default(),
            mse: widest[0] / n as f64,
            aux: inner.iter().sum::<f64>() / n as f64 + aux_loss,
            explained_variance: 0.0,
            fired,
            min_kept,
        };
        // `s.g` holds `G_0`, so `Σ_rows g` is the levels' `∂b_dec`.
        Ok((out, Grads::new(gb_enc, s)))
    }

    /// The aux-k terms with the level whose reconstruction each targets: one over every
    /// latent against the widest level, or with `use_matryoshka_aux_loss` one per level
    /// over its band (levels without dead latents have none).
    fn level_aux_terms(
        &self,
        s: &Scratch,
        norms: Option<&[f32]>,
        widths: &[usize],
    ) -> Vec<(usize, AuxK)> {
        let dead = self.dead_mask();
        if !self.cfg.use_matryoshka_aux_loss {
            let term = self.aux_k(s, norms, &dead, 0..s.d_sae);
            return term.map(|t| (widths.len() - 1, t)).into_iter().collect();
        }
        let mut prev = 0;
        let mut terms = Vec::new();
        for (l, &width) in widths.iter().enumerate() {
            if let Some(t) = self.aux_k(s, norms, &dead, prev..width) {
                terms.push((l, t));
            }
            prev = width;
        }
        terms
    }
}

/// One row's levels: `R_l` and `G_l` (`m × d_in` each), where each band's kept latents
/// end in the row's (ascending) kept list, and the squared errors summed over the rows.
struct Levels<'a> {
    widths: &'a [usize],
    d_in: usize,
    recon: Vec<f32>,
    g: Vec<f32>,
    ends: Vec<usize>,
    /// `Σ_rows ‖R_l − x‖²` per level.
    sq: Vec<f64>,
}

impl<'a> Levels<'a> {
    fn new(widths: &'a [usize], d_in: usize) -> Self {
        let m = widths.len();
        Self {
            widths,
            d_in,
            recon: vec![0f32; m * d_in],
            g: vec![0f32; m * d_in],
            ends: vec![0; m],
            sq: vec![0f64; m],
        }
    }

    fn recon(&self, l: usize) -> &[f32] {
        &self.recon[l * self.d_in..][..self.d_in]
    }

    fn g(&self, l: usize) -> &[f32] {
        &self.g[l * self.d_in..][..self.d_in]
    }

    /// `R_l` of row `i` from its kept latents (ascending), each level from the last.
    fn decode(&mut self, s: &Scratch, i: usize, kept: &[usize]) {
        let (d_in, d_sae) = (self.d_in, s.d_sae);
        let mut start = 0;
        for (l, &width) in self.widths.iter().enumerate() {
            let end = start + kept[start..].partition_point(|&j| j < width);
            self.ends[l] = end;
            let (done, rest) = self.recon.split_at_mut(l * d_in);
            let r = &mut rest[..d_in];
            r.copy_from_slice(if l == 0 {
                &s.b_dec
            } else {
                &done[(l - 1) * d_in..]
            });
            for &j in &kept[start..end] {
                axpy(r, s.h[i * d_sae + j], &s.w_dec[j * d_in..][..d_in]);
            }
            start = end;
        }
    }

    /// `G_l = 2 (R_l − x) / n + G_{l+1}`, from the widest level down, and each level's
    /// squared error.
    fn grads(&mut self, x: &[f32], two_n: f32) {
        let d_in = self.d_in;
        for l in (0..self.widths.len()).rev() {
            let (lo, hi) = self.g.split_at_mut((l + 1) * d_in);
            let (gl, r) = (&mut lo[l * d_in..], &self.recon[l * d_in..][..d_in]);
            gl.iter_mut()
                .zip(r.iter().zip(x))
                .for_each(|(o, (&r, &x))| *o = r - x);
            self.sq[l] += sum_squares(gl);
            match hi.get(..d_in) {
                Some(next) => gl
                    .iter_mut()
                    .zip(next)
                    .for_each(|(o, &g)| *o = two_n * *o + g),
                None => gl.iter_mut().for_each(|o| *o *= two_n),
            }
        }
    }
}
