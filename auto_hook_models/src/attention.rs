//! Multi-head attention with grouped-query heads, rotary embeddings, a KV cache, and
//! TransformerLens's hook points.

use crate::proj::Proj;
use auto_hook::prelude::*;
use candle_core::{DType, Module, Result, Tensor};

/// Rotary angles for the positions of one forward: `cos`/`sin` `[batch, pos, d_head/2]`
/// (`[pos, d_head/2]` when every row has the same positions).
#[derive(Debug, Clone)]
pub(crate) struct Rotary {
    cos: Tensor,
    sin: Tensor,
}

impl Rotary {
    /// Angles `position / theta^(2i/d_head)` for `positions` `[batch, pos]` (u32).
    pub fn new(positions: &Tensor, d_head: usize, theta: f64, dtype: DType) -> Result<Self> {
        let half = d_head / 2;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| (1.0 / theta.powf(2.0 * i as f64 / d_head as f64)) as f32)
            .collect();
        let inv_freq = Tensor::from_vec(inv_freq, (1, 1, half), positions.device())?;
        let angles = positions
            .to_dtype(DType::F32)?
            .unsqueeze(2)?
            .broadcast_mul(&inv_freq)?;
        // One row of angles serves the whole batch when the rows agree (no padding).
        let angles = if angles.dim(0)? == 1 {
            angles.squeeze(0)?
        } else {
            angles
        };
        Ok(Self {
            cos: angles.cos()?.to_dtype(dtype)?,
            sin: angles.sin()?.to_dtype(dtype)?,
        })
    }

    /// Rotates `x` `[batch, head, pos, d_head]` (non-interleaved halves, as Hugging Face):
    /// `x1·cos − x2·sin` and `x2·cos + x1·sin`. Candle's fused kernel when nothing tracks
    /// gradients; otherwise the same products and sums composed, so both give the same bits.
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        if !x.track_op() {
            return candle_nn::rotary_emb::rope(&x.contiguous()?, &self.cos, &self.sin);
        }
        // `[batch, 1, pos, half]` (or `[pos, half]`) against `[batch, head, pos, half]`.
        let per_row = |t: &Tensor| match t.rank() {
            3 => t.unsqueeze(1),
            _ => Ok(t.clone()),
        };
        let (cos, sin) = (per_row(&self.cos)?, per_row(&self.sin)?);
        let half = x.dim(3)? / 2;
        let (x1, x2) = (x.narrow(3, 0, half)?, x.narrow(3, half, half)?);
        let first = (x1.broadcast_mul(&cos)? - x2.broadcast_mul(&sin)?)?;
        let second = (x2.broadcast_mul(&cos)? + x1.broadcast_mul(&sin)?)?;
        Tensor::cat(&[first, second], 3)
    }
}

/// Keys and values of the positions seen so far, for one layer: `[batch, kv_head, pos, d_head]`.
#[derive(Debug, Clone, Default)]
pub(crate) struct KvSlot {
    kv: Option<(Tensor, Tensor)>,
}

impl KvSlot {
    fn append(&mut self, k: Tensor, v: Tensor) -> Result<(Tensor, Tensor)> {
        let (k, v) = match self.kv.take() {
            Some((pk, pv)) => (Tensor::cat(&[pk, k], 2)?, Tensor::cat(&[pv, v], 2)?),
            None => (k, v),
        };
        self.kv = Some((k.clone(), v.clone()));
        Ok((k, v))
    }

    /// Number of cached positions.
    pub(crate) fn len(&self) -> usize {
        self.kv.as_ref().map_or(0, |(k, _)| k.dim(2).unwrap_or(0))
    }
}

/// What every layer needs for one forward step.
#[derive(Debug, Clone)]
pub(crate) struct StepInputs {
    /// Additive mask `[batch, 1, q_pos, k_pos]`: 0 where allowed; elsewhere −∞, or the
    /// dtype's minimum when some query sees no key (padding).
    pub mask: Tensor,
    /// The same with the sliding window, for layers that slide while others do not
    /// (Gemma 2); `None` when no layer has its own window.
    pub sliding_mask: Option<Tensor>,
    pub rotary: Option<Rotary>,
}

