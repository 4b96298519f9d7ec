//! One module per architecture behind one trait, [`Arch`]: what each computes at
//! inference (activation, saved form, `cfg.json` keys) and in training (selection,
//! auxiliary and sparsity losses, coefficients, the analytic pass, post-step updates,
//! export). [`Architecture::imp`] is the one place the enum is matched for behaviour;
//! everything else asks the trait. Adding an architecture is a new file here, a variant
//! and its `imp` and `cfg.json` arms.

mod batchtopk;
mod jumprelu;
mod standard;
mod topk;

use crate::config::{Architecture, SaeConfig};
use crate::error::Result;
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

    /// Writes the architecture's own `cfg.json` keys.
    fn write_json(&self, _cfg: &SaeConfig, _v: &mut Value) {}

    /// Whether `rescale_acts_by_decoder_norm` applies (the topk family), and is on by
    /// default in training.
    fn rescales_by_decoder_norm(&self) -> bool {
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

    /// Inference latents from the pre-activations `h` `[n, d_sae]`.
    fn activate(&self, sae: &Sae, h: &Tensor) -> Result<Tensor>;

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
    fn train_acts(&self, t: &SaeTrainer, h: &Tensor) -> Result<(Tensor, Option<f64>)>;

    /// `f W_dec` in training (the topk family decodes sparsely).
    fn train_decode(&self, t: &SaeTrainer, acts: &Tensor) -> Result<Tensor> {
        Ok(acts.matmul(&t.sae.w_dec)?)
    }

    /// The auxiliary or sparsity loss of the autograd step.
    fn aux_loss(&self, t: &SaeTrainer, x: &Tensor, fwd: &TrainForward) -> Result<Tensor>;

    /// Whether the analytic pass adds `b_enc` itself (dense passes) rather than taking
    /// it from the encoder product.
    fn analytic_adds_b_enc(&self) -> bool {
        false
    }

    /// The analytic (hand-derived) loss gradients, after the encoder product.
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
        Ok(t.sae.threshold.as_ref().map(|t| t.copy()).transpose()?)
    }
}

/// What [`Arch::aux_loss`] sees of the training forward.
pub(crate) struct TrainForward<'a> {
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
        }
    }
}
