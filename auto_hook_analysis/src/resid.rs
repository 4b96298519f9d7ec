//! Cache analysis with TransformerLens's names: the residual stream accumulated layer
//! by layer or decomposed into components, per-head and per-neuron outputs, the final
//! norm applied to a stack, and logit attributions.

use crate::error::{check_index, Error, Result};
use crate::labels::{Axis, Labelled};
use crate::model::{LensModel, Point};
use crate::pos::PosSlice;
use auto_hook::ActivationCache;
use candle_core::{DType, Tensor};

/// A model and the cache of one of its runs, read together (TransformerLens's
/// `ActivationCache` methods). Stacks are `[component, batch, pos, d_model]` with the
/// component, batch and position axes labelled, positions narrowed by a [`PosSlice`]
/// (kept as an axis of length 1 for one position, labelled with its index).
///
/// ```
/// use auto_hook::prelude::*;
/// use auto_hook_analysis::{CacheAnalysis, PosSlice};
/// let model = auto_hook_models::load("../models/induction-2l", candle_core::DType::F32, &candle_core::Device::Cpu)?;
/// let ids = candle_core::Tensor::new(&[[0u32, 5, 9, 5]], &candle_core::Device::Cpu)?;
/// let (logits, cache) = model.run_with_cache(CacheOptions::all(), |m| m.forward(&ids, None))?;
/// let analysis = CacheAnalysis::new(&model, &cache);
/// let resid = analysis.accumulated_resid(None, false, PosSlice::Last)?;
/// assert_eq!(resid.axis("component")?.labels, ["0_pre", "1_pre", "final_post"]);
/// assert_eq!(resid.tensor().dims(), [3, 1, 1, 64]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct CacheAnalysis<'a, M> {
    model: &'a M,
    cache: &'a ActivationCache,
}

impl<'a, M: LensModel> CacheAnalysis<'a, M> {
    /// Reads `cache`, a cache of a run of `model`.
    pub fn new(model: &'a M, cache: &'a ActivationCache) -> Self {
        Self { model, cache }
    }

