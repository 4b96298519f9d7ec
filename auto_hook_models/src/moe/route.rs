//! Mixtral's routing as device tensors: the f32 softmax, top-k, the combine weights, and
//! (for [`MoeDispatch::Gather`]) each expert's token list.

use candle_core::{DType, Device, Result, Tensor, D};

/// How a [`SparseMoe`](crate::SparseMoe) sends tokens to its experts.
///
/// Both give the same block output up to float rounding (the tests check 1e-5: the
/// experts' matmuls have other row counts); they differ in
/// what the host reads, in the expert FLOPs and in the shape of the expert hooks.
///
/// ```
/// use auto_hook_models::MoeDispatch;
/// use candle_core::Device;
/// assert_eq!(MoeDispatch::Auto.resolve(&Device::Cpu), MoeDispatch::Gather);
/// assert_eq!(MoeDispatch::Dense.resolve(&Device::Cpu), MoeDispatch::Dense);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MoeDispatch {
    /// [`Gather`](Self::Gather) on the CPU, [`Dense`](Self::Dense) on any other device.
    /// The default.
    #[default]
    Auto,
    /// Each expert runs on the tokens routed to it (Hugging Face's and TransformerLens's
    /// way): `experts.{e}.*` hooks see `[tokens routed to e, d_mlp]`, and an expert that
    /// receives no token does not run or fire. The host reads one integer per expert per
    /// layer (a tensor's shape lives on the host), which on a GPU is a sync per layer.
    Gather,
    /// Each expert runs on every token and its output is weighted by the combine
    /// weights, which are zero for the tokens not routed to it: `n_experts / k` times
    /// the expert FLOPs and no host read at all, so a GPU never waits on routing.
    /// `experts.{e}.*` hooks see `[batch·pos, d_mlp]` (every token, routed or not) and
    /// every expert fires once per forward.
    Dense,
}

impl MoeDispatch {
    /// The concrete dispatch (`Gather` or `Dense`) used for tensors on `device`.
    pub fn resolve(self, device: &Device) -> Self {
        match self {
            Self::Auto if device.is_cpu() => Self::Gather,
            Self::Auto => Self::Dense,
            other => other,
        }
    }
}

/// Softmax over the last dimension in f32 (f64 stays f64): candle's fused kernel, or
/// its differentiable form when the logits track gradients (`auto_hook::ops`).
pub(crate) fn softmax_f32(logits: &Tensor) -> Result<Tensor> {
    let x = match logits.dtype() {
        DType::F64 => logits.clone(),
        _ => logits.to_dtype(DType::F32)?,
    };
    auto_hook::ops::softmax_last_dim(&x)
}

/// The `k` largest probabilities per row (indices best first, u32) and their weights
/// renormalised to sum to one.
pub(crate) fn top_k(probs: &Tensor, k: usize) -> Result<(Tensor, Tensor)> {
    let indices = probs
        .arg_sort_last_dim(false)?
        .narrow(D::Minus1, 0, k)?
        .contiguous()?;
    let top = probs.gather(&indices, D::Minus1)?;
    let weights = top.broadcast_div(&top.sum_keepdim(D::Minus1)?)?;
    Ok((indices, weights))
}

/// The routing of one forward: combine weights, and for `Gather` each expert's tokens.
pub(crate) struct Routes {
    /// `[n_experts, tokens]` combine weights (0 where a token does not use an expert).
    combine: Tensor,
    /// `Gather` only: per expert, its tokens in increasing order, then the rest
    /// (`[n_experts, tokens]`), and how many it has (the host read).
    gather: Option<(Tensor, Vec<u32>)>,
}

