//! LayerNorm / RMSNorm with TransformerLens's `hook_scale` and `hook_normalized`.

use crate::config::NormKind;
use auto_hook::prelude::*;
use candle_core::{DType, Module, Result, Tensor, D};

/// A normalisation layer from differentiable ops (half precision computed in f32).
/// `hook_scale` is the per-position scale `[batch, pos, 1]`; `hook_normalized` is the
/// output (LayerNorm, after weight and bias) or the normalised input before the weight
/// (RMSNorm), as in TransformerLens.
#[auto_hook]
#[derive(Debug, Clone)]
pub struct Norm {
    #[auto_hook(skip)]
    w: Tensor,
    #[auto_hook(skip)]
    b: Option<Tensor>,
    #[auto_hook(skip)]
    kind: NormKind,
    eps: f64,
    hook_scale: HookPoint,
    hook_normalized: HookPoint,
}

#[auto_hook]
impl Norm {
    pub fn new(kind: NormKind, w: Tensor, b: Option<Tensor>, eps: f64) -> Self {
        Self {
            w,
            b,
            kind,
            eps,
            hook_scale: HookPoint::new(),
            hook_normalized: HookPoint::new(),
        }
    }
}

#[auto_hook]
impl Module for Norm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dtype = x.dtype();
        // Half precision is normalised in f32 (as Hugging Face does); f32 and f64 stay.
        let x = match dtype {
            DType::F16 | DType::BF16 => x.to_dtype(DType::F32)?,
            _ => x.clone(),
        };
        let x = match self.kind {
            NormKind::LayerNorm => x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?,
            NormKind::RmsNorm => x,
        };
        let scale = self
            .hook_scale
            .forward(&(x.sqr()?.mean_keepdim(D::Minus1)? + self.eps)?.sqrt()?)?;
        let x = x.broadcast_div(&scale)?.to_dtype(dtype)?;
        match self.kind {
            NormKind::LayerNorm => {
                let y = x.broadcast_mul(&self.w)?;
                let y = match &self.b {
                    Some(b) => y.broadcast_add(b)?,
                    None => y,
                };
                self.hook_normalized.forward(&y)
            }
            NormKind::RmsNorm => self.hook_normalized.forward(&x)?.broadcast_mul(&self.w),
        }
    }
}

/// The parameters, for weight access.
impl Norm {
    /// The weight `[d_model]`.
    pub fn weight(&self) -> &Tensor {
        &self.w
    }
    /// The bias `[d_model]` (LayerNorm).
    pub fn bias(&self) -> Option<&Tensor> {
        self.b.as_ref()
    }
    /// LayerNorm or RMSNorm.
    pub fn kind(&self) -> NormKind {
        self.kind
    }
    /// The epsilon added to the mean square.
    pub fn eps(&self) -> f64 {
        self.eps
    }
}
