//! Comparing two tensors: bit identity and the largest difference. One helper for the
//! runtime's own checks ([`check_auto_hook`](crate::check_auto_hook)), the tools built on
//! them and every test of the workspace.

use candle_core::{DType, Tensor};

/// Whether `a` and `b` have the same shape, the same dtype and the same bits.
///
/// ```
/// use auto_hook_runtime::bit_identical;
/// let a = candle_core::Tensor::new(&[1f32, 2.0], &candle_core::Device::Cpu)?;
/// assert!(bit_identical(&a, &a.clone())?);
/// assert!(!bit_identical(&a, &(&a + 1e-7)?)?);
/// assert!(!bit_identical(&a, &a.to_dtype(candle_core::DType::F64)?)?);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn bit_identical(a: &Tensor, b: &Tensor) -> candle_core::Result<bool> {
    if a.dims() != b.dims() || a.dtype() != b.dtype() {
        return Ok(false);
    }
    // Widening to f64 is exact, so equal f64 bits mean equal bits in the dtype itself.
    let a = a.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
    let b = b.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
    Ok(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()))
}

/// `max |a - b|` over every element (both read as f32; shapes must agree).
///
/// ```
/// use auto_hook_runtime::max_abs_diff;
/// let a = candle_core::Tensor::new(&[1f32, 2.0], &candle_core::Device::Cpu)?;
/// let b = candle_core::Tensor::new(&[1f32, 2.5], &candle_core::Device::Cpu)?;
/// assert_eq!(max_abs_diff(&a, &b)?, 0.5);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> candle_core::Result<f32> {
    let a = a.to_dtype(DType::F32)?;
    let b = b.to_dtype(DType::F32)?;
    (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()
}
