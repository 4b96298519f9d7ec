//! `gated` (Rajamanoharan et al. 2024, SAELens's `GatedSAE`): a gate path
//! `π_gate = x' W_enc + b_gate` decides which latents fire, a magnitude path
//! `h = x' (W_enc ⊙ exp(r_mag)) + b_mag` how strongly: `f = 1[π_gate > 0] · relu(h)`.
//! Training adds an L1 penalty on `relu(π_gate)` weighted by the decoder norms and the
//! auxiliary reconstruction `relu(π_gate) W_dec + b_dec` of the input (the gate's only
//! gradient: the step `1[π_gate > 0]` passes none). The analytic step is in
//! `train/analytic_gated.rs`.

use super::{Arch, TrainForward};
use crate::config::Architecture;
use crate::error::{Error, Result};
use crate::params::SaeParams;
use crate::sae::Sae;
use crate::train::{Analytic, AnalyticGrads, SaeTrainConfig, SaeTrainer, Scratch};
use candle_core::Tensor;

pub(crate) struct Gated;

/// The gated parameter `name`.
fn param<'a>(p: &'a SaeParams<Tensor>, name: &str) -> Result<&'a Tensor> {
    p.get(name).ok_or_else(|| Error::Weights {
        name: name.into(),
        problem: "missing (gated SAEs need it)".into(),
    })
}

/// `π_gate = x' W_enc + b_gate`.
fn gate_pre(p: &SaeParams<Tensor>, x_in: &Tensor) -> Result<Tensor> {
    Ok(x_in.matmul(&p.w_enc)?.broadcast_add(param(p, "b_gate")?)?)
}

/// `1[π_gate > 0] · relu(h)` (the step has no gradient).
fn gated_acts(p: &SaeParams<Tensor>, x_in: &Tensor, h: &Tensor) -> Result<Tensor> {
    let open = gate_pre(p, x_in)?.detach().gt(0.0)?.to_dtype(h.dtype())?;
    Ok((open * h.relu()?)?)
}

/// SAELens's two gated training terms: `(l1, auxiliary reconstruction)`, with
/// `l1 = c · mean_rows Σ_i relu(π_gate)_i ‖W_dec,i‖` and
/// `aux = mean_rows ‖relu(π_gate) W_dec + b_dec − x‖²`.
pub(crate) fn gated_losses(
    t: &SaeTrainer,
    x: &Tensor,
    x_in: &Tensor,
    coefficient: f64,
) -> Result<(Tensor, Tensor)> {
    let p = &t.sae.p;
    let pi = gate_pre(p, x_in)?.relu()?;
    let weighted = pi.matmul(&t.sae.decoder_norms()?.unsqueeze(1)?)?;
    let l1 = (weighted.mean_all()? * coefficient)?;
    let via_gate = pi.matmul(&p.w_dec)?.broadcast_add(&p.b_dec)?;
    let aux = (via_gate - x)?.sqr()?.sum(1)?.mean_all()?;
    Ok((l1, aux))
}

impl Arch for Gated {
    fn name(&self) -> &'static str {
        "gated"
    }

    fn inference(&self) -> Architecture {
        Architecture::Gated
    }

    fn encoder_params(&self) -> &'static [&'static str] {
        &["b_gate", "r_mag", "b_mag"]
    }

    /// The magnitude path `x' (W_enc ⊙ exp(r_mag)) + b_mag`.
    fn pre_activation(&self, p: &SaeParams<Tensor>, x_in: &Tensor) -> Result<Tensor> {
        let w_mag = p
            .w_enc
            .broadcast_mul(&param(p, "r_mag")?.exp()?.unsqueeze(0)?)?;
        Ok(x_in.matmul(&w_mag)?.broadcast_add(param(p, "b_mag")?)?)
    }

    fn activate(&self, sae: &Sae, x_in: &Tensor, h: &Tensor) -> Result<Tensor> {
        gated_acts(&sae.p, x_in, h)
    }

    fn coefficient(&self, cfg: &SaeTrainConfig) -> Option<(f64, usize)> {
        Some((cfg.l1_coefficient, cfg.l1_warm_up_steps))
    }

    fn train_acts(
        &self,
        t: &SaeTrainer,
        x_in: &Tensor,
        h: &Tensor,
    ) -> Result<(Tensor, Option<f64>)> {
        Ok((gated_acts(&t.sae.p, x_in, h)?, None))
    }

    fn aux_loss(&self, t: &SaeTrainer, x: &Tensor, fwd: &TrainForward) -> Result<Tensor> {
        let (l1, aux) = gated_losses(t, x, fwd.x_in, fwd.coefficient)?;
        Ok((l1 + aux)?)
    }

    /// `encode_into` leaves `x' W_enc` alone: both paths' biases come in the first pass.
    fn analytic_adds_b_enc(&self) -> bool {
        true
    }

    fn analytic(
        &self,
        t: &SaeTrainer,
        s: &mut Scratch,
        coefficient: f64,
    ) -> Result<(Analytic, AnalyticGrads)> {
        t.analytic_gated(s, coefficient)
    }
}
