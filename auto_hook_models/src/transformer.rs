//! `HookedTransformer`: one config-driven decoder for GPT-2 and the Llama family, with
//! TransformerLens's hook names.

use crate::attention::{Attention, KvSlot, Rotary, StepInputs};
use crate::config::{ArchConfig, Positions};
use crate::mlp::Mlp;
use crate::moe::{FeedForward, MoeDispatch};
use crate::norm::Norm;
use crate::proj::Proj;
use crate::text::Text;
use auto_hook::prelude::*;
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::Embedding;

/// One pre-norm residual block: `hook_resid_pre`, `ln1`, `attn`, `hook_attn_out`,
/// `hook_resid_mid`, `ln2`, `mlp`, `hook_mlp_out`, `hook_resid_post`.
#[auto_hook]
#[derive(Debug, Clone)]
pub struct TransformerBlock {
    hook_resid_pre: HookPoint,
    hook_q_input: Option<HookPoint>,
    hook_k_input: Option<HookPoint>,
    hook_v_input: Option<HookPoint>,
    ln1: Norm,
    attn: Attention,
    ln1_post: Option<Norm>,
    hook_attn_out: HookPoint,
    hook_resid_mid: HookPoint,
    ln2: Norm,
    mlp: FeedForward,
    ln2_post: Option<Norm>,
    hook_mlp_out: HookPoint,
    hook_resid_post: HookPoint,
}

#[auto_hook]
impl TransformerBlock {
    pub fn new(ln1: Norm, attn: Attention, ln2: Norm, mlp: Mlp) -> Self {
        Self::with_feed_forward(ln1, attn, ln2, FeedForward::Dense(mlp))
    }

    /// A block whose MLP is dense or a sparse mixture of experts (Mixtral).
    pub fn with_feed_forward(ln1: Norm, attn: Attention, ln2: Norm, mlp: FeedForward) -> Self {
        Self {
            hook_resid_pre: HookPoint::new(),
            hook_q_input: None,
            hook_k_input: None,
            hook_v_input: None,
            ln1,
            attn,
            ln1_post: None,
            hook_attn_out: HookPoint::new(),
            hook_resid_mid: HookPoint::new(),
            ln2,
            mlp,
            ln2_post: None,
            hook_mlp_out: HookPoint::new(),
            hook_resid_post: HookPoint::new(),
        }
    }

    /// Sets how the block's MLP sends tokens to its experts (nothing for a dense MLP).
    pub fn set_moe_dispatch(&mut self, dispatch: MoeDispatch) {
        if let FeedForward::Sparse(moe) = &mut self.mlp {
            moe.set_dispatch(dispatch);
        }
    }

    pub(crate) fn forward(
        &self,
        x: &Tensor,
        inputs: &StepInputs,
        cache: Option<&mut KvSlot>,
    ) -> Result<Tensor> {
        let resid_pre = self.hook_resid_pre.forward(x)?;
        let attn_out = match (&self.hook_q_input, &self.hook_k_input, &self.hook_v_input) {
            (Some(q), Some(k), Some(v)) => {
                let (b, t, d) = resid_pre.dims3()?;
                let (n_heads, n_kv_heads, _) = self.attn.heads();
                // The residual stream once per head, `[batch, pos, head, d_model]`, each
                // normalised by ln1 on its own (as TransformerLens does).
                let per_head = |hook: &HookPoint, n: usize| {
                    let x = resid_pre.unsqueeze(2)?.broadcast_as((b, t, n, d))?;
                    self.ln1.forward(&hook.forward(&x)?)
                };
                let q_in = per_head(q, n_heads)?;
                let k_in = per_head(k, n_kv_heads)?;
                let v_in = per_head(v, n_kv_heads)?;
                self.attn
                    .forward_split((&q_in, &k_in, &v_in), inputs, cache)?
            }
            _ => self
                .attn
                .forward(&self.ln1.forward(&resid_pre)?, inputs, cache)?,
        };
        let attn_out = self
            .hook_attn_out
            .forward(&post_norm(&self.ln1_post, attn_out)?)?;
        let resid_mid = self.hook_resid_mid.forward(&(&resid_pre + attn_out)?)?;
        let mlp_out = self.mlp.forward(&self.ln2.forward(&resid_mid)?)?;
        let mlp_out = self
            .hook_mlp_out
            .forward(&post_norm(&self.ln2_post, mlp_out)?)?;
        self.hook_resid_post.forward(&(resid_mid + mlp_out)?)
    }
}

