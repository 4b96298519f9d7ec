//! Differentiable stand-ins for candle-nn's fused kernels.
//!
//! `candle_nn::ops::{softmax_last_dim, layer_norm, rms_norm}` and
//! `candle_nn::rotary_emb::rope` are fast fused kernels without a backward pass: their
//! output tracks no gradient, so the graph is cut there *silently* and nothing before
//! them gets a gradient (candle_nn's `LayerNorm` and `RmsNorm` modules use them too).
//! Each function here calls the fused kernel when no input
//! tracks gradients (inference: same speed, same numbers) and candle's composed,
//! differentiable version when one does (training, backward hooks, caches with
//! gradients).
//!
//! ```
//! use candle_core::{Device, Tensor, Var};
//! let x = Var::new(&[[1f32, 2.0, 3.0]], &Device::Cpu)?;
//! let p = auto_hook_runtime::ops::softmax_last_dim(x.as_tensor())?;
//! let grads = p.get_on_dim(1, 0)?.sum_all()?.backward()?; // fused softmax would fail here
//! assert!(grads.get(x.as_tensor()).is_some());
//! # Ok::<(), candle_core::Error>(())
//! ```

use candle_core::{Result, Tensor, D};

fn tracked(tensors: &[&Tensor]) -> bool {
    tensors.iter().any(|t| t.track_op())
}

/// Softmax over the last axis.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if tracked(&[x]) {
        candle_nn::ops::softmax(x, D::Minus1)
    } else {
        candle_nn::ops::softmax_last_dim(x)
    }
}

/// Layer normalisation over the last axis with weight `alpha` and bias `beta`.
pub fn layer_norm(x: &Tensor, alpha: &Tensor, beta: &Tensor, eps: f32) -> Result<Tensor> {
    if tracked(&[x, alpha, beta]) {
        candle_nn::ops::layer_norm_slow(x, alpha, beta, eps)
    } else {
        candle_nn::ops::layer_norm(&x.contiguous()?, alpha, beta, eps)
    }
}

/// RMS normalisation over the last axis with weight `alpha`.
pub fn rms_norm(x: &Tensor, alpha: &Tensor, eps: f32) -> Result<Tensor> {
    if tracked(&[x, alpha]) {
        candle_nn::ops::rms_norm_slow(x, alpha, eps)
    } else {
        candle_nn::ops::rms_norm(&x.contiguous()?, alpha, eps)
    }
}

/// Rotary position embedding, non-interleaved (`x`: `[batch, head, seq, d_head]`,
/// `cos`/`sin`: `[seq, d_head / 2]`), as `candle_nn::rotary_emb::rope`.
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    if tracked(&[x, cos, sin]) {
        candle_nn::rotary_emb::rope_slow(x, cos, sin)
    } else {
        candle_nn::rotary_emb::rope(&x.contiguous()?, &cos.contiguous()?, &sin.contiguous()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        crate::max_abs_diff(a, b).unwrap()
    }

    #[test]
    fn fused_and_differentiable_paths_agree_and_the_tracked_one_backpropagates() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (2, 3, 4, 8), &dev).unwrap();
        let (w, b) = (
            Tensor::randn(0f32, 1.0, 8, &dev).unwrap(),
            Tensor::randn(0f32, 1.0, 8, &dev).unwrap(),
        );
        let (cos, sin) = (
            Tensor::randn(0f32, 1.0, (4, 4), &dev).unwrap(),
            Tensor::randn(0f32, 1.0, (4, 4), &dev).unwrap(),
        );
        let xv = Var::from_tensor(&x).unwrap();
        let t = xv.as_tensor();
        let pairs = [
            (softmax_last_dim(&x).unwrap(), softmax_last_dim(t).unwrap()),
            (
                layer_norm(&x, &w, &b, 1e-5).unwrap(),
                layer_norm(t, &w, &b, 1e-5).unwrap(),
            ),
            (
                rms_norm(&x, &w, 1e-5).unwrap(),
                rms_norm(t, &w, 1e-5).unwrap(),
            ),
            (rope(&x, &cos, &sin).unwrap(), rope(t, &cos, &sin).unwrap()),
        ];
        for (fused, composed) in &pairs {
            assert!(max_diff(fused, composed) < 1e-4);
            let loss = (composed * composed).unwrap().sum_all().unwrap();
            let grads = loss.backward().unwrap();
            assert!(grads.get(t).is_some(), "gradient reaches the input");
        }
    }
}
