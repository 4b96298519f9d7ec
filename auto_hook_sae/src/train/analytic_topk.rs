//! Hand-derived gradients of topk and batchtopk training (CPU, f32): after the dense
//! encode, everything touches only the kept latents of each row. `f = h · mask`, so
//! `∂h = ∂f` on the kept entries; the aux-k term reconstructs the detached residual
//! `x − x̂` from the top `d_in / 2` dead latents of each row (no bias).
//!
//! TopK keeps the `k` largest positive scores `h_ij · ‖W_dec,j‖` (or `h_ij`) of each
//! row; BatchTopK the `k · n` largest of the whole batch, and reports the smallest kept
//! score for its threshold.

use super::analytic::{mse_grad, row_norms, Analytic, Grads, Scratch};
use super::kernels::{axpy, dot};
use super::sae::SaeTrainer;
use crate::error::Result;
use crate::select;

/// Per row, `(latent, ∂h)`.
type RowGrads = Vec<Vec<(usize, f32)>>;

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

    /// The aux-k loss (see [`SaeTrainer::aux_k_loss`]); adds its gradients to `gh` and
    /// `gw_dec`.
    fn aux_grad(
        &self,
        s: &Scratch,
        norms: Option<&[f32]>,
        gh: &mut RowGrads,
        gw_dec: &mut [f32],
    ) -> f64 {
        let dead = self.dead_mask();
        let n_dead = dead.iter().filter(|d| **d).count();
        if n_dead == 0 {
            return 0.0;
        }
        let (n, d_in, d_sae) = (s.n, s.d_in, s.d_sae);
        let k_aux = d_in / 2;
        let scale = (n_dead as f64 / k_aux.max(1) as f64).min(1.0);
        let c = self.cfg.aux_loss_coefficient * scale;
        let k_aux = k_aux.min(n_dead).max(1);
        let sel = select::rows(&s.h, d_sae, norms, k_aux, Some(&dead));
        let mut total = 0f64;
        let mut diff = vec![0f32; d_in];
        let grad_scale = (2.0 * c / n as f64) as f32;
        for i in 0..n {
            // aux_recon − residual = aux_recon − (x − x̂)
            let (ri, xi) = (&s.recon[i * d_in..][..d_in], &s.x[i * d_in..][..d_in]);
            diff.iter_mut()
                .zip(ri.iter().zip(xi))
                .for_each(|(o, (r, x))| *o = r - x);
            for &j in &sel[i] {
                axpy(&mut diff, s.h[i * d_sae + j], &s.w_dec[j * d_in..][..d_in]);
            }
            total += diff.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>();
            diff.iter_mut().for_each(|v| *v *= grad_scale);
            for &j in &sel[i] {
                let v = dot(&s.w_dec[j * d_in..][..d_in], &diff);
                match gh[i].iter_mut().find(|(l, _)| *l == j) {
                    Some(e) => e.1 += v,
                    None => gh[i].push((j, v)),
                }
                axpy(&mut gw_dec[j * d_in..][..d_in], s.h[i * d_sae + j], &diff);
            }
        }
        c * total / n as f64
    }
}