fn post_norm(norm: &Option<Norm>, x: Tensor) -> Result<Tensor> {
    match norm {
        Some(norm) => norm.forward(&x),
        None => Ok(x),
    }
}

/// The parts, for weight access and analysis.
impl TransformerBlock {
    /// Turns `hook_q_input` / `hook_k_input` / `hook_v_input` on or off: see
    /// [`HookedTransformer::set_use_split_qkv_input`].
    pub fn set_use_split_qkv_input(&mut self, on: bool) {
        if on != self.hook_q_input.is_some() {
            self.hook_q_input = on.then(HookPoint::new);
            self.hook_k_input = on.then(HookPoint::new);
            self.hook_v_input = on.then(HookPoint::new);
        }
    }

    /// Gemma 2's norms after attention (`ln1_post`) and after the MLP (`ln2_post`),
    /// applied before `hook_attn_out` / `hook_mlp_out`, so those hold what is added to
    /// the residual stream (as in TransformerLens).
    pub fn with_post_norms(mut self, ln1_post: Norm, ln2_post: Norm) -> Self {
        self.ln1_post = Some(ln1_post);
        self.ln2_post = Some(ln2_post);
        self
    }
    /// Gemma 2's norm after attention, if any.
    pub fn ln1_post(&self) -> Option<&Norm> {
        self.ln1_post.as_ref()
    }
    /// Gemma 2's norm after the MLP, if any.
    pub fn ln2_post(&self) -> Option<&Norm> {
        self.ln2_post.as_ref()
    }
    /// The norm before attention.
    pub fn ln1(&self) -> &Norm {
        &self.ln1
    }
    /// The attention layer.
    pub fn attn(&self) -> &Attention {
        &self.attn
    }
    /// The norm before the MLP.
    pub fn ln2(&self) -> &Norm {
        &self.ln2
    }
    /// The MLP (dense or a mixture of experts).
    pub fn mlp(&self) -> &FeedForward {
        &self.mlp
    }
}

/// Keys and values of every layer, for generation.
#[derive(Debug, Clone)]
pub struct KvCache {
    slots: Vec<KvSlot>,
}

impl KvCache {
    /// An empty cache for a model of `n_layers`.
    pub fn new(n_layers: usize) -> Self {
        Self {
            slots: vec![KvSlot::default(); n_layers],
        }
    }

    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.slots.first().map_or(0, KvSlot::len)
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A decoder-only transformer (GPT-2, Llama, Mistral, Qwen2) with TransformerLens hook
/// names: `hook_embed`, `hook_pos_embed` (learned positions), `blocks.{i}.*`,
/// `ln_final.hook_scale/hook_normalized`, plus the automatic `*.hook_point` of every
/// module (`unembed.hook_point` is the logits).
#[auto_hook]
#[derive(Debug, Clone)]
pub struct HookedTransformer {
    #[auto_hook(skip)]
    cfg: ArchConfig,
    embed: Embedding,
    hook_embed: HookPoint,
    pos_embed: Option<Embedding>,
    hook_pos_embed: Option<HookPoint>,
    blocks: Vec<TransformerBlock>,
    ln_final: Norm,
    #[auto_hook(leaf)]
    unembed: Proj,
    #[auto_hook(skip)]
    text: Option<Text>,
}

#[auto_hook]
impl HookedTransformer {
    /// Assembles a model from its parts (see `load` for Hugging Face checkpoints).
    pub fn new(
        cfg: ArchConfig,
        embed: Embedding,
        pos_embed: Option<Embedding>,
        blocks: Vec<TransformerBlock>,
        ln_final: Norm,
        unembed: impl Into<Proj>,
    ) -> Self {
        let hook_pos_embed = pos_embed.is_some().then(HookPoint::new);
        Self {
            cfg,
            embed,
            hook_embed: HookPoint::new(),
            pos_embed,
            hook_pos_embed,
            blocks,
            ln_final,
            unembed: unembed.into(),
            text: None,
        }
    }

