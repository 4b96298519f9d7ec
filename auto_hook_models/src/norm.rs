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
        if self.fusable(x) {
            return x
                .contiguous()?
                .apply_op2_no_bwd(&self.w, &FusedRmsNorm { eps: self.eps });
        }
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

impl Norm {
    /// Whether [`FusedRmsNorm`] may stand in for the ops: an f32 RMSNorm on the CPU that
    /// nothing differentiates, and neither `hook_scale` nor `hook_normalized` is hooked.
    fn fusable(&self, x: &Tensor) -> bool {
        matches!(self.kind, NormKind::RmsNorm)
            && x.dtype() == DType::F32
            && self.w.dtype() == DType::F32
            && x.device().is_cpu()
            && !x.track_op()
            && !self.w.track_op()
            && !self.hook_scale.is_hooked()
            && !self.hook_normalized.is_hooked()
    }
}

/// RMSNorm's output `x / sqrt(mean(x²) + eps) · w` in one pass over the rows of a
/// contiguous f32 tensor, with every step rounded as the composed ops of
/// [`Norm::forward`] round it: candle's row sum of the squares, `· (1/d) + 0` (candle's
/// mean), `· 1 + eps`, `sqrt`, `x / s`, `· w`. Both paths give the same bits (tested), so
/// whether a call takes this one is invisible.
struct FusedRmsNorm {
    eps: f64,
}

impl candle_core::CustomOp2 for FusedRmsNorm {
    fn name(&self) -> &'static str {
        "auto-hook-rms-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &candle_core::CpuStorage,
        l1: &candle_core::Layout,
        s2: &candle_core::CpuStorage,
        l2: &candle_core::Layout,
    ) -> Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use candle_core::cpu::kernels::VecOps;
        use candle_core::CpuStorage;
        let (CpuStorage::F32(x), CpuStorage::F32(w)) = (s1, s2) else {
            candle_core::bail!("auto-hook-rms-norm: f32 only");
        };
        let (Some((x0, x1)), Some((w0, w1))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
        else {
            candle_core::bail!("auto-hook-rms-norm: contiguous input and weight only");
        };
        let (x, w) = (&x[x0..x1], &w[w0..w1]);
        let d = w.len();
        if d == 0 || l1.dims().last() != Some(&d) {
            candle_core::bail!(
                "auto-hook-rms-norm: weight of {d} for input {:?}",
                l1.dims()
            );
        }
        let (mean_mul, eps) = ((1f64 / d as f64) as f32, self.eps as f32);
        let mut out = vec![0f32; x.len()];
        let mut squares = vec![0f32; d];
        for (row, dst) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            for (sq, &v) in squares.iter_mut().zip(row) {
                *sq = v * v;
            }
            let mut sum = 0f32;
            // SAFETY: `squares` holds `d` values and `sum` is one valid f32.
            unsafe { f32::vec_reduce_sum(squares.as_ptr(), &mut sum, d) };
            let scale = ((sum * mean_mul + 0.0) * 1.0 + eps).sqrt();
            for ((o, &v), &g) in dst.iter_mut().zip(row).zip(w) {
                *o = v / scale * g;
            }
        }
        Ok((CpuStorage::F32(out), l1.shape().clone()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use auto_hook::Hooks;
    use candle_core::Device;

    /// The fused kernel and the composed ops give the same bits, on widths that are and
    /// are not multiples of the SIMD lanes, with and without hooks on the inner points.
    #[test]
    fn fused_rms_norm_equals_the_composed_ops_bit_for_bit(
    ) -> std::result::Result<(), Box<dyn std::error::Error>> {
        for (rows, d) in [(1, 8), (7, 576), (3, 100), (5, 13)] {
            let dev = Device::Cpu;
            let x = (Tensor::randn(0f32, 3.0, (1, rows, d), &dev)? + 0.5)?;
            let w = (Tensor::randn(0f32, 0.2, d, &dev)? + 1.0)?;
            let norm = Norm::new(NormKind::RmsNorm, w, None, 1e-5);
            assert!(norm.fusable(&x));
            let fused = norm.forward(&x)?;
            // A hook on hook_scale makes the forward take the composed ops.
            let composed =
                norm.run_with_hooks(Hooks::new().add("hook_scale", |_, _| ()), |m| m.forward(&x))?;
            let diff = (&fused - &composed)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert_eq!(diff, 0.0, "rows {rows}, d {d}");
            assert!(
                composed.abs()?.max_all()?.to_scalar::<f32>()? > 0.1,
                "a real output"
            );
        }
        Ok(())
    }
}
