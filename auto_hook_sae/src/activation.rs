//! Activation functions of the architectures, with the gradients SAELens gives them.
//!
//! Masks (top-k selections, `h > θ`) are computed without gradient; the kept values carry
//! the gradient of `h`, as `torch.topk` + `scatter` do. The jumprelu threshold's
//! rectangle pseudo-derivative is built as a straight-through term
//! `(θ - stop_grad(θ)) · c`, whose value is exactly 0 and whose gradient is `c`.

use crate::select;
use candle_core::{DType, Result, Tensor};

/// `1[|u| < 1/2]`, SAELens's `rectangle`.
fn rectangle(u: &Tensor) -> Result<Tensor> {
    u.abs()?.lt(0.5)?.to_dtype(u.dtype())
}

/// `h` (2-D) as flat f32 scores, with its row width.
fn scores(h: &Tensor) -> Result<(Vec<f32>, usize)> {
    let (_, d) = h.dims2()?;
    Ok((h.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?, d))
}

/// The 0/1 mask (shape, dtype and device of `h`) of the kept latents of each row.
fn mask_like(h: &Tensor, kept: &[Vec<usize>], d: usize) -> Result<Tensor> {
    Tensor::from_vec(select::mask(kept, d), h.dims(), h.device())?.to_dtype(h.dtype())
}

/// Training selection for topk: a 0/1 mask (dtype of `h`) of the `k` largest scores
/// `h_ij · scale_j` of each row among the latents allowed by `only` (all when `None`),
/// by [`select::rows`] (non-positive scores dropped without `only`).
pub(crate) fn topk_select(
    h: &Tensor,
    scale: Option<&[f32]>,
    k: usize,
    only: Option<&[bool]>,
) -> Result<Tensor> {
    let (values, d) = scores(h)?;
    mask_like(h, &select::rows(&values, d, scale, k, only), d)
}

/// Training selection for batchtopk: the mask of the `k · rows` largest positive scores
/// `h_ij · scale_j` over the whole batch, and the smallest kept score (for the threshold),
/// by [`select::batch`].
pub(crate) fn batch_topk_select(
    h: &Tensor,
    scale: Option<&[f32]>,
    k: f64,
) -> Result<(Tensor, Option<f64>)> {
    let (values, d) = scores(h)?;
    let (kept, min) = select::batch(&values, d, scale, k);
    Ok((mask_like(h, &kept, d)?, min))
}

/// `topk`: the `k` largest pre-activations of each row, relu'd; zeros elsewhere.
pub(crate) fn topk(h: &Tensor, k: usize) -> Result<Tensor> {
    h.relu()? * topk_select(h, None, k, None)?
}

/// `batchtopk`: the `k * rows` largest entries of `relu(h)` over the whole batch.
pub(crate) fn batch_topk(h: &Tensor, k: f64) -> Result<Tensor> {
    h.relu()? * batch_topk_select(h, None, k)?.0
}

/// Inference jumprelu (SAELens `JumpReLUSAE.encode`): `relu(h) * 1[h > θ]`.
pub(crate) fn jumprelu(h: &Tensor, threshold: &Tensor) -> Result<Tensor> {
    let mask = h.broadcast_gt(threshold)?.to_dtype(h.dtype())?;
    h.relu()? * mask
}

/// Training jumprelu (SAELens `JumpReLU.apply`): value `h · 1[h > θ]`; gradient
/// `1[h > θ]` to `h`, and `Σ_batch -(θ/ε) · rect((h - θ)/ε) · g` to `θ`.
pub(crate) fn jumprelu_ste(h: &Tensor, threshold: &Tensor, bandwidth: f64) -> Result<Tensor> {
    let theta = threshold.detach();
    let mask = h.broadcast_gt(&theta)?.to_dtype(h.dtype())?;
    let window = rectangle(&(h.detach().broadcast_sub(&theta)? / bandwidth)?)?;
    let coeff = (window.broadcast_mul(&theta)? * (-1.0 / bandwidth))?;
    (h * mask)? + straight_through(threshold, &coeff)?
}

/// The L0 "step" with SAELens's `Step.apply` gradient: value `Σ_latents 1[h > θ]` per
/// row; gradient `Σ_batch -(1/ε) · rect((h - θ)/ε) · g` to `θ`, none to `h`.
pub(crate) fn step_l0(h: &Tensor, threshold: &Tensor, bandwidth: f64) -> Result<Tensor> {
    let theta = threshold.detach();
    let h = h.detach();
    let mask = h.broadcast_gt(&theta)?.to_dtype(h.dtype())?;
    let window = rectangle(&(h.broadcast_sub(&theta)? / bandwidth)?)?;
    let coeff = (window * (-1.0 / bandwidth))?;
    (mask + straight_through(threshold, &coeff)?)?.sum(1)
}

/// `(θ - stop_grad(θ)) * coeff`, broadcast over rows: exactly zero, gradient `coeff`.
fn straight_through(threshold: &Tensor, coeff: &Tensor) -> Result<Tensor> {
    let zero = (threshold - threshold.detach())?;
    coeff.broadcast_mul(&zero)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn jumprelu_ste_moves_theta_only_for_entries_within_half_a_bandwidth() -> Result<()> {
        let h = Tensor::new(&[[0.30f32, 0.51, 0.0]], &Device::Cpu)?;
        let theta = Var::new(&[0.5f32, 0.5, 0.5], &Device::Cpu)?;
        let f = jumprelu_ste(&h, theta.as_tensor(), 0.05)?;
        assert_eq!(f.to_vec2::<f32>()?, [[0.0, 0.51, 0.0]]);
        let grads = f.sum_all()?.backward()?;
        // only the entry within ε/2 of θ moves θ: -(0.5 / 0.05) * 1
        let g = grads.get(&theta).unwrap().to_vec1::<f32>()?;
        assert_eq!(g, [0.0, -10.0, 0.0]);
        Ok(())
    }

    #[test]
    fn step_l0_counts_active_latents_with_the_rectangle_gradient() -> Result<()> {
        let h = Tensor::new(&[[0.30f32, 0.51, 0.9]], &Device::Cpu)?;
        let theta = Var::new(&[0.5f32, 0.5, 0.5], &Device::Cpu)?;
        let l0 = step_l0(&h, theta.as_tensor(), 0.05)?;
        assert_eq!(l0.to_vec1::<f32>()?, [2.0]);
        let grads = l0.sum_all()?.backward()?;
        let g = grads.get(&theta).unwrap().to_vec1::<f32>()?;
        assert_eq!(g, [0.0, -20.0, 0.0]);
        Ok(())
    }

    #[test]
    fn topk_keeps_exactly_k_largest_per_row() -> Result<()> {
        let h = Tensor::new(
            &[[0.1f32, -2.0, 3.0, 0.5], [-1.0, -0.5, -3.0, -0.2]],
            &Device::Cpu,
        )?;
        let f = topk(&h, 2)?.to_vec2::<f32>()?;
        assert_eq!(f, [[0.0, 0.0, 3.0, 0.5], [0.0, 0.0, 0.0, 0.0]]);
        Ok(())
    }

    #[test]
    fn batch_topk_spends_its_budget_over_the_whole_batch() -> Result<()> {
        let h = Tensor::new(&[[5f32, 4.0, 0.1], [0.2, 0.3, 0.0]], &Device::Cpu)?;
        let f = batch_topk(&h, 1.0)?.to_vec2::<f32>()?; // 2 rows x k=1 -> 2 entries in all
        assert_eq!(f, [[5.0, 4.0, 0.0], [0.0, 0.0, 0.0]]);
        Ok(())
    }
}