    /// The architecture.
    pub fn config(&self) -> &ArchConfig {
        &self.cfg
    }

    /// Gives the model a tokenizer (with its chat template and special tokens), for
    /// [`HookedTransformer::to_tokens`] and the other text helpers.
    pub fn set_text(&mut self, text: Text) {
        self.text = Some(text);
    }

    pub(crate) fn text_ref(&self) -> Option<&Text> {
        self.text.as_ref()
    }

    /// The residual blocks.
    pub fn blocks(&self) -> &[TransformerBlock] {
        &self.blocks
    }

    /// Turns every layer's `blocks.{l}.attn.hook_result` on or off: each head's output
    /// `[batch, pos, head, d_model]` before the sum over heads, as TransformerLens's
    /// `model.set_use_attn_result(True)`. Off by default (free when off).
    ///
    /// ```
    /// use auto_hook::prelude::*;
    /// # use candle_core::{DType, Device};
    /// # let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/induction-2l");
    /// let mut model = auto_hook_models::load(dir, DType::F32, &Device::Cpu)?;
    /// model.set_use_attn_result(true);
    /// assert!(model.hook_point_names().iter().any(|n| n == "blocks.1.attn.hook_result"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_use_attn_result(&mut self, on: bool) {
        for block in self.blocks.iter_mut() {
            block.attn.set_use_attn_result(on);
        }
    }

    /// Turns every layer's `blocks.{l}.hook_q_input` / `hook_k_input` / `hook_v_input` on
    /// or off, as TransformerLens's `model.set_use_split_qkv_input(True)`: the residual
    /// stream repeated per head (`[batch, pos, head, d_model]`; key and value inputs have
    /// the key/value heads), so that an edit reaches one head's query, key or value only.
    /// Each copy goes through `ln1` (whose points then fire three times per layer) and its
    /// head's projection. Off by default (free when off); on, the logits agree with the
    /// fused path to float rounding.
    pub fn set_use_split_qkv_input(&mut self, on: bool) {
        for block in self.blocks.iter_mut() {
            block.set_use_split_qkv_input(on);
        }
    }

    /// The token embedding (`hook_embed` is its output).
    pub fn embedding(&self) -> &Embedding {
        &self.embed
    }

    /// The learned position embedding (GPT-2), if any.
    pub fn pos_embedding(&self) -> Option<&Embedding> {
        self.pos_embed.as_deref()
    }

    /// The final norm, callable on a residual stream `[.., d_model]` (the logit lens's
    /// first step; `ln_final.hook_*` fire when it runs inside a hooked run).
    pub fn ln_final(&self) -> &Norm {
        &self.ln_final
    }

    /// The unembedding: final-norm output `[.., d_model]` → logits `[.., d_vocab]`.
    pub fn unembed(&self) -> &Proj {
        &self.unembed
    }

