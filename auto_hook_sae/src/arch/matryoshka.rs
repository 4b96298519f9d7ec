//! `matryoshka_batchtopk` (Bussmann et al. 2025, SAELens's
//! `MatryoshkaBatchTopKTrainingSAE`): a batchtopk SAE trained so that nested prefixes
//! of its latents reconstruct on their own. Each level `w` of
//! [`SaeTrainConfig::matryoshka_widths`] (all but the full width) adds
//! `mean_rows ‖f[:, :w] W_dec[:w] + b_dec − x‖²` to the loss; the aux-k loss is
//! batchtopk's, or with `use_matryoshka_aux_loss` one per level (the level's dead
//! latents reconstruct the residual of that level's prefix). Inference, threshold and
//! saved form are batchtopk's (saved as `jumprelu`). The analytic step
//! (`train/analytic_matryoshka.rs`) decodes the levels from the kept latents only; the
//! autograd losses here are its reference.

use super::batchtopk::BatchTopK;
use super::{Arch, TrainForward};
use crate::config::{Architecture, SaeConfig};
use crate::error::{Error, Result};
use crate::sae::Sae;
use crate::train::{Analytic, AnalyticGrads, SaeTrainConfig, SaeTrainer, Scratch};
use candle_core::{DType, Device, Tensor};
use serde_json::Value;

pub(crate) struct Matryoshka {
    pub(crate) inner: BatchTopK,
}

/// The levels' widths: `matryoshka_widths`, with `d_sae` added when it is not the last
/// (as SAELens does).
pub(crate) fn levels(cfg: &SaeTrainConfig) -> Vec<usize> {
    let mut widths = cfg.matryoshka_widths.clone();
    if widths.last() != Some(&cfg.sae.d_sae) {
        widths.push(cfg.sae.d_sae);
    }
    widths
}

/// `(width, b_dec + f[:, :width] W_dec[:width])` for each level, nested.
fn prefix_decodes(t: &SaeTrainer, acts: &Tensor) -> Result<Vec<(usize, Tensor)>> {
    let mut decoded = t.sae.p.b_dec.unsqueeze(0)?;
    let mut prev = 0;
    let mut out = Vec::new();
    for width in levels(&t.cfg) {
        let part = acts.narrow(1, prev, width - prev)?;
        let w_dec = t.sae.p.w_dec.narrow(0, prev, width - prev)?;
        decoded = part.matmul(&w_dec)?.broadcast_add(&decoded)?;
        out.push((width, decoded.clone()));
        prev = width;
    }
    Ok(out)
}

/// `mean_rows ‖x̂ − x‖²`.
fn mse(recon: &Tensor, x: &Tensor) -> Result<Tensor> {
    Ok((recon - x)?.sqr()?.sum(1)?.mean_all()?)
}

/// The loss terms besides the full reconstruction: `(inner MSE per level below the full
/// width, aux-k)`.
pub(crate) fn matryoshka_losses(
    t: &SaeTrainer,
    x: &Tensor,
    fwd: &TrainForward,
) -> Result<(Vec<(usize, Tensor)>, Tensor)> {
    let decodes = prefix_decodes(t, fwd.acts)?;
    let inner = decodes[..decodes.len().saturating_sub(1)]
        .iter()
        .map(|(w, recon)| Ok((*w, mse(recon, x)?)))
        .collect::<Result<Vec<_>>>()?;
    let dead = t.dead_mask();
    let aux = if t.cfg.use_matryoshka_aux_loss {
        let mut total = Tensor::zeros((), x.dtype(), x.device())?;
        let mut prev = 0;
        for (width, recon) in &decodes {
            let residual = (x - recon)?.detach();
            total = (total + t.aux_k_loss_in(&residual, fwd.h, &dead, prev..*width)?)?;
            prev = *width;
        }
        total
    } else {
        let residual = (x - fwd.recon)?.detach();
        t.aux_k_loss(&residual, fwd.h, &dead)?
    };
    Ok((inner, aux))
}

impl Arch for Matryoshka {
    fn name(&self) -> &'static str {
        "matryoshka_batchtopk"
    }

    fn inference(&self) -> Architecture {
        Architecture::JumpRelu
    }

    fn validate(&self, d_sae: usize) -> Result<()> {
        self.inner.validate(d_sae)
    }

    fn validate_training(&self, cfg: &SaeTrainConfig) -> Result<()> {
        let widths = &cfg.matryoshka_widths;
        let bad = |msg: String| Err(Error::Invalid(format!("matryoshka_widths {msg}")));
        if widths.is_empty() {
            return bad("must not be empty (the levels' widths, increasing, up to d_sae)".into());
        }
        if widths[0] == 0 || widths.windows(2).any(|w| w[0] >= w[1]) {
            return bad(format!(
                "{widths:?} must be positive and strictly increasing"
            ));
        }
        if widths.last().is_some_and(|&w| w > cfg.sae.d_sae) {
            return bad(format!("{widths:?} exceeds d_sae = {}", cfg.sae.d_sae));
        }
        Ok(())
    }

    fn write_json(&self, cfg: &SaeConfig, v: &mut Value) {
        self.inner.write_json(cfg, v)
    }

    fn rescales_by_decoder_norm(&self) -> bool {
        true
    }

    fn loads_threshold(&self) -> bool {
        true
    }

    fn init_threshold(&self, d_sae: usize, dtype: DType, dev: &Device) -> Result<Option<Tensor>> {
        self.inner.init_threshold(d_sae, dtype, dev)
    }

    fn activate(&self, sae: &Sae, x_in: &Tensor, h: &Tensor) -> Result<Tensor> {
        self.inner.activate(sae, x_in, h)
    }

    fn train_acts(
        &self,
        t: &SaeTrainer,
        x_in: &Tensor,
        h: &Tensor,
    ) -> Result<(Tensor, Option<f64>)> {
        self.inner.train_acts(t, x_in, h)
    }

    fn train_decode(&self, t: &SaeTrainer, acts: &Tensor) -> Result<Tensor> {
        self.inner.train_decode(t, acts)
    }

    /// The inner levels' MSE terms plus the aux-k loss.
    fn aux_loss(&self, t: &SaeTrainer, x: &Tensor, fwd: &TrainForward) -> Result<Tensor> {
        let (inner, aux) = matryoshka_losses(t, x, fwd)?;
        let mut total = aux;
        for (_, term) in inner {
            total = (total + term)?;
        }
        Ok(total)
    }

    fn analytic(
        &self,
        t: &SaeTrainer,
        s: &mut Scratch,
        _coefficient: f64,
    ) -> Result<(Analytic, AnalyticGrads)> {
        t.analytic_matryoshka(s, self.inner.k, &levels(&t.cfg))
    }

    fn post_step(&self, t: &mut SaeTrainer, min_kept: Option<f64>) {
        self.inner.post_step(t, min_kept)
    }

    fn export_threshold(&self, t: &SaeTrainer) -> Result<Option<Tensor>> {
        self.inner.export_threshold(t)
    }
}
