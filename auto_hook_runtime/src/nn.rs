//! Normalisation modules that stay differentiable: drop-in replacements for
//! `candle_nn::{LayerNorm, RmsNorm}` whose fused kernels have no backward. They use the
//! fused kernel when nothing tracks gradients (see [`crate::ops`]).

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

/// Layer normalisation that stays differentiable; reads the same weights as
/// `candle_nn::layer_norm`.
///
/// ```
/// use candle_core::{DType, Device, Module, Tensor};
/// let ln = auto_hook_runtime::nn::layer_norm(4, 1e-5, candle_nn::VarBuilder::zeros(DType::F32, &Device::Cpu))?;
/// assert_eq!(ln.forward(&Tensor::ones((2, 4), DType::F32, &Device::Cpu)?)?.dims(), [2, 4]);
/// # Ok::<(), candle_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct LayerNorm {
    inner: candle_nn::LayerNorm,
}

impl LayerNorm {
    /// From weight, bias and epsilon.
    pub fn new(weight: Tensor, bias: Tensor, eps: f64) -> Self {
        Self {
            inner: candle_nn::LayerNorm::new(weight, bias, eps),
        }
    }
}

impl From<candle_nn::LayerNorm> for LayerNorm {
    fn from(inner: candle_nn::LayerNorm) -> Self {
        Self { inner }
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self.inner.bias() {
            Some(bias) if self.inner.remove_mean() => {
                crate::ops::layer_norm(x, self.inner.weight(), bias, self.inner.eps() as f32)
            }
            // candle's own path without a bias is already made of differentiable ops.
            _ => self.inner.forward(x),
        }
    }
}

/// `candle_nn::layer_norm`, differentiable.
pub fn layer_norm(size: usize, eps: f64, vb: VarBuilder) -> Result<LayerNorm> {
    Ok(candle_nn::layer_norm(size, eps, vb)?.into())
}

/// RMS normalisation that stays differentiable; reads the same weights as
/// `candle_nn::rms_norm`.
#[derive(Clone, Debug)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    /// From weight and epsilon.
    pub fn new(weight: Tensor, eps: f64) -> Self {
        Self { weight, eps }
    }
}

impl Module for RmsNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        crate::ops::rms_norm(x, &self.weight, self.eps as f32)
    }
}

/// `candle_nn::rms_norm`, differentiable.
pub fn rms_norm(size: usize, eps: f64, vb: VarBuilder) -> Result<RmsNorm> {
    let norm = candle_nn::rms_norm(size, eps, vb)?;
    Ok(RmsNorm::new(norm.weight().clone(), eps))
}