/// Attention with `hook_q/k/v` `[batch, pos, head, d_head]`, `hook_rot_q/k` (rotary
/// models), `hook_attn_scores` and `hook_pattern` `[batch, head, q_pos, k_pos]`, `hook_z`,
/// and, when turned on ([`set_use_attn_result`](Self::set_use_attn_result)),
/// `hook_result` `[batch, pos, head, d_model]`.
#[auto_hook]
#[derive(Debug, Clone)]
pub struct Attention {
    #[auto_hook(leaf)]
    w_q: Proj,
    #[auto_hook(leaf)]
    w_k: Proj,
    #[auto_hook(leaf)]
    w_v: Proj,
    #[auto_hook(leaf)]
    w_o: Proj,
    hook_q: HookPoint,
    hook_k: HookPoint,
    hook_v: HookPoint,
    hook_rot_q: Option<HookPoint>,
    hook_rot_k: Option<HookPoint>,
    hook_attn_scores: HookPoint,
    hook_pattern: HookPoint,
    hook_z: HookPoint,
    hook_result: Option<HookPoint>,
    n_heads: usize,
    n_kv_heads: usize,
    d_head: usize,
    #[auto_hook(skip)]
    scores: Scores,
}

/// How raw scores `q·k` become the scores the mask is added to.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct Scores {
    /// Multiply by this instead of dividing by `sqrt(d_head)`.
    scale: Option<f64>,
    /// `c · tanh(s / c)`.
    softcap: Option<f64>,
    /// Use the step's sliding-window mask.
    sliding: bool,
}

#[auto_hook]
impl Attention {
    pub fn new(
        w_q: impl Into<Proj>,
        w_k: impl Into<Proj>,
        w_v: impl Into<Proj>,
        w_o: impl Into<Proj>,
        heads: (usize, usize, usize),
        rotary: bool,
    ) -> Self {
        let (n_heads, n_kv_heads, d_head) = heads;
        let rot = || rotary.then(HookPoint::new);
        Self {
            w_q: w_q.into(),
            w_k: w_k.into(),
            w_v: w_v.into(),
            w_o: w_o.into(),
            hook_q: HookPoint::new(),
            hook_k: HookPoint::new(),
            hook_v: HookPoint::new(),
            hook_rot_q: rot(),
            hook_rot_k: rot(),
            hook_attn_scores: HookPoint::new(),
            hook_pattern: HookPoint::new(),
            hook_z: HookPoint::new(),
            hook_result: None,
            n_heads,
            n_kv_heads,
            d_head,
            scores: Scores::default(),
        }
    }

    pub(crate) fn forward(
        &self,
        x: &Tensor,
        inputs: &StepInputs,
        cache: Option<&mut KvSlot>,
    ) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let heads = |y: Tensor, n: usize| y.reshape((b, t, n, self.d_head));
        let q = heads(self.w_q.forward(x)?, self.n_heads)?;
        let k = heads(self.w_k.forward(x)?, self.n_kv_heads)?;
        let v = heads(self.w_v.forward(x)?, self.n_kv_heads)?;
        self.attend(q, k, v, inputs, cache)
    }
}

impl Attention {
    /// The forward from per-head inputs (TransformerLens's `use_split_qkv_input`):
    /// `q_in` `[batch, pos, head, d_model]`, `k_in` / `v_in` `[batch, pos, kv_head,
    /// d_model]`, each projected by its own head's `W_Q` / `W_K` / `W_V` (a quantized
    /// projection is dequantised on every call).
    pub(crate) fn forward_split(
        &self,
        (q_in, k_in, v_in): (&Tensor, &Tensor, &Tensor),
        inputs: &StepInputs,
        cache: Option<&mut KvSlot>,
    ) -> Result<Tensor> {
        let q = per_head_projection(&self.w_q, q_in, self.d_head)?;
        let k = per_head_projection(&self.w_k, k_in, self.d_head)?;
        let v = per_head_projection(&self.w_v, v_in, self.d_head)?;
        self.attend(q, k, v, inputs, cache)
    }

