//! `topk`: the `k` largest pre-activations of each token (scores rescaled by the
//! decoder norms when `rescale_acts_by_decoder_norm`), trained with the aux-k loss on
//! dead latents. Its helpers serve batchtopk too.

use super::{Arch, TrainForward};
use crate::activation;
use crate::config::{Architecture, SaeConfig};
use crate::error::{config_err, Result};
use crate::sae::Sae;
use crate::train::{Analytic, AnalyticGrads, SaeTrainer, Scratch};
use candle_core::Tensor;
use serde_json::{json, Value};

pub(crate) struct TopK {
    pub(crate) k: usize,
}

impl Arch for TopK {
    fn name(&self) -> &'static str {
        "topk"
    }

    fn inference(&self) -> Architecture {
        Architecture::TopK { k: self.k }
    }

    fn validate(&self, d_sae: usize) -> Result<()> {
        if self.k == 0 || self.k > d_sae {
            return Err(config_err(
                "k",
                format!("k = {} must be between 1 and d_sae = {d_sae}", self.k),
            ));
        }
        Ok(())
    }

    fn write_json(&self, cfg: &SaeConfig, v: &mut Value) {
        write_k(cfg, v, json!(self.k));
    }

    fn rescales_by_decoder_norm(&self) -> bool {
        true
    }

    fn activate(&self, sae: &Sae, _x_in: &Tensor, h: &Tensor) -> Result<Tensor> {
        Ok(activation::topk(&sae.rescaled_pre(h)?, self.k)?)
    }

    fn train_acts(
        &self,
        t: &SaeTrainer,
        _x_in: &Tensor,
        h: &Tensor,
    ) -> Result<(Tensor, Option<f64>)> {
        let norms = t.selection_norms()?;
        let mask = activation::topk_select(h, norms.as_deref(), self.k, None)?;
        Ok(((h * mask)?, None))
    }

    fn train_decode(&self, t: &SaeTrainer, acts: &Tensor) -> Result<Tensor> {
        sparse_decode(t, acts)
    }

    fn aux_loss(&self, t: &SaeTrainer, x: &Tensor, fwd: &TrainForward) -> Result<Tensor> {
        aux_k(t, x, fwd)
    }

    fn analytic(
        &self,
        t: &SaeTrainer,
        s: &mut Scratch,
        _coefficient: f64,
    ) -> Result<(Analytic, AnalyticGrads)> {
        t.analytic_topk(s, self.k as f64, false)
    }
}

/// `k` and `rescale_acts_by_decoder_norm` in `cfg.json` (topk, batchtopk).
pub(super) fn write_k(cfg: &SaeConfig, v: &mut Value, k: Value) {
    v["k"] = k;
    v["rescale_acts_by_decoder_norm"] = json!(cfg.rescale_acts_by_decoder_norm);
}

/// The kept latents times `W_dec`, touching only the non-zero ones.
pub(super) fn sparse_decode(t: &SaeTrainer, acts: &Tensor) -> Result<Tensor> {
    Ok(crate::train::sparse_decode(acts, &t.sae.p.w_dec)?)
}

/// The aux-k loss on the detached residual `x − x̂` ([`SaeTrainer::aux_k_loss`]).
pub(super) fn aux_k(t: &SaeTrainer, x: &Tensor, fwd: &TrainForward) -> Result<Tensor> {
    let residual = (x - fwd.recon)?.detach();
    t.aux_k_loss(&residual, fwd.h, &t.dead_mask())
}
