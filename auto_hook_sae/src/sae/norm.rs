//! SAELens's runtime input normalisations (`constant_norm_rescale`, `layer_norm`): each
//! input's own statistics are applied on the way in and undone on the way out, so a
//! decode needs the statistics of the input that was encoded ([`InputNorm`]).

use super::{unflatten, Fire, Sae};
use crate::config::Normalization;
use crate::error::{Error, Result};
use candle_core::Tensor;

/// Per-call state of the runtime normalisations (what SAELens keeps on `self`).
#[derive(Debug, Clone, Default)]
pub(crate) struct NormState {
    scale: Option<Tensor>,
    layer_norm: Option<(Tensor, Tensor)>,
}

/// The statistics of an encoded input that [`Sae::decode_with_norm`] undoes: the
/// `sqrt(d_in) / ‖x‖` factor of `constant_norm_rescale`, the mean and std of
/// `layer_norm` (nothing for the other normalisations), one per input row.
///
/// ```
/// use auto_hook_sae::{Architecture, Normalization, Sae, SaeConfig};
/// use candle_core::{Device, Tensor};
/// let mut cfg = SaeConfig::new(8, 32, Architecture::Standard);
/// cfg.normalize_activations = Normalization::LayerNorm;
/// let sae = Sae::init(&cfg, Some(0.1), 0, &Device::Cpu)?;
/// let x = Tensor::randn(0f32, 1.0, (3, 8), &Device::Cpu)?;
/// assert!(sae.decode(&sae.encode(&x)?).is_err()); // decode alone lacks x's statistics
/// let (f, norm) = sae.encode_with_norm(&x)?;
/// let out = sae.decode_with_norm(&f, &norm)?;      // SAELens's decode(encode(x))
/// let diff = (out - sae.forward(&x)?)?.abs()?.max_all()?.to_scalar::<f32>()?;
/// assert!(diff < 1e-6);
/// # Ok::<(), auto_hook_sae::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct InputNorm {
    state: NormState,
    rows: usize,
}

impl Sae {
    /// Latents of `x` (as [`Sae::encode`]) and the input statistics a decode of them
    /// needs (SAELens keeps these on the SAE between `encode` and `decode`).
    pub fn encode_with_norm(&self, x: &Tensor) -> Result<(Tensor, InputNorm)> {
        let (x2, lead) = self.flatten_input(x)?;
        let mut state = NormState::default();
        let (f, _) = self.encode_2d(&x2, &lead, &mut state, Fire::Yes)?;
        let rows = x2.dim(0)?;
        Ok((unflatten(&f, &lead)?, InputNorm { state, rows }))
    }

    /// [`Sae::decode`] of latents of the input that [`Sae::encode_with_norm`] saw,
    /// undoing its normalisation (every normalisation; latents with a different number
    /// of rows are an error).
    pub fn decode_with_norm(&self, f: &Tensor, norm: &InputNorm) -> Result<Tensor> {
        self.decode_checked(f, Some(norm))
    }

    /// [`Sae::decode`] and [`Sae::decode_with_norm`].
    pub(crate) fn decode_checked(&self, f: &Tensor, norm: Option<&InputNorm>) -> Result<Tensor> {
        let dims = f.dims();
        let (&d, lead) = dims.split_last().ok_or_else(|| Error::Shape {
            what: "latents".into(),
            problem: "a scalar has no latent axis".into(),
        })?;
        if d != self.cfg.d_sae {
            return Err(Error::Shape {
                what: "latents".into(),
                problem: format!("last axis is {d}, the SAE has d_sae = {}", self.cfg.d_sae),
            });
        }
        let f2 = f.to_dtype(self.cfg.dtype)?.reshape(((), d))?;
        let empty = NormState::default();
        let state = match norm {
            Some(norm) if norm.rows != f2.dim(0)? => {
                return Err(Error::Shape {
                    what: "latents".into(),
                    problem: format!(
                        "{} rows, the encoded input had {}: its statistics do not apply",
                        f2.dim(0)?,
                        norm.rows
                    ),
                })
            }
            Some(norm) => &norm.state,
            None => &empty,
        };
        let out = self.decode_2d(&f2, lead, state, Fire::Yes)?;
        self.unflatten_output(&out, lead)
    }

    pub(crate) fn normalize_in(&self, x: &Tensor, norm: &mut NormState) -> Result<Tensor> {
        match self.cfg.normalize_activations {
            Normalization::None | Normalization::ExpectedAverageOnlyIn => Ok(x.clone()),
            Normalization::ConstantNormRescale => {
                let n = x.sqr()?.sum_keepdim(1)?.sqrt()?;
                let coeff = ((n.recip()?) * (self.cfg.d_in as f64).sqrt())?;
                let out = x.broadcast_mul(&coeff)?;
                norm.scale = Some(coeff);
                Ok(out)
            }
            Normalization::LayerNorm => {
                let mu = x.mean_keepdim(1)?;
                let centered = x.broadcast_sub(&mu)?;
                let d = self.cfg.d_in as f64;
                // torch's std is the unbiased (n - 1) estimate.
                let std = (centered.sqr()?.sum_keepdim(1)? / (d - 1.0).max(1.0))?.sqrt()?;
                let out = centered.broadcast_div(&(&std + 1e-5)?)?;
                norm.layer_norm = Some((mu, std));
                Ok(out)
            }
        }
    }

    pub(crate) fn normalize_out(&self, x: &Tensor, norm: &NormState) -> Result<Tensor> {
        if let Some(coeff) = &norm.scale {
            return Ok(x.broadcast_div(coeff)?);
        }
        if let Some((mu, std)) = &norm.layer_norm {
            return Ok(x.broadcast_mul(std)?.broadcast_add(mu)?);
        }
        Ok(x.clone())
    }
}
