//! The activation scaler of `normalize_activations = expected_average_only_in`:
//! training inputs are scaled by `sqrt(d_in) / E‖x‖` (estimated once, from the first
//! batches of the run), and the factor is folded into the weights of the exported SAE
//! so that it reads unscaled activations (SAELens's `ActivationScaler`).

use crate::error::Result;
use candle_core::{DType, Tensor};

/// The input scale factor of one SAE (none until estimated, or when not normalising).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct ActivationScaler {
    pub(crate) factor: Option<f64>,
}

impl ActivationScaler {
    /// The factor `sqrt(d_in) / mean_norm` from the mean input norm.
    pub(crate) fn from_mean_norm(d_in: usize, mean_norm: f64) -> Self {
        Self {
            factor: Some((d_in as f64).sqrt() / mean_norm.max(1e-12)),
        }
    }

    /// The mean row norm `E‖x‖` of a batch `[n, d_in]`, for the estimate.
    pub(crate) fn mean_norm(x: &Tensor) -> Result<f64> {
        let x = x.to_dtype(DType::F32)?;
        Ok(x.sqr()?.sum(1)?.sqrt()?.mean_all()?.to_scalar::<f32>()? as f64)
    }

    /// `x · factor` (`x` as it is without a factor).
    pub(crate) fn scale(&self, x: Tensor) -> Result<Tensor> {
        Ok(match self.factor {
            Some(s) => (x * s)?,
            None => x,
        })
    }

    /// Folds the factor into `(W_enc, W_dec, b_dec)`: with `x' = x · s`, the SAE on `x'`
    /// equals the SAE with `W_enc · s`, `W_dec / s`, `b_dec / s` on `x`, output `/ s`.
    /// `true` when a factor was folded.
    pub(crate) fn fold(
        &self,
        w_enc: &mut Tensor,
        w_dec: &mut Tensor,
        b_dec: &mut Tensor,
    ) -> Result<bool> {
        let Some(s) = self.factor else {
            return Ok(false);
        };
        *w_enc = (&*w_enc * s)?;
        *w_dec = (&*w_dec / s)?;
        *b_dec = (&*b_dec / s)?;
        Ok(true)
    }
}
