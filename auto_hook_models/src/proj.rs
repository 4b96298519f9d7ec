//! A linear projection whose weight is a dense tensor or a quantized GGUF block matrix.

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::Linear;
use std::sync::Arc;

/// `y = x Wᵀ + b`, with `W` `[d_out, d_in]` either a dense tensor (Hugging Face folders,
/// dequantised GGUF files) or a quantized [`QTensor`] that stays quantized
/// ([`crate::load_quantized`]). Both fire the same hook point (`*.w_q.hook_point`, ...).
///
/// ```
/// use auto_hook_models::Proj;
/// use candle_core::{Device, Module, Tensor};
/// let w = Tensor::new(&[[1f32, 0.], [0., 2.]], &Device::Cpu)?;
/// let p = Proj::from(candle_nn::Linear::new(w, None));
/// assert_eq!(p.forward(&Tensor::new(&[[3f32, 4.]], &Device::Cpu)?)?.to_vec2::<f32>()?, [[3., 8.]]);
/// assert!(!p.is_quantized());
/// # Ok::<(), candle_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub enum Proj {
    /// A dense weight (candle-nn's `Linear`).
    Dense(Linear),
    /// A quantized weight; activations go through candle's quantized matmul in f32.
    Quantized {
        w: QMatMul,
        /// The quantized tensor, kept to dequantise the weight on request.
        q: Arc<QTensor>,
        b: Option<Tensor>,
    },
}

impl From<Linear> for Proj {
    fn from(linear: Linear) -> Self {
        Proj::Dense(linear)
    }
}

impl Proj {
    /// A projection over a quantized `[d_out, d_in]` weight and an optional bias.
    /// A weight stored as F32, F16 or BF16 is not quantized: it becomes a dense f32 weight.
    pub fn quantized(q: impl Into<Arc<QTensor>>, b: Option<Tensor>) -> Result<Self> {
        let q = q.into();
        if matches!(q.dtype(), GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16) {
            let w = q.dequantize(&q.device())?;
            return Ok(Proj::Dense(Linear::new(w, b)));
        }
        Ok(Proj::Quantized {
            w: QMatMul::from_arc(q.clone())?,
            q,
            b,
        })
    }

    /// Whether the weight is quantized.
    pub fn is_quantized(&self) -> bool {
        matches!(self, Proj::Quantized { .. })
    }

    /// The quantization type of a quantized weight.
    pub fn quant_type(&self) -> Option<GgmlDType> {
        match self {
            Proj::Quantized { q, .. } => Some(q.dtype()),
            Proj::Dense(_) => None,
        }
    }

    /// The weight `[d_out, d_in]`, dequantised to f32 when it is quantized.
    pub fn weight(&self) -> Result<Tensor> {
        match self {
            Proj::Dense(l) => Ok(l.weight().clone()),
            Proj::Quantized { q, .. } => q.dequantize(&q.device()),
        }
    }

    /// The dtype of [`Proj::weight`]: the dense weight's, f32 for a quantized one.
    pub fn dtype(&self) -> DType {
        match self {
            Proj::Dense(l) => l.weight().dtype(),
            Proj::Quantized { .. } => DType::F32,
        }
    }

    /// The device of the weight.
    pub fn device(&self) -> Device {
        match self {
            Proj::Dense(l) => l.weight().device().clone(),
            Proj::Quantized { q, .. } => q.device(),
        }
    }

    /// The bias `[d_out]`, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        match self {
            Proj::Dense(l) => l.bias(),
            Proj::Quantized { b, .. } => b.as_ref(),
        }
    }
}

impl Module for Proj {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Proj::Dense(l) => l.forward(x),
            Proj::Quantized { w, b, .. } => {
                // Candle's quantized kernels take f32 activations.
                let dtype = x.dtype();
                let y = match dtype {
                    DType::F32 => w.forward(x)?,
                    _ => w.forward(&x.to_dtype(DType::F32)?)?.to_dtype(dtype)?,
                };
                match b {
                    Some(b) => y.broadcast_add(b),
                    None => Ok(y),
                }
            }
        }
    }
}
