//! One module per architecture behind one trait, [`Arch`]: what each computes at
//! inference (activation, saved form, `cfg.json` keys) and in training (selection,
//! auxiliary and sparsity losses, coefficients, the analytic pass, post-step updates,
//! export). [`Architecture::imp`] is the one place the enum is matched for behaviour;
//! everything else asks the trait. Adding an architecture is a new file here, a variant
//! and its `imp` and `cfg.json` arms.

mod batchtopk;
mod gated;
mod jumprelu;
mod matryoshka;
mod standard;
mod topk;
mod transcoder;

#[cfg(test)]
pub(crate) use gated::gated_losses;
#[cfg(test)]
pub(crate) use matryoshka::matryoshka_losses;

use crate::config::{Architecture, SaeConfig};
use crate::error::{Error, Result};
use crate::params::SaeParams;
use crate::sae::Sae;
use crate::train::{Analytic, AnalyticGrads, SaeTrainConfig, SaeTrainer, Scratch};
use candle_core::{DType, Device, Tensor};
use serde_json::Value;

/// The behaviour of one architecture. Defaults are those of the dense, threshold-free
/// case (standard).
pub(crate) trait Arch {
    /// SAELens's name.
    fn name(&self) -> &'static str;

    /// The architecture an SAE of this kind is saved (and loaded by SAELens) as.
    fn inference(&self) -> Architecture;

    /// Checks the architecture's own values against `d_sae`.
    fn validate(&self, _d_sae: usize) -> Result<()> {
        Ok(())
    }

    /// Checks the architecture's own training settings.
    fn validate_training(&self, _cfg: &SaeTrainConfig) -> Result<()> {
        Ok(())
    }

    /// Writes the architecture's own `cfg.json` keys.
    fn write_json(&self, _cfg: &SaeConfig, _v: &mut Value) {}

    /// Whether `rescale_acts_by_decoder_norm` applies (the topk family), and is on by
    /// default in training.
    fn rescales_by_decoder_norm(&self) -> bool {
        false
    }

    /// Whether it reads one hook and reconstructs another (`d_out` wide, `b_dec` never
    /// subtracted from the input).
    fn is_transcoder(&self) -> bool {
        false
    }

    /// Whether the output adds a linear skip connection `x W_skipᵀ` (`W_skip`
    /// `[d_out, d_in]`).
    fn skip_connection(&self) -> bool {
        false
    }

    /// Whether a threshold is read from the weights file (also `log_threshold`).
    fn loads_threshold(&self) -> bool {
        false
    }

    /// Whether an SAE of this kind cannot run without a threshold.
    fn needs_threshold(&self) -> bool {
        false
    }

    /// The threshold of a freshly initialised SAE (SAELens's init).
    fn init_threshold(
        &self,
        _d_sae: usize,
        _dtype: DType,
        _dev: &Device,
    ) -> Result<Option<Tensor>> {
        Ok(None)
    }

    /// The encoder's parameters besides `W_enc` (and a threshold): `b_enc`, or gated's
    /// `b_gate`, `r_mag`, `b_mag`.
    fn encoder_params(&self) -> &'static [&'static str] {
        &["b_enc"]
    }

    /// The pre-activations `h` (what `hook_sae_acts_pre` sees) of the centred input
    /// `x'` `[n, d_in]`: `x' W_enc + b_enc`.
    fn pre_activation(&self, p: &SaeParams<Tensor>, x_in: &Tensor) -> Result<Tensor> {
        let b_enc = p.b_enc.as_ref().ok_or_else(|| Error::Weights {
            name: "b_enc".into(),
            problem: "missing".into(),
        })?;
        Ok(x_in.matmul(&p.w_enc)?.broadcast_add(b_enc)?)
    }

    /// Inference latents from the pre-activations `h` `[n, d_sae]` (and the centred
    /// input `x'`, which gated's gate reads).
    fn activate(&self, sae: &Sae, x_in: &Tensor, h: &Tensor) -> Result<Tensor>;

    /// The sparsity coefficient and its warm-up steps (`None`: no coefficient).
    fn coefficient(&self, _cfg: &SaeTrainConfig) -> Option<(f64, usize)> {
        None
    }

    /// The initial value of the trained threshold, when one is trained.
    fn trained_threshold(&self, _cfg: &SaeTrainConfig) -> Option<f64> {
        None
    }

    /// Training latents from `h` (autograd graph) and, for batchtopk, the smallest kept
    /// (rescaled) activation.
    fn train_acts(
        &self,
        t: &SaeTrainer,
        x_in: &Tensor,
        h: &Tensor,
    ) -> Result<(Tensor, Option<f64>)>;

    /// `f W_dec` in training (the topk family decodes sparsely).
    fn train_decode(&self, t: &SaeTrainer, acts: &Tensor) -> Result<Tensor> {
        Ok(acts.matmul(&t.sae.p.w_dec)?)
    }

    /// The auxiliary or sparsity loss of the autograd step.
    fn aux_loss(&self, t: &SaeTrainer, x: &Tensor, fwd: &TrainForward) -> Result<Tensor>;

    /// Whether the analytic pass adds `b_enc` itself (dense passes) rather than taking
    /// it from the encoder product.
    fn analytic_adds_b_enc(&self) -> bool {
        false
    }

    /// The analytic (hand-derived) loss gradients, after the encoder product (every
    /// architecture has one; autograd is the path for other dtypes and devices).
    fn analytic(
        &self,
        t: &SaeTrainer,
        s: &mut Scratch,
        coefficient: f64,
    ) -> Result<(Analytic, AnalyticGrads)>;

    /// After each step (batchtopk: the threshold's moving average).
    fn post_step(&self, _t: &mut SaeTrainer, _min_kept: Option<f64>) {}

    /// The threshold of the exported SAE.
    fn export_threshold(&self, t: &SaeTrainer) -> Result<Option<Tensor>> {
        Ok(t.sae.p.threshold.as_ref().map(|t| t.copy()).transpose()?)
    }
}

/// What [`Arch::aux_loss`] sees of the training forward.
pub(crate) struct TrainForward<'a> {
    /// The centred input `x'`.
    pub(crate) x_in: &'a Tensor,
    /// Pre-activations.
    pub(crate) h: &'a Tensor,
    /// Latents.
    pub(crate) acts: &'a Tensor,
    /// Reconstruction.
    pub(crate) recon: &'a Tensor,
    /// The sparsity coefficient of this step.
    pub(crate) coefficient: f64,
}

impl Architecture {
    /// The architecture's behaviour.
    pub(crate) fn imp(&self) -> Box<dyn Arch> {
        match *self {
            Architecture::Standard => Box::new(standard::Standard),
            Architecture::TopK { k } => Box::new(topk::TopK { k }),
            Architecture::BatchTopK { k } => Box::new(batchtopk::BatchTopK { k }),
            Architecture::JumpRelu => Box::new(jumprelu::JumpRelu),
            Architecture::Gated => Box::new(gated::Gated),
            Architecture::Transcoder { jumprelu, skip } => {
                Box::new(transcoder::Transcoder { jumprelu, skip })
            }
            Architecture::MatryoshkaBatchTopK { k } => Box::new(matryoshka::Matryoshka {
                inner: batchtopk::BatchTopK { k },
            }),
        }
    }
}
