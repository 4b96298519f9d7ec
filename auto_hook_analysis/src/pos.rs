//! Positions: slices of the position axis (TransformerLens's `pos_slice`) and hooks that
//! edit one position of an activation (`at_position`).

use crate::error::{Error, Result};
use auto_hook::HookInfo;
use candle_core::Tensor;
use std::ops::Range;

/// Which positions an analysis keeps. The position axis is always kept (an `At` slice
/// leaves it with length 1), so shapes do not depend on the slice.
///
/// ```
/// use auto_hook_analysis::PosSlice;
/// assert_eq!(PosSlice::Last.range(7)?, 6..7);
/// assert_eq!(PosSlice::from(2..4).range(7)?, 2..4);
/// assert!(PosSlice::At(-8).range(7).is_err());
/// # Ok::<(), auto_hook_analysis::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PosSlice {
    /// Every position.
    #[default]
    All,
    /// The last position.
    Last,
    /// One position; negative counts from the end (`-1` is the last).
    At(i64),
    /// Positions `start..end`.
    Range(usize, usize),
}

impl PosSlice {
    /// The positions this slice keeps out of `len`.
    pub fn range(&self, len: usize) -> Result<Range<usize>> {
        let out_of_range = |index: i64| Error::OutOfRange {
            what: "position",
            index,
            len,
        };
        match *self {
            PosSlice::All => Ok(0..len),
            PosSlice::Last if len > 0 => Ok(len - 1..len),
            PosSlice::Last => Err(out_of_range(-1)),
            PosSlice::At(i) => {
                let at = if i < 0 { len as i64 + i } else { i };
                if at < 0 || at >= len as i64 {
                    return Err(out_of_range(i));
                }
                Ok(at as usize..at as usize + 1)
            }
            PosSlice::Range(start, end) if start < end && end <= len => Ok(start..end),
            PosSlice::Range(_, end) => Err(out_of_range(end as i64 - 1)),
        }
    }

    /// `x` narrowed to this slice along `axis`.
    pub fn apply(&self, x: &Tensor, axis: usize) -> Result<Tensor> {
        let range = self.range(x.dim(axis)?)?;
        Ok(x.narrow(axis, range.start, range.len())?)
    }
}

impl From<usize> for PosSlice {
    fn from(i: usize) -> Self {
        PosSlice::At(i as i64)
    }
}

/// `-1` is the last position.
impl From<i32> for PosSlice {
    fn from(i: i32) -> Self {
        PosSlice::At(i64::from(i))
    }
}

impl From<i64> for PosSlice {
    fn from(i: i64) -> Self {
        PosSlice::At(i)
    }
}

impl From<Range<usize>> for PosSlice {
    fn from(r: Range<usize>) -> Self {
        PosSlice::Range(r.start, r.end)
    }
}

/// The position axis of a transformer activation called `name`: the query axis (2) of
/// `[batch, head, q_pos, k_pos]` attention scores and patterns, axis 1 of everything
/// else (`[batch, pos, ...]`).
pub fn position_axis(name: &str) -> usize {
    if name.ends_with("hook_pattern") || name.ends_with("hook_attn_scores") {
        2
    } else {
        1
    }
}

/// A hook that edits only position `pos` of a transformer activation: `edit` gets the
/// slice at that position (the position axis kept, length 1) and returns its
/// replacement; the other positions pass unchanged. The position axis is chosen by
/// [`position_axis`] (queries for attention patterns). This is the transformer
/// counterpart of `auto_hook_models::at_position` for Mamba's per-position state.
///
/// ```
/// # let model = auto_hook_models::load("../models/induction-2l", candle_core::DType::F32, &candle_core::Device::Cpu)?;
/// use auto_hook::prelude::*;
/// use auto_hook_analysis::at_position;
/// let ids = candle_core::Tensor::new(&[[0u32, 5, 9, 5, 9]], &candle_core::Device::Cpu)?;
/// let hooks = Hooks::new().add("blocks.0.hook_resid_post", at_position(3, |x| x.zeros_like()));
/// let (_, cache) = model.run_with_hooks(hooks,
///     |m| m.run_with_cache("blocks.0.hook_resid_post", |m| m.forward(&ids, None)))?;
/// let resid = cache.get("blocks.0.hook_resid_post")?;
/// assert_eq!(resid.get(0)?.get(3)?.abs()?.sum_all()?.to_scalar::<f32>()?, 0.0);
/// assert!(resid.get(0)?.get(2)?.abs()?.sum_all()?.to_scalar::<f32>()? > 0.0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn at_position<F>(
    pos: usize,
    mut edit: F,
) -> impl FnMut(&Tensor, &HookInfo) -> candle_core::Result<Tensor>
where
    F: FnMut(&Tensor) -> candle_core::Result<Tensor>,
{
    move |x, info| {
        let axis = position_axis(info.name());
        let len = x.dim(axis)?;
        if pos >= len {
            return Err(Error::OutOfRange {
                what: "position",
                index: pos as i64,
                len,
            }
            .into());
        }
        let here = edit(&x.narrow(axis, pos, 1)?)?;
        replace_slice(x, axis, pos, &here)
    }
}

/// `x` with `x[.., at..at + part.len, ..]` (along `axis`) replaced by `part`.
pub(crate) fn replace_slice(
    x: &Tensor,
    axis: usize,
    at: usize,
    part: &Tensor,
) -> candle_core::Result<Tensor> {
    let len = x.dim(axis)?;
    let n = part.dim(axis)?;
    let mut pieces = Vec::with_capacity(3);
    if at > 0 {
        pieces.push(x.narrow(axis, 0, at)?);
    }
    pieces.push(part.to_dtype(x.dtype())?);
    if at + n < len {
        pieces.push(x.narrow(axis, at + n, len - at - n)?);
    }
    Tensor::cat(&pieces, axis)
}