    /// Everything after the projections: `q`, `k`, `v` `[batch, pos, head, d_head]`.
    fn attend(
        &self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        inputs: &StepInputs,
        cache: Option<&mut KvSlot>,
    ) -> Result<Tensor> {
        let (b, t, _, _) = q.dims4()?;
        let q = self.hook_q.forward(&q)?;
        let k = self.hook_k.forward(&k)?;
        let v = self.hook_v.forward(&v)?;
        // Heads first, `[batch, head, pos, d_head]`, for the rotation and the products.
        let heads_first = |y: &Tensor| y.transpose(1, 2)?.contiguous();
        let (q, k) = (heads_first(&q)?, heads_first(&k)?);
        let (q, k) = match (&inputs.rotary, &self.hook_rot_q, &self.hook_rot_k) {
            // The rotated q/k fire as `[batch, pos, head, d_head]` views of the result
            // (TransformerLens's layout); turning them back is free unless a hook
            // replaced them.
            (Some(rot), Some(hook_q), Some(hook_k)) => {
                let rotated = |x: &Tensor, hook: &HookPoint| {
                    heads_first(&hook.forward(&rot.apply(x)?.transpose(1, 2)?)?)
                };
                (rotated(&q, hook_q)?, rotated(&k, hook_k)?)
            }
            _ => (q, k),
        };
        let mut v = heads_first(&v)?;
        let mut k = k;
        if let Some(cache) = cache {
            (k, v) = cache.append(k, v)?;
        }
        let groups = self.n_heads / self.n_kv_heads;
        let (k, v) = (repeat_kv(k, groups)?, repeat_kv(v, groups)?);
        let scores = match self.scores.scale {
            None => (q.matmul(&k.t()?)? / (self.d_head as f64).sqrt())?,
            Some(scale) => (q.matmul(&k.t()?)? * scale)?,
        };
        let scores = crate::gemma::softcap(&scores, self.scores.softcap)?;
        let mask = match (&inputs.sliding_mask, self.scores.sliding) {
            (Some(sliding), true) => sliding,
            _ => &inputs.mask,
        };
        let scores = self
            .hook_attn_scores
            .forward(&scores.broadcast_add(mask)?)?;
        // Half precision takes its softmax in f32, as Hugging Face does.
        let pattern = match scores.dtype() {
            DType::F16 | DType::BF16 => {
                auto_hook::ops::softmax_last_dim(&scores.to_dtype(DType::F32)?)?
                    .to_dtype(scores.dtype())?
            }
            _ => auto_hook::ops::softmax_last_dim(&scores)?,
        };
        let pattern = self.hook_pattern.forward(&pattern)?;
        let z = self.hook_z.forward(&pattern.matmul(&v)?.transpose(1, 2)?)?;
        match &self.hook_result {
            None => self
                .w_o
                .forward(&z.reshape((b, t, self.n_heads * self.d_head))?),
            Some(hook_result) => self.per_head_output(&z, hook_result),
        }
    }
}

impl Attention {
    /// The output as TransformerLens computes it with `use_attn_result`: each head's
    /// `z · W_O[head]` `[batch, pos, head, d_model]` through `hook_result`, then summed
    /// over heads, plus `b_O`. A quantized `W_O` is dequantised on every call.
    fn per_head_output(&self, z: &Tensor, hook_result: &HookPoint) -> Result<Tensor> {
        let (b, t, h, d_head) = z.dims4()?;
        let w = self.w_o.weight()?; // [d_model, head · d_head]
        let d_model = w.dim(0)?;
        let w_heads = w.t()?.contiguous()?.reshape((h, d_head, d_model))?;
        let z_heads = z
            .permute((2, 0, 1, 3))?
            .contiguous()?
            .reshape((h, b * t, d_head))?;
        let result = z_heads
            .matmul(&w_heads.to_dtype(z.dtype())?)?
            .reshape((h, b, t, d_model))?
            .permute((1, 2, 0, 3))?;
        let out = hook_result.forward(&result)?.sum(2)?;
        match self.w_o.bias() {
            Some(bias) => out.broadcast_add(bias),
            None => Ok(out),
        }
    }

    /// Turns `hook_result` (each head's output, `[batch, pos, head, d_model]`) on or off,
    /// as TransformerLens's `use_attn_result`. Off by default: it costs a per-head product
    /// and a sum instead of one matmul, and the output then differs from the fused one in
    /// the last bits (the sum over heads is taken in another order).
    pub fn set_use_attn_result(&mut self, on: bool) {
        if on != self.hook_result.is_some() {
            self.hook_result = on.then(HookPoint::new);
        }
    }
}

