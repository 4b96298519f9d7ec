//! `batchtopk`: the `k · tokens` largest (rescaled) activations of the whole batch;
//! trains a threshold θ as the moving average of the smallest kept activation, and is
//! saved as `jumprelu` with that threshold.

use super::topk::{aux_k, sparse_decode, write_k};
use super::{Arch, TrainForward};
use crate::activation;
use crate::config::{Architecture, SaeConfig};
use crate::error::{config_err, Result};
use crate::sae::Sae;
use crate::train::{Analytic, AnalyticGrads, SaeTrainer, Scratch};
use candle_core::{DType, Device, Tensor};
use serde_json::{json, Value};

pub(crate) struct BatchTopK {
    pub(crate) k: f64,
}

impl Arch for BatchTopK {
    fn name(&self) -> &'static str {
        "batchtopk"
    }

    fn inference(&self) -> Architecture {
        Architecture::JumpRelu
    }

    fn validate(&self, d_sae: usize) -> Result<()> {
        if !(self.k > 0.0 && self.k <= d_sae as f64) {
            return Err(config_err(
                "k",
                format!("k = {} must be in (0, d_sae = {d_sae}]", self.k),
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

    fn loads_threshold(&self) -> bool {
        true
    }

    fn init_threshold(&self, d_sae: usize, dtype: DType, dev: &Device) -> Result<Option<Tensor>> {
        Ok(Some(Tensor::zeros(d_sae, dtype, dev)?))
    }

    fn activate(&self, sae: &Sae, _x_in: &Tensor, h: &Tensor) -> Result<Tensor> {
        Ok(activation::batch_topk(&sae.rescaled_pre(h)?, self.k)?)
    }

    fn train_acts(
        &self,
        t: &SaeTrainer,
        _x_in: &Tensor,
        h: &Tensor,
    ) -> Result<(Tensor, Option<f64>)> {
        let norms = t.selection_norms()?;
        let (mask, min) = activation::batch_topk_select(h, norms.as_deref(), self.k)?;
        Ok(((h * mask)?, min))
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
        t.analytic_topk(s, self.k, true)
    }

    /// The threshold's EMA towards this step's smallest kept activation.
    fn post_step(&self, t: &mut SaeTrainer, min_kept: Option<f64>) {
        if let Some(min) = min_kept {
            let lr = t.cfg.topk_threshold_lr;
            t.batchtopk_threshold = (1.0 - lr) * t.batchtopk_threshold + lr * min;
        }
    }

    /// θ on every latent. With decoder-norm rescaling θ is in units of `h · ‖W_dec,i‖`,
    /// and folding the input scale `s` divides `W_dec` by `s`: θ is divided too
    /// (SAELens 6.54's `fold_activation_norm_scaling_factor`, its issue #763).
    fn export_threshold(&self, t: &SaeTrainer) -> Result<Option<Tensor>> {
        let cfg = &t.cfg.sae;
        let mut theta = t.batchtopk_threshold;
        if let (true, Some(s)) = (cfg.rescale_acts_by_decoder_norm, t.scaler.factor) {
            theta /= s;
        }
        let ones = Tensor::ones(cfg.d_sae, cfg.dtype, t.sae.device())?;
        Ok(Some((ones * theta)?))
    }
}
