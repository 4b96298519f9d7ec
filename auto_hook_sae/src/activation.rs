//! Activation functions of the architectures, with the gradients SAELens gives them.
//!
//! Masks (top-k selections, `h > θ`) are computed without gradient; the kept values carry
//! the gradient of `h`, as `torch.topk` + `scatter` do. The jumprelu threshold's
//! rectangle pseudo-derivative is built as a straight-through term
//! `(θ - stop_grad(θ)) · c`, whose value is exactly 0 and whose gradient is `c`.

use candle_core::{DType, Result, Tensor};

/// `1[|u| < 1/2]`, SAELens's `rectangle`.
fn rectangle(u: &Tensor) -> Result<Tensor> {
    u.abs()?.lt(0.5)?.to_dtype(u.dtype())
}

/// 0/1 mask (dtype of `h`) of the `k` largest entries of each row of the 2-D `h`.
pub(crate) fn topk_mask(h: &Tensor, k: usize) -> Result<Tensor> {
    let (n, d) = h.dims2()?;
    let k = k.min(d);
    let values = h.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let mut mask = vec![0f32; n * d];
    let mut idx: Vec<usize> = Vec::with_capacity(d);
    for row in 0..n {
        let vals = &values[row * d..(row + 1) * d];
        idx.clear();
        idx.extend(0..d);
        if k < d {
            // Descending by value; NaN sorts last so it is never selected first.
            idx.select_nth_unstable_by(k, |&a, &b| vals[b].total_cmp(&vals[a]));
        }
        for &i in &idx[..k] {
            mask[row * d + i] = 1.0;
        }
    }
    Tensor::from_vec(mask, (n, d), h.device())?.to_dtype(h.dtype())
}

/// 0/1 mask of the `count` largest entries of the whole (2-D) tensor.
pub(crate) fn batch_topk_mask(acts: &Tensor, count: usize) -> Result<Tensor> {
    let dims = acts.dims().to_vec();
    let values = acts.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let total = values.len();
    let count = count.min(total);
    let mut idx: Vec<usize> = (0..total).collect();
    if count < total {
        idx.select_nth_unstable_by(count, |&a, &b| values[b].total_cmp(&values[a]));
    }
    let mut mask = vec![0f32; total];
    for &i in &idx[..count] {
        mask[i] = 1.0;
    }
    Tensor::from_vec(mask, dims, acts.device())?.to_dtype(acts.dtype())
}

/// Training selection for topk: a 0/1 mask (dtype of `h`) of the `k` largest scores
/// `h_ij · scale_j` of each row among the latents allowed by `only` (all when `None`).
/// Without `only` (the main top-k), entries with a non-positive score are dropped, as
/// the relu after SAELens's top-k zeroes them; with it (the aux-k selection of dead
/// latents), they are kept.
pub(crate) fn topk_select(
    h: &Tensor,
    scale: Option<&[f32]>,
    k: usize,
    only: Option<&[bool]>,
) -> Result<Tensor> {
    let (n, d) = h.dims2()?;
    let values = h.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let mut mask = vec![0f32; n * d];
    let allowed: Vec<usize> = match only {
        Some(only) => (0..d).filter(|&j| only[j]).collect(),
        None => (0..d).collect(),
    };
    let k = k.min(allowed.len());
    let mut scores: Vec<(f32, usize)> = Vec::with_capacity(allowed.len());
    for row in 0..n {
        let vals = &values[row * d..(row + 1) * d];
        scores.clear();
        scores.extend(
            allowed
                .iter()
                .map(|&j| (vals[j] * scale.map_or(1.0, |s| s[j]), j)),
        );
        if k < scores.len() {
            scores.select_nth_unstable_by(k, |a, b| b.0.total_cmp(&a.0));
        }
        for &(score, j) in &scores[..k] {
            if only.is_some() || score > 0.0 {
                mask[row * d + j] = 1.0;
            }
        }
    }
    Tensor::from_vec(mask, (n, d), h.device())?.to_dtype(h.dtype())
}