/// `x` `[batch, pos, n, d_model]` through each of the `n` heads of `proj`
/// (`[n · d_head, d_model]`): `[batch, pos, n, d_head]`, plus the head's bias.
fn per_head_projection(proj: &Proj, x: &Tensor, d_head: usize) -> Result<Tensor> {
    let (b, t, n, d_model) = x.dims4()?;
    let w = proj
        .weight()?
        .to_dtype(x.dtype())?
        .reshape((n, d_head, d_model))?
        .transpose(1, 2)?;
    let y = x
        .permute((2, 0, 1, 3))?
        .contiguous()?
        .reshape((n, b * t, d_model))?
        .matmul(&w.contiguous()?)?
        .reshape((n, b, t, d_head))?
        .permute((1, 2, 0, 3))?;
    match proj.bias() {
        Some(bias) => y.broadcast_add(&bias.reshape((n, d_head))?),
        None => Ok(y),
    }
}

/// Repeats each key/value head `n` times (grouped-query attention), as Hugging Face.
fn repeat_kv(x: Tensor, n: usize) -> Result<Tensor> {
    if n == 1 {
        return Ok(x);
    }
    let (b, h, t, d) = x.dims4()?;
    x.unsqueeze(2)?
        .expand((b, h, n, t, d))?
        .reshape((b, h * n, t, d))
}

/// The parts, for weight access ([`crate::HookedTransformer::w_q`], ...).
impl Attention {
    /// Gemma's scores: multiplied by `scale` (`query_pre_attn_scalar^-1/2`) instead of
    /// divided by `sqrt(d_head)`, soft-capped as `c · tanh(s / c)` before the mask (so
    /// `hook_attn_scores` holds capped, masked scores, as in TransformerLens), and, when
    /// `sliding`, masked with the step's sliding-window mask.
    pub fn with_scores(mut self, scale: f64, softcap: Option<f64>, sliding: bool) -> Self {
        self.scores = Scores {
            scale: Some(scale),
            softcap,
            sliding,
        };
        self
    }

    /// The query projection, `[n_heads · d_head, d_model]`.
    pub fn q_proj(&self) -> &Proj {
        &self.w_q
    }
    /// The key projection, `[n_kv_heads · d_head, d_model]`.
    pub fn k_proj(&self) -> &Proj {
        &self.w_k
    }
    /// The value projection, `[n_kv_heads · d_head, d_model]`.
    pub fn v_proj(&self) -> &Proj {
        &self.w_v
    }
    /// The output projection, `[d_model, n_heads · d_head]`.
    pub fn o_proj(&self) -> &Proj {
        &self.w_o
    }
    /// `(n_heads, n_kv_heads, d_head)`.
    pub fn heads(&self) -> (usize, usize, usize) {
        (self.n_heads, self.n_kv_heads, self.d_head)
    }
}

#[cfg(test)]
mod tests {
    use super::Rotary;
    use candle_core::{DType, Device, Tensor, Var};

    /// The fused kernel (inference) and the composed ops (gradients tracked) give the
    /// same bits, for one row of positions and for per-row positions (left padding).
    #[test]
    fn rotary_fused_and_tracked_paths_agree_bit_for_bit() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        for positions in [
            vec![vec![0u32, 1, 2, 3]],
            vec![vec![0, 1, 2, 3], vec![0, 0, 1, 2]],
        ] {
            let b = positions.len();
            let pos = Tensor::new(positions, &dev)?;
            let rot = Rotary::new(&pos, 8, 10_000.0, DType::F32)?;
            let x = Tensor::randn(0f32, 1.0, (b, 3, 4, 8), &dev)?;
            let fused = rot.apply(&x)?;
            let var = Var::from_tensor(&x)?;
            let tracked = rot.apply(var.as_tensor())?;
            let diff = (&fused - &tracked)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert_eq!(diff, 0.0, "batch {b}");
            let grads = tracked.sum_all()?.backward()?;
            assert!(grads.get(var.as_tensor()).is_some(), "gradient reaches x");
        }
        Ok(())
    }
}
