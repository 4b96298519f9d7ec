//! The training forward and loss through candle's autograd: every architecture, any
//! dtype and device. It is the reference the analytic steps (`analytic*.rs`) are
//! checked against, and the step for what they do not cover (not f32, not CPU).

use super::sae::SaeTrainer;
use crate::activation;
use crate::arch::TrainForward;
use crate::error::Result;
use candle_core::{DType, Tensor};

impl SaeTrainer {
    /// The training forward and loss on (scaled) inputs `x` `[n, d_in]`.
    ///
    /// topk / batchtopk select on `h · ‖W_dec,i‖` when rescaling, and decode
    /// `(h · ‖W_dec,i‖ / ‖W_dec,i‖) W_dec`: the norms cancel in value and in gradient, so
    /// the kept latents are decoded as `h · mask` directly (SAELens's graph, fewer ops).
    #[cfg(test)]
    pub(crate) fn forward(&self, x: &Tensor, coefficient: f64) -> Result<Forward> {
        self.forward_to(x, x, coefficient)
    }

    /// [`Self::forward`] towards the target `y` (a transcoder's output rows; `x` for an
    /// SAE). A skip connection adds `x W_skipᵀ` to the reconstruction.
    pub(crate) fn forward_to(&self, x: &Tensor, y: &Tensor, coefficient: f64) -> Result<Forward> {
        let sae = &self.sae;
        let x_in = if sae.cfg.apply_b_dec_to_input {
            x.broadcast_sub(&sae.p.b_dec)?
        } else {
            x.clone()
        };
        let arch = sae.cfg.architecture.imp();
        let h = arch.pre_activation(&sae.p, &x_in)?;
        let (acts, min_kept) = arch.train_acts(self, &x_in, &h)?;
        let mut recon = arch
            .train_decode(self, &acts)?
            .broadcast_add(&sae.p.b_dec)?;
        if let Some(w_skip) = &sae.p.w_skip {
            recon = (recon + x.matmul(&w_skip.t()?)?)?;
        }
        let mse = (&recon - y)?.sqr()?.sum(1)?.mean_all()?;
        let fwd = TrainForward {
            x_in: &x_in,
            h: &h,
            acts: &acts,
            recon: &recon,
            coefficient,
        };
        let aux = arch.aux_loss(self, y, &fwd)?;
        let loss = (&mse + &aux)?;
        Ok(Forward {
            loss,
            mse,
            aux,
            acts,
            recon,
            min_kept,
        })
    }

    /// Decoder row norms when topk selection is rescaled by them.
    pub(crate) fn selection_norms(&self) -> Result<Option<Vec<f32>>> {
        if !self.cfg.sae.rescale_acts_by_decoder_norm {
            return Ok(None);
        }
        let norms = self
            .sae
            .decoder_norms()?
            .to_dtype(DType::F32)?
            .to_vec1::<f32>()?;
        Ok(Some(norms))
    }

    /// SAELens's aux-k loss: the top `k_aux = d_in / 2` dead latents of each row (by the
    /// rescaled pre-activation, not relu'd) reconstruct the detached residual `x - x̂`
    /// (no bias); scaled by `min(n_dead / k_aux, 1)`.
    pub(crate) fn aux_k_loss(
        &self,
        residual: &Tensor,
        h: &Tensor,
        dead: &[bool],
    ) -> Result<Tensor> {
        self.aux_k_loss_in(residual, h, dead, 0..dead.len())
    }

    /// [`Self::aux_k_loss`] over the latents `range` only (`dead` covers every latent):
    /// matryoshka's per-level aux-k loss.
    pub(crate) fn aux_k_loss_in(
        &self,
        residual: &Tensor,
        h: &Tensor,
        dead: &[bool],
        range: std::ops::Range<usize>,
    ) -> Result<Tensor> {
        let dead = &dead[range.clone()];
        let n_dead = dead.iter().filter(|d| **d).count();
        if n_dead == 0 {
            return Ok(Tensor::zeros((), residual.dtype(), residual.device())?);
        }
        let k_aux = self.cfg.sae.d_in / 2;
        let scale = (n_dead as f64 / k_aux.max(1) as f64).min(1.0);
        let k_aux = k_aux.min(n_dead).max(1);
        let norms = self.selection_norms()?.map(|n| n[range.clone()].to_vec());
        let (start, len) = (range.start, range.len());
        let h = h.narrow(1, start, len)?;
        let w_dec = self.sae.p.w_dec.narrow(0, start, len)?;
        let mask = activation::topk_select(&h, norms.as_deref(), k_aux, Some(dead))?;
        let aux_recon = super::sparse::sparse_decode(&(h * mask)?, &w_dec)?;
        let loss = (aux_recon - residual)?.sqr()?.sum(1)?.mean_all()?;
        Ok((loss * (self.cfg.aux_loss_coefficient * scale))?)
    }
}

/// The tensors of one training forward.
pub(crate) struct Forward {
    pub(crate) loss: Tensor,
    pub(crate) mse: Tensor,
    pub(crate) aux: Tensor,
    pub(crate) acts: Tensor,
    pub(crate) recon: Tensor,
    /// batchtopk: the smallest kept (rescaled) activation.
    pub(crate) min_kept: Option<f64>,
}

/// `1 - Σ‖x - x̂‖² / Σ‖x - mean(x)‖²` over the rows.
pub(crate) fn explained_variance(x: &Tensor, recon: &Tensor) -> Result<f64> {
    let resid = (x - recon)?
        .sqr()?
        .sum_all()?
        .to_dtype(DType::F64)?
        .to_scalar::<f64>()?;
    let centered = x.broadcast_sub(&x.mean_keepdim(0)?)?;
    let total = centered
        .sqr()?
        .sum_all()?
        .to_dtype(DType::F64)?
        .to_scalar::<f64>()?;
    Ok(1.0 - resid / total.max(f64::MIN_POSITIVE))
}