/// Training selection for batchtopk: the mask of the `k · rows` largest positive scores
/// `h_ij · scale_j` over the whole batch, and the smallest kept score (for the threshold).
pub(crate) fn batch_topk_select(
    h: &Tensor,
    scale: Option<&[f32]>,
    k: f64,
) -> Result<(Tensor, Option<f64>)> {
    let (n, d) = h.dims2()?;
    let values = h.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    let mut scores: Vec<(f32, usize)> = values
        .iter()
        .enumerate()
        .map(|(i, &v)| ((v * scale.map_or(1.0, |s| s[i % d])).max(0.0), i))
        .collect();
    let count = ((k * n as f64) as usize).min(scores.len());
    if count < scores.len() {
        scores.select_nth_unstable_by(count, |a, b| b.0.total_cmp(&a.0));
    }
    let mut mask = vec![0f32; n * d];
    let mut min = f32::INFINITY;
    for &(score, i) in &scores[..count] {
        if score > 0.0 {
            mask[i] = 1.0;
            min = min.min(score);
        }
    }
    let mask = Tensor::from_vec(mask, (n, d), h.device())?.to_dtype(h.dtype())?;
    Ok((mask, min.is_finite().then_some(min as f64)))
}

/// `topk`: the `k` largest pre-activations of each row, relu'd; zeros elsewhere.
pub(crate) fn topk(h: &Tensor, k: usize) -> Result<Tensor> {
    h.relu()? * topk_mask(h, k)?
}

/// `batchtopk`: the `k * rows` largest entries of `relu(h)` over the whole batch.
pub(crate) fn batch_topk(h: &Tensor, k: f64) -> Result<Tensor> {
    let acts = h.relu()?;
    let rows = h.dims()[0];
    let count = (k * rows as f64) as usize;
    let mask = batch_topk_mask(&acts, count)?;
    acts * mask
}

/// Inference jumprelu (SAELens `JumpReLUSAE.encode`): `relu(h) * 1[h > θ]`.
pub(crate) fn jumprelu(h: &Tensor, threshold: &Tensor) -> Result<Tensor> {
    let mask = h.broadcast_gt(threshold)?.to_dtype(h.dtype())?;
    h.relu()? * mask
}

/// Training jumprelu (SAELens `JumpReLU.apply`): value `h · 1[h > θ]`; gradient
/// `1[h > θ]` to `h`, and `Σ_batch -(θ/ε) · rect((h - θ)/ε) · g` to `θ`.
///
/// ```
/// # use candle_core::{Device, Var, Tensor};
/// # let h = Tensor::new(&[[0.30f32, 0.51, 0.0]], &Device::Cpu)?;
/// let theta = Var::new(&[0.5f32, 0.5, 0.5], &Device::Cpu)?;
/// let f = auto_hook_sae::jumprelu_ste(&h, theta.as_tensor(), 0.05)?;
/// assert_eq!(f.to_vec2::<f32>()?, [[0.0, 0.51, 0.0]]);
/// let grads = f.sum_all()?.backward()?;
/// // only the entry within ε/2 of θ moves θ: -(0.5 / 0.05) * 1
/// assert_eq!(grads.get(&theta).unwrap().to_vec1::<f32>()?, [0.0, -10.0, 0.0]);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn jumprelu_ste(h: &Tensor, threshold: &Tensor, bandwidth: f64) -> Result<Tensor> {
    let theta = threshold.detach();
    let mask = h.broadcast_gt(&theta)?.to_dtype(h.dtype())?;
    let window = rectangle(&(h.detach().broadcast_sub(&theta)? / bandwidth)?)?;
    let coeff = (window.broadcast_mul(&theta)? * (-1.0 / bandwidth))?;
    (h * mask)? + straight_through(threshold, &coeff)?
}

/// The L0 "step" with SAELens's `Step.apply` gradient: value `Σ_latents 1[h > θ]` per
/// row; gradient `Σ_batch -(1/ε) · rect((h - θ)/ε) · g` to `θ`, none to `h`.
///
/// ```
/// # use candle_core::{Device, Var, Tensor};
/// let h = Tensor::new(&[[0.30f32, 0.51, 0.9]], &Device::Cpu)?;
/// let theta = Var::new(&[0.5f32, 0.5, 0.5], &Device::Cpu)?;
/// let l0 = auto_hook_sae::step_l0(&h, theta.as_tensor(), 0.05)?;
/// assert_eq!(l0.to_vec1::<f32>()?, [2.0]);
/// let grads = l0.sum_all()?.backward()?;
/// assert_eq!(grads.get(&theta).unwrap().to_vec1::<f32>()?, [0.0, -20.0, 0.0]);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn step_l0(h: &Tensor, threshold: &Tensor, bandwidth: f64) -> Result<Tensor> {
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
    use candle_core::Device;

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
