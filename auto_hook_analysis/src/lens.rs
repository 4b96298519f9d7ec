//! The logit lens and logit-difference helpers.

use crate::error::{check_index, Error, Result};
use crate::labels::{top_indices, Labelled};
use crate::model::LensModel;
use crate::pos::PosSlice;
use crate::resid::CacheAnalysis;
use candle_core::{DType, Tensor, D};

impl<M: LensModel> CacheAnalysis<'_, M> {
    /// The logit lens (nostalgebraist 2020): the residual stream entering each layer and
    /// the final stream, each through the final norm (with its own scale) and the
    /// unembedding, as if the model stopped there. `[layer, batch, pos, d_vocab]`,
    /// layers labelled as in [`accumulated_resid`](Self::accumulated_resid); the last
    /// row is the model's own logits.
    pub fn logit_lens(&self, pos: impl Into<PosSlice>) -> Result<Labelled> {
        let resid = self.accumulated_resid(None, false, pos)?;
        let logits = self
            .model()
            .to_logits(&self.model().final_norm(resid.tensor())?)?;
        resid.with_tensor(logits)
    }
}

/// The rank of `tokens[b]` (`[batch]`) among the logits `[.., batch, pos, d_vocab]`
/// at every leading index and position: 0 when it is the top token. Returns
/// `[.., batch, pos]` (u32).
///
/// ```
/// use candle_core::{Device, Tensor};
/// let logits = Tensor::new(&[[[0.1f32, 2.0, 0.5]], [[3.0, 1.0, 0.0]]], &Device::Cpu)?; // [batch 2, pos 1, vocab 3]
/// let ranks = auto_hook_analysis::token_ranks(&logits, &Tensor::new(&[1u32, 1], &Device::Cpu)?)?;
/// assert_eq!(ranks.to_vec2::<u32>()?, [[0], [1]]);
/// # Ok::<(), auto_hook_analysis::Error>(())
/// ```
pub fn token_ranks(logits: &Tensor, tokens: &Tensor) -> Result<Tensor> {
    let target = token_logits(logits, tokens)?;
    let above = logits.broadcast_gt(&target.unsqueeze(D::Minus1)?)?;
    Ok(above.to_dtype(DType::U32)?.sum(D::Minus1)?)
}

/// The logits of `tokens[b]` (`[batch]`) in `logits` `[.., batch, pos, d_vocab]`, as
/// `[.., batch, pos]`.
pub fn token_logits(logits: &Tensor, tokens: &Tensor) -> Result<Tensor> {
    let dims = logits.dims().to_vec();
    if dims.len() < 3 {
        return Err(Error::Input(format!(
            "logits of shape {dims:?}: expected [.., batch, pos, d_vocab]"
        )));
    }
    let (b, p, v) = (
        dims[dims.len() - 3],
        dims[dims.len() - 2],
        dims[dims.len() - 1],
    );
    let tokens = tokens.flatten_all()?.to_dtype(DType::U32)?;
    let ids = tokens.to_vec1::<u32>()?;
    if ids.len() != b {
        return Err(Error::Input(format!(
            "{} tokens for a batch of {b} (logits {dims:?})",
            ids.len()
        )));
    }
    for &t in &ids {
        check_index("token", t as usize, v)?;
    }
    let lead: usize = dims[..dims.len() - 3].iter().product();
    let index = tokens
        .reshape((1, b, 1, 1))?
        .broadcast_as((lead, b, p, 1))?
        .contiguous()?;
    let picked = logits.reshape((lead, b, p, v))?.gather(&index, 3)?;
    let mut out = dims[..dims.len() - 1].to_vec();
    if out.is_empty() {
        out.push(1);
    }
    Ok(picked.reshape(out)?)
}

/// Logit difference `logits[b, pos, answer[b]] - logits[b, pos, other[b]]` at one
/// position of `logits` `[batch, pos, d_vocab]`, per prompt: `[batch]` (TransformerLens
/// demos' `logits_to_ave_logit_diff` before the mean).
///
/// ```
/// use candle_core::{Device, Tensor};
/// let logits = Tensor::new(&[[[0.0f32, 2.0, 0.5], [1.0, 0.0, 3.0]]], &Device::Cpu)?; // [1, 2, 3]
/// let d = auto_hook_analysis::logit_diff(&logits, -1, &Tensor::new(&[2u32], &Device::Cpu)?, &Tensor::new(&[0u32], &Device::Cpu)?)?;
/// assert_eq!(d.to_vec1::<f32>()?, [2.0]);
/// # Ok::<(), auto_hook_analysis::Error>(())
/// ```
pub fn logit_diff(
    logits: &Tensor,
    pos: impl Into<PosSlice>,
    answer: &Tensor,
    other: &Tensor,
) -> Result<Tensor> {
    let at = pos.into().apply(logits, 1)?;
    if at.dim(1)? != 1 {
        return Err(Error::Input("logit_diff takes one position".into()));
    }
    let diff = (token_logits(&at, answer)? - token_logits(&at, other)?)?;
    Ok(diff.squeeze(1)?)
}

/// The `k` most likely tokens of a logit vector `[d_vocab]`, with their probabilities,
/// most likely first.
///
/// ```
/// use candle_core::{Device, Tensor};
/// let top = auto_hook_analysis::top_tokens(&Tensor::new(&[0f32, 2.0, 1.0], &Device::Cpu)?, 2)?;
/// assert_eq!(top.iter().map(|t| t.0).collect::<Vec<_>>(), [1, 2]);
/// # Ok::<(), auto_hook_analysis::Error>(())
/// ```
pub fn top_tokens(logits: &Tensor, k: usize) -> Result<Vec<(u32, f32)>> {
    let probs: Vec<f32> =
        candle_nn::ops::softmax_last_dim(&logits.to_dtype(DType::F32)?.flatten_all()?)?
            .to_vec1()?;
    Ok(top_indices(&probs, k)
        .into_iter()
        .map(|i| (i as u32, probs[i]))
        .collect())
}