    /// Sets how Mixtral's MoE blocks send tokens to their experts: [`MoeDispatch`]
    /// (`Auto` after loading: `Gather` on the CPU, `Dense` elsewhere). No effect on a
    /// model with dense MLPs.
    ///
    /// ```
    /// # let mut model = auto_hook_models::load("../models/induction-2l", candle_core::DType::F32, &candle_core::Device::Cpu)?;
    /// model.set_moe_dispatch(auto_hook_models::MoeDispatch::Dense);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_moe_dispatch(&mut self, dispatch: MoeDispatch) {
        for block in &mut self.blocks {
            block.set_moe_dispatch(dispatch);
        }
    }

    /// Full-sequence logits `[batch, pos, vocab]` for `input_ids` `[batch, pos]` (u32).
    /// `attention_mask` `[batch, pos]` (1 = token, 0 = padding) allows left padding:
    /// positions count real tokens only, and padding is never attended to.
    ///
    /// Bad input (no tokens, an id outside the vocabulary, a wrong shape or dtype) is a
    /// [`crate::Error`] inside the candle error: match it with `auto_hook::find_error::<Error>(&e)`.
    ///
    /// ```
    /// # let model = auto_hook_models::load("../models/induction-2l", candle_core::DType::F32, &candle_core::Device::Cpu)?;
    /// use auto_hook_models::Error;
    /// let ids = candle_core::Tensor::new(&[[0u32, 5, 64]], &candle_core::Device::Cpu)?;
    /// let err = model.forward(&ids, None).unwrap_err();
    /// assert!(matches!(auto_hook::find_error::<Error>(&err),
    ///     Some(Error::TokenOutOfVocabulary { id: 64, batch: 0, position: 2, vocab_size: 64 })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn forward(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>) -> Result<Tensor> {
        self.run(input_ids, attention_mask, None)
    }

    /// Logits of the new tokens `input_ids` after those already in `cache`, which gets
    /// their keys and values. `attention_mask` covers cached and new positions.
    #[auto_hook(forward)]
    pub fn forward_with_cache(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        self.run(input_ids, attention_mask, Some(cache))
    }

    fn run(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        mut cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        crate::error::check_token_ids(input_ids, self.cfg.vocab_size)?;
        let (b, t) = input_ids.dims2()?;
        let past = cache.as_ref().map_or(0, |c| c.len());
        let device = input_ids.device();
        let keys = key_mask(attention_mask, b, past + t)?;
        let limit = match self.cfg.positions {
            Positions::Learned { n_ctx } => Some((n_ctx, "learned positions (n_positions)")),
            Positions::Rotary { .. } => self
                .cfg
                .context_length
                .map(|n| (n, "positions of context (context_length)")),
        };
        if let Some((n_ctx, what)) = limit {
            let longest = keys
                .iter()
                .map(|row| row.iter().filter(|&&k| k > 0.0).count());
            let longest = longest.max().unwrap_or(0);
            if longest > n_ctx {
                return Err(crate::Error::Input(format!(
                    "a sequence of {longest} tokens (cached and new) is longer than the model's \
                     {n_ctx} {what}"
                ))
                .into());
            }
        }
        let positions = positions(&keys, t, device)?;
        let mut resid = self.embed.forward(input_ids)?;
        if self.cfg.gemma.is_some() {
            // transformers casts the scale to the model's dtype before multiplying.
            let scale = crate::gemma::GemmaConfig::embed_scale(self.cfg.d_model) as f32;
            let scale = Tensor::new(scale, device)?.to_dtype(resid.dtype())?;
            resid = resid.broadcast_mul(&scale)?;
        }
        let mut resid = self.hook_embed.forward(&resid)?;
        if let (Some(pos_embed), Some(hook)) = (&self.pos_embed, &self.hook_pos_embed) {
            resid = (resid + hook.forward(&pos_embed.forward(&positions)?)?)?;
        }
        let dtype = resid.dtype();
        let rotary = match self.cfg.positions {
            Positions::Rotary { theta } => {
                Some(Rotary::new(&positions, self.cfg.d_head, theta, dtype)?)
            }
            Positions::Learned { .. } => None,
        };
        let window = self.cfg.sliding_window;
        let (mask, sliding_mask) = match &self.cfg.gemma {
            // Gemma 2: global layers see every earlier key, sliding ones the window.
            Some(g) if g.sliding_layers.iter().any(|&s| s) => (
                additive_mask(&keys, t, past, None, dtype, device)?,
                Some(additive_mask(&keys, t, past, window, dtype, device)?),
            ),
            Some(_) => (additive_mask(&keys, t, past, None, dtype, device)?, None),
            None => (additive_mask(&keys, t, past, window, dtype, device)?, None),
        };
        let inputs = StepInputs {
            mask,
            sliding_mask,
            rotary,
        };
        for (i, block) in self.blocks.iter().enumerate() {
            let slot = cache.as_mut().map(|c| &mut c.slots[i]);
            resid = block.forward(&resid, &inputs, slot)?;
        }
        let logits = self.unembed.forward(&self.ln_final.forward(&resid)?)?;
        match &self.cfg.gemma {
            Some(g) => crate::gemma::softcap(&logits, g.final_softcap),
            None => Ok(logits),
        }
    }
}

