//! `jumprelu`: `f = relu(h) · 1[h > θ]` with a trained threshold (rectangle
//! pseudo-derivative of bandwidth ε), trained with the step or tanh L0 penalty.

use super::{Arch, TrainForward};
use crate::activation;
use crate::config::Architecture;
use crate::error::{Error, Result};
use crate::sae::Sae;
use crate::train::{Analytic, AnalyticGrads, SaeTrainConfig, SaeTrainer, Scratch, SparsityLoss};
use candle_core::{DType, Device, Tensor};

pub(crate) struct JumpRelu;

impl Arch for JumpRelu {
    fn name(&self) -> &'static str {
        "jumprelu"
    }

    fn inference(&self) -> Architecture {
        Architecture::JumpRelu
    }

    fn loads_threshold(&self) -> bool {
        true
    }

    fn needs_threshold(&self) -> bool {
        true
    }

    fn init_threshold(&self, d_sae: usize, dtype: DType, dev: &Device) -> Result<Option<Tensor>> {
        Ok(Some((Tensor::ones(d_sae, dtype, dev)? * 0.01)?))
    }

    fn activate(&self, sae: &Sae, _x_in: &Tensor, h: &Tensor) -> Result<Tensor> {
        let threshold = sae.p.threshold.as_ref().ok_or_else(|| Error::Weights {
            name: "threshold".into(),
            problem: "missing".into(),
        })?;
        Ok(activation::jumprelu(h, threshold)?)
    }

    fn coefficient(&self, cfg: &SaeTrainConfig) -> Option<(f64, usize)> {
        Some((cfg.l0_coefficient, cfg.l0_warm_up_steps))
    }

    fn trained_threshold(&self, cfg: &SaeTrainConfig) -> Option<f64> {
        Some(cfg.jumprelu_init_threshold)
    }

    fn train_acts(
        &self,
        t: &SaeTrainer,
        _x_in: &Tensor,
        h: &Tensor,
    ) -> Result<(Tensor, Option<f64>)> {
        let theta = t.threshold_var()?.as_tensor();
        let acts = activation::jumprelu_ste(h, theta, t.cfg.jumprelu_bandwidth)?;
        Ok((acts, None))
    }

    /// The L0 penalty: the step function (rectangle gradient to θ) or
    /// `tanh(scale · f · ‖W_dec‖)`.
    fn aux_loss(&self, t: &SaeTrainer, _x: &Tensor, fwd: &TrainForward) -> Result<Tensor> {
        let per_row = match t.cfg.jumprelu_sparsity_loss {
            SparsityLoss::Step => activation::step_l0(
                fwd.h,
                t.threshold_var()?.as_tensor(),
                t.cfg.jumprelu_bandwidth,
            )?,
            SparsityLoss::Tanh { scale } => {
                let weighted = fwd.acts.broadcast_mul(&t.sae.decoder_norms()?)?;
                (weighted * scale)?.tanh()?.sum(1)?
            }
        };
        Ok((per_row.mean_all()? * fwd.coefficient)?)
    }

    fn analytic_adds_b_enc(&self) -> bool {
        true
    }

    fn analytic(
        &self,
        t: &SaeTrainer,
        s: &mut Scratch,
        coefficient: f64,
    ) -> Result<(Analytic, AnalyticGrads)> {
        t.analytic_jumprelu(s, coefficient)
    }
}