    /// The model.
    pub fn model(&self) -> &'a M {
        self.model
    }

    /// The cached activation of `point`, narrowed to `pos` along its position axis.
    pub fn get(&self, point: Point, pos: &PosSlice) -> Result<Tensor> {
        let name = self.model.hook_name(point);
        pos.apply(self.cache.get(&name)?, crate::pos::position_axis(&name))
    }

    /// The positions `pos` keeps of the sequence cached at `point`, as labels.
    fn positions(&self, point: Point, pos: &PosSlice) -> Result<Vec<String>> {
        let name = self.model.hook_name(point);
        let len = self
            .cache
            .get(&name)?
            .dim(crate::pos::position_axis(&name))?;
        Ok(pos.range(len)?.map(|p| p.to_string()).collect())
    }

    /// `layer` checked: `None` is every layer (`n_layers`), `Some(l)` needs `l <= n_layers`.
    fn upto(&self, layer: Option<usize>) -> Result<usize> {
        let n = self.model.n_layers();
        let l = layer.unwrap_or(n);
        check_index("layer", l, n + 1)
    }

    /// The residual stream entering each layer up to and including `layer` (`None`: every
    /// layer and the final stream, labelled `final_post`), with the stream between
    /// attention and MLP of the layers before `layer` when `incl_mid`. Labels `0_pre`,
    /// `0_mid`, ..., `final_post`.
    pub fn accumulated_resid(
        &self,
        layer: Option<usize>,
        incl_mid: bool,
        pos: impl Into<PosSlice>,
    ) -> Result<Labelled> {
        let (upto, pos) = (self.upto(layer)?, pos.into());
        let n = self.model.n_layers();
        let (mut parts, mut labels) = (Vec::new(), Vec::new());
        for l in 0..=upto {
            if l == n {
                parts.push(self.get(Point::ResidPost(n - 1), &pos)?);
                labels.push("final_post".to_owned());
                continue;
            }
            parts.push(self.get(Point::ResidPre(l), &pos)?);
            labels.push(format!("{l}_pre"));
            if incl_mid && l < upto {
                parts.push(self.get(Point::ResidMid(l), &pos)?);
                labels.push(format!("{l}_mid"));
            }
        }
        stack(parts, labels, self.positions(Point::ResidPre(0), &pos)?)
    }

    /// The residual stream entering `layer` (`None`: the final stream) split into the
    /// components that write to it: `embed`, `pos_embed` (models with learned positions),
    /// then `{l}_attn_out` and `{l}_mlp_out` of each earlier layer. Their sum is that
    /// stream.
    pub fn decompose_resid(
        &self,
        layer: Option<usize>,
        pos: impl Into<PosSlice>,
    ) -> Result<Labelled> {
        let (upto, pos) = (self.upto(layer)?, pos.into());
        let mut parts = vec![self.get(Point::Embed, &pos)?];
        let mut labels = vec!["embed".to_owned()];
        if self.model.has_pos_embed() {
            parts.push(self.get(Point::PosEmbed, &pos)?);
            labels.push("pos_embed".to_owned());
        }
        for l in 0..upto {
            parts.push(self.get(Point::AttnOut(l), &pos)?);
            labels.push(format!("{l}_attn_out"));
            parts.push(self.get(Point::MlpOut(l), &pos)?);
            labels.push(format!("{l}_mlp_out"));
        }
        stack(parts, labels, self.positions(Point::Embed, &pos)?)
    }

    /// Each head's output in the residual stream for the layers before `layer` (`None`:
    /// all), labelled `L{l}H{h}`: the cached `attn.hook_result` when the model has that
    /// point on, else `z · W_O` per head from the cached `attn.hook_z`. The attention
    /// output bias is not any head's; the heads of a layer sum to `hook_attn_out - b_O`.
    pub fn stack_head_results(
        &self,
        layer: Option<usize>,
        pos: impl Into<PosSlice>,
    ) -> Result<Labelled> {
        let (upto, pos) = (self.upto(layer)?, pos.into());
        let (mut parts, mut labels) = (Vec::new(), Vec::new());
        for l in 0..upto {
            let per_head = match self.get(Point::AttnResult(l), &pos) {
                Ok(result) => result.permute((2, 0, 1, 3))?,
                Err(_) => head_results(&self.get(Point::Z(l), &pos)?, &self.model.w_o(l)?)?,
            };
            for h in 0..per_head.dim(0)? {
                parts.push(per_head.get(h)?);
                labels.push(format!("L{l}H{h}"));
            }
        }
        stack(parts, labels, self.positions(Point::Z(0), &pos)?)
    }

    /// Each MLP neuron's output in the residual stream (`post[n] * W_out[n]`) for the
    /// layers before `layer` (`None`: all), labelled `L{l}N{n}`. Large: narrow `pos`.
    pub fn stack_neuron_results(
        &self,
        layer: Option<usize>,
        pos: impl Into<PosSlice>,
    ) -> Result<Labelled> {
        let (upto, pos) = (self.upto(layer)?, pos.into());
        let (mut parts, mut labels) = (Vec::new(), Vec::new());
        for l in 0..upto {
            let post = self.get(Point::MlpPost(l), &pos)?; // [b, p, n]
            let w_out = self.model.w_out(l)?.to_dtype(post.dtype())?; // [n, d]
            let (b, p, n) = post.dims3()?;
            let d = w_out.dim(1)?;
            let per = post
                .permute((2, 0, 1))?
                .reshape((n, b * p, 1))?
                .broadcast_mul(&w_out.reshape((n, 1, d))?)?
                .reshape((n, b, p, d))?;
            parts.push(per);
            labels.extend((0..n).map(|i| format!("L{l}N{i}")));
        }
        let stacked = if parts.is_empty() {
            return Err(Error::Input(
                "no layer before `layer`: nothing to stack".into(),
            ));
        } else {
            Tensor::cat(&parts, 0)?
        };
        labelled_stack(stacked, labels, self.positions(Point::MlpPost(0), &pos)?)
    }

    /// The final norm's linear part applied to each component of `stack` with the
    /// scale cached for this run (`ln_final.hook_scale`, narrowed to `pos`, which must be
    /// the slice the stack was made with): components then add up to the final norm's
    /// output less its bias, so each one's share of a logit can be read off.
    pub fn apply_ln_to_stack(
        &self,
        stack: &Labelled,
        pos: impl Into<PosSlice>,
    ) -> Result<Labelled> {
        let scale = self.get(Point::FinalScale, &pos.into())?;
        let x = stack.tensor();
        if x.rank() != 4 || x.dims()[1..3] != scale.dims()[..2] {
            return Err(Error::Input(format!(
                "apply_ln_to_stack: the stack has shape {:?} and the cached final scale {:?}; \
                 expected [component, batch, pos, d_model] made with the same pos slice",
                x.dims(),
                scale.dims()
            )));
        }
        let scale = scale.unsqueeze(0)?.to_dtype(x.dtype())?;
        stack.with_tensor(self.model.final_norm_linear(x, &scale)?)
    }

    /// Each component's contribution to the logit of `tokens` (`[batch]`, one answer per
    /// prompt), minus that of `incorrect` when given (a logit difference): a normed
    /// `stack` `[component, batch, pos, d_model]` (from
    /// [`apply_ln_to_stack`](Self::apply_ln_to_stack)) times the answers' columns of
    /// `W_U`. Returns `[component, batch, pos]`.
    pub fn logit_attrs(
        &self,
        stack: &Labelled,
        tokens: &Tensor,
        incorrect: Option<&Tensor>,
    ) -> Result<Labelled> {
        let x = stack.tensor();
        let (_, b, _, d) = x.dims4()?;
        let w_u = self.model.w_u()?.to_dtype(x.dtype())?;
        let mut dirs = answer_dirs(&w_u, tokens, b)?;
        if let Some(other) = incorrect {
            dirs = (dirs - answer_dirs(&w_u, other, b)?)?;
        }
        let attrs = x.broadcast_mul(&dirs.reshape((1, b, 1, d))?)?.sum(3)?;
        stack.with_tensor(attrs)
    }

    /// Direct logit attribution of every component of `stack` (made with `pos`):
    /// [`apply_ln_to_stack`](Self::apply_ln_to_stack) then
    /// [`logit_attrs`](Self::logit_attrs).
    pub fn direct_logit_attribution(
        &self,
        stack: &Labelled,
        pos: impl Into<PosSlice>,
        tokens: &Tensor,
        incorrect: Option<&Tensor>,
    ) -> Result<Labelled> {
        let normed = self.apply_ln_to_stack(stack, pos)?;
        self.logit_attrs(&normed, tokens, incorrect)
    }
}