/// `[batch, k_pos]` as f32 1/0 on the CPU: the given mask, or all ones.
fn key_mask(attention_mask: Option<&Tensor>, b: usize, k_len: usize) -> Result<Vec<Vec<f32>>> {
    let Some(mask) = attention_mask else {
        return Ok(vec![vec![1.0; k_len]; b]);
    };
    if mask.dims() != [b, k_len] {
        return Err(crate::Error::Input(format!(
            "attention_mask has shape {:?}; expected [batch, cached + new positions] = [{b}, {k_len}]",
            mask.dims()
        ))
        .into());
    }
    mask.to_dtype(DType::F32)?.to_vec2::<f32>()
}

/// Position ids `[batch, t]` of the last `t` keys: the number of real tokens before
/// each (Hugging Face's `cumsum(mask) - 1`; padding gets 0 and is never attended to).
fn positions(keys: &[Vec<f32>], t: usize, device: &Device) -> Result<Tensor> {
    let mut ids = Vec::with_capacity(keys.len() * t);
    for row in keys {
        let mut seen = 0u32;
        let all: Vec<u32> = row
            .iter()
            .map(|&k| {
                seen += u32::from(k > 0.0);
                if k > 0.0 {
                    seen - 1
                } else {
                    0
                }
            })
            .collect();
        ids.extend_from_slice(&all[all.len() - t..]);
    }
    Tensor::from_vec(ids, (keys.len(), t), device)
}

/// `[batch, 1, t, past + t]`: 0 where query `past + i` may see key `j` (causal, not
/// padding, inside the sliding window), the dtype's minimum elsewhere.
fn additive_mask(
    keys: &[Vec<f32>],
    t: usize,
    past: usize,
    window: Option<usize>,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let k_len = past + t;
    let mut data = Vec::with_capacity(keys.len() * t * k_len);
    let mut every_query_sees_a_key = true;
    for row in keys {
        for i in 0..t {
            let q = past + i;
            let mut seen = false;
            for (j, &key) in row.iter().enumerate() {
                let visible = j <= q && key > 0.0 && window.is_none_or(|w| q - j < w);
                seen |= visible;
                data.push(if visible { 0.0 } else { f32::NEG_INFINITY });
            }
            every_query_sees_a_key &= seen;
        }
    }
    // Blocked scores are −∞, as TransformerLens shows them in `hook_attn_scores` (and
    // `exp` returns 0 for them at once, where a finite minimum takes the slow underflow
    // path). A query that sees no key at all (a padding position) would then get NaN,
    // so such a mask uses the dtype's minimum, as Hugging Face does, and the row a
    // uniform pattern.
    if !every_query_sees_a_key {
        let blocked = match dtype {
            DType::F16 => -65504.0,
            DType::BF16 => -3.38e38,
            _ => f32::MIN,
        };
        data.iter_mut()
            .filter(|v| v.is_infinite())
            .for_each(|v| *v = blocked);
    }
    Tensor::from_vec(data, (keys.len(), 1, t, k_len), device)?.to_dtype(dtype)
}