impl Routes {
    /// Routes `indices` `[tokens, k]` with `weights` `[tokens, k]` to the experts
    /// `expert_ids` (`0..n_experts`, `[1, 1, n_experts]`). `edited` says whether
    /// a hook replaced the indices: only then can they hold ids outside `0..n_experts`,
    /// and only then are they range-checked (which, with `Dense`, is a host read).
    pub(crate) fn new(
        indices: &Tensor,
        weights: &Tensor,
        expert_ids: &Tensor,
        dispatch: MoeDispatch,
        edited: bool,
    ) -> Result<Self> {
        let (t, k) = indices.dims2()?;
        if weights.dims() != [t, k] {
            candle_core::bail!(
                "hook_expert_indices has shape {:?}; the routing weights have {:?}",
                indices.dims(),
                weights.dims()
            );
        }
        let n_experts = expert_ids.dim(2)?;
        let indices = indices.to_dtype(DType::U32)?;
        // one_hot[t, k, e] = 1 when slot k of token t is expert e. The combine weights
        // are a product and a sum (differentiable; candle's scatter_add backward is not
        // usable here).
        let one_hot = indices.unsqueeze(2)?.broadcast_eq(expert_ids)?;
        let combine = one_hot
            .to_dtype(weights.dtype())?
            .broadcast_mul(&weights.unsqueeze(2)?)?
            .sum(1)?
            .t()?
            .contiguous()?;
        let slots = (t * k) as u32;
        if dispatch == MoeDispatch::Dense {
            if edited {
                let matched = one_hot
                    .to_dtype(DType::U32)?
                    .sum_all()?
                    .to_scalar::<u32>()?;
                check_in_range(matched, slots, n_experts)?;
            }
            return Ok(Self {
                combine,
                gather: None,
            });
        }
        let one_hot = one_hot.to_dtype(DType::F32)?;
        // chosen[t, e] = 1 when token t uses expert e in any slot. When the indices were
        // edited, the number of slots that name a real expert rides on the same read.
        let chosen = one_hot.max(1)?;
        let mut parts = vec![chosen.sum(0)?];
        if edited {
            parts.push(one_hot.sum_all()?.reshape(1)?);
        }
        let mut counts = Tensor::cat(&parts, 0)?
            .to_dtype(DType::U32)?
            .to_vec1::<u32>()?;
        if edited {
            let matched = counts.pop().unwrap_or(0);
            check_in_range(matched, slots, n_experts)?;
        }
        // Sort key per (expert, token): chosen tokens first, each group by position.
        let position = Tensor::arange(0f32, t as f32, indices.device())?;
        let key = chosen
            .t()?
            .affine(-(t as f64), t as f64)?
            .broadcast_add(&position)?;
        let order = key.contiguous()?.arg_sort_last_dim(true)?;
        Ok(Self {
            combine,
            gather: Some((order, counts)),
        })
    }

    /// Expert `e`'s combine weights for every token, `[tokens, 1]` (`Dense`).
    pub(crate) fn dense_weight(&self, e: usize) -> Result<Tensor> {
        self.combine.get(e)?.unsqueeze(1)
    }

    /// The tokens routed to expert `e` (`[n]` u32) and their weights `[n, 1]`; `None`
    /// when the expert gets no token (`Gather`).
    pub(crate) fn gathered(&self, e: usize) -> Result<Option<(Tensor, Tensor)>> {
        let Some((order, counts)) = &self.gather else {
            candle_core::bail!("the routes were built for the dense dispatch");
        };
        let n = counts[e] as usize;
        if n == 0 {
            return Ok(None);
        }
        let tokens = order.get(e)?.narrow(0, 0, n)?.contiguous()?;
        let weight = self
            .combine
            .get(e)?
            .index_select(&tokens, 0)?
            .unsqueeze(1)?;
        Ok(Some((tokens, weight)))
    }
}

/// `matched` of the `slots` routing slots name one of the `n_experts` experts.
fn check_in_range(matched: u32, slots: u32, n_experts: usize) -> Result<()> {
    if matched != slots {
        candle_core::bail!(
            "hook_expert_indices holds expert ids outside 0..{n_experts} \
             (there are {n_experts} experts)"
        );
    }
    Ok(())
}
