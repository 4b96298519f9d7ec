//! `standard`: `f = relu(h)`, trained with an L1 penalty weighted by the decoder norms.

use super::{Arch, TrainForward};
use crate::config::Architecture;
use crate::error::Result;
use crate::sae::Sae;
use crate::train::{Analytic, AnalyticGrads, SaeTrainConfig, SaeTrainer, Scratch};
use candle_core::Tensor;

pub(crate) struct Standard;

impl Arch for Standard {
    fn name(&self) -> &'static str {
        "standard"
    }

    fn inference(&self) -> Architecture {
        Architecture::Standard
    }

    fn activate(&self, _sae: &Sae, _x_in: &Tensor, h: &Tensor) -> Result<Tensor> {
        Ok(h.relu()?)
    }

    fn coefficient(&self, cfg: &SaeTrainConfig) -> Option<(f64, usize)> {
        Some((cfg.l1_coefficient, cfg.l1_warm_up_steps))
    }

    fn train_acts(
        &self,
        _t: &SaeTrainer,
        _x_in: &Tensor,
        h: &Tensor,
    ) -> Result<(Tensor, Option<f64>)> {
        Ok((h.relu()?, None))
    }

    fn aux_loss(&self, t: &SaeTrainer, _x: &Tensor, fwd: &TrainForward) -> Result<Tensor> {
        // Σ_i f_i ‖W_dec,i‖ per row, as a matmul (f >= 0).
        let weighted = fwd.acts.matmul(&t.sae.decoder_norms()?.unsqueeze(1)?)?;
        Ok((weighted.mean_all()? * fwd.coefficient)?)
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
        t.analytic_standard(s, coefficient)
    }
}
