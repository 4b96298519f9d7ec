//! Transcoders (SAELens's `transcoder`, `skip_transcoder`, `jumprelu_transcoder`,
//! `jumprelu_skip_transcoder`): an SAE that reads one hook point and reconstructs
//! another, of width `d_out`: `f = act(x W_enc + b_enc)`, `ŷ = f W_dec + b_dec`
//! (`+ x W_skipᵀ` with a skip connection). The activation, its sparsity loss and its
//! coefficient are standard's (relu, L1) or jumprelu's (threshold, L0). `b_dec` has
//! `d_out` entries, so it is never subtracted from the input. SAELens 6.54 has no
//! transcoder trainer: training here uses the base architecture's loss with the output
//! hook's activation as the target. On the CPU in f32 it runs the base architecture's
//! analytic pass (`train/analytic.rs`, `train/analytic_jumprelu.rs`) with the target
//! `y` of width `d_out` and the skip connection's `∂W_skip = gᵀ x`; otherwise through
//! autograd, which `analytic_check.rs` checks the analytic pass against.

use super::jumprelu::JumpRelu;
use super::standard::Standard;
use super::{Arch, TrainForward};
use crate::config::{Architecture, SaeConfig};
use crate::error::Result;
use crate::sae::Sae;
use crate::train::{Analytic, AnalyticGrads, SaeTrainConfig, SaeTrainer, Scratch};
use candle_core::{DType, Device, Tensor};
use serde_json::{json, Value};

pub(crate) struct Transcoder {
    pub(crate) jumprelu: bool,
    pub(crate) skip: bool,
}

impl Transcoder {
    /// The architecture whose activation and losses it uses.
    fn base(&self) -> &'static dyn Arch {
        if self.jumprelu {
            &JumpRelu
        } else {
            &Standard
        }
    }
}

impl Arch for Transcoder {
    fn name(&self) -> &'static str {
        match (self.jumprelu, self.skip) {
            (false, false) => "transcoder",
            (false, true) => "skip_transcoder",
            (true, false) => "jumprelu_transcoder",
            (true, true) => "jumprelu_skip_transcoder",
        }
    }

    fn inference(&self) -> Architecture {
        Architecture::Transcoder {
            jumprelu: self.jumprelu,
            skip: self.skip,
        }
    }

    fn is_transcoder(&self) -> bool {
        true
    }

    fn skip_connection(&self) -> bool {
        self.skip
    }

    fn write_json(&self, cfg: &SaeConfig, v: &mut Value) {
        v["d_out"] = json!(cfg.d_out());
    }

    fn loads_threshold(&self) -> bool {
        self.base().loads_threshold()
    }

    fn needs_threshold(&self) -> bool {
        self.base().needs_threshold()
    }

    fn init_threshold(&self, d_sae: usize, dtype: DType, dev: &Device) -> Result<Option<Tensor>> {
        self.base().init_threshold(d_sae, dtype, dev)
    }

    fn activate(&self, sae: &Sae, x_in: &Tensor, h: &Tensor) -> Result<Tensor> {
        self.base().activate(sae, x_in, h)
    }

    fn coefficient(&self, cfg: &SaeTrainConfig) -> Option<(f64, usize)> {
        self.base().coefficient(cfg)
    }

    fn trained_threshold(&self, cfg: &SaeTrainConfig) -> Option<f64> {
        self.base().trained_threshold(cfg)
    }

    fn train_acts(
        &self,
        t: &SaeTrainer,
        x_in: &Tensor,
        h: &Tensor,
    ) -> Result<(Tensor, Option<f64>)> {
        self.base().train_acts(t, x_in, h)
    }

    fn aux_loss(&self, t: &SaeTrainer, x: &Tensor, fwd: &TrainForward) -> Result<Tensor> {
        self.base().aux_loss(t, x, fwd)
    }

    fn analytic_adds_b_enc(&self) -> bool {
        self.base().analytic_adds_b_enc()
    }

    fn analytic(
        &self,
        t: &SaeTrainer,
        s: &mut Scratch,
        coefficient: f64,
    ) -> Result<(Analytic, AnalyticGrads)> {
        self.base().analytic(t, s, coefficient)
    }
}