/// `W_U[:, tokens]` as rows `[batch, d_model]`.
fn answer_dirs(w_u: &Tensor, tokens: &Tensor, batch: usize) -> Result<Tensor> {
    let tokens = tokens.flatten_all()?.to_dtype(DType::U32)?;
    if tokens.dim(0)? != batch {
        return Err(Error::Input(format!(
            "{} answer tokens for a batch of {batch}",
            tokens.dim(0)?
        )));
    }
    let vocab = w_u.dim(1)?;
    for &t in &tokens.to_vec1::<u32>()? {
        check_index("answer token", t as usize, vocab)?;
    }
    Ok(w_u.index_select(&tokens, 1)?.t()?)
}

/// Per-head outputs `[head, batch, pos, d_model]` from `z` `[batch, pos, head, d_head]`
/// and `W_O` `[head, d_head, d_model]`.
pub(crate) fn head_results(z: &Tensor, w_o: &Tensor) -> Result<Tensor> {
    let (b, p, h, dh) = z.dims4()?;
    let d = w_o.dim(2)?;
    let z = z
        .permute((2, 0, 1, 3))?
        .reshape((h, b * p, dh))?
        .contiguous()?;
    let out = z.matmul(&w_o.to_dtype(z.dtype())?.contiguous()?)?;
    Ok(out.reshape((h, b, p, d))?)
}

fn stack(parts: Vec<Tensor>, labels: Vec<String>, positions: Vec<String>) -> Result<Labelled> {
    if parts.is_empty() {
        return Err(Error::Input("nothing to stack for this layer".into()));
    }
    labelled_stack(Tensor::stack(&parts, 0)?, labels, positions)
}

/// `[component, batch, pos, ..]` with its first three axes labelled.
fn labelled_stack(
    stacked: Tensor,
    labels: Vec<String>,
    positions: Vec<String>,
) -> Result<Labelled> {
    let batch = stacked.dim(1)?;
    Labelled::new(
        stacked,
        vec![
            Axis::new("component", labels),
            Axis::indices("batch", batch),
            Axis::new("pos", positions),
        ],
    )
}
