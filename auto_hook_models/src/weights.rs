//! TransformerLens's weight names on [`HookedTransformer`]: `W_E`, `W_pos`, `W_U`, `b_U`,
//! `W_Q/W_K/W_V` `[head, d_model, d_head]`, `W_O` `[head, d_head, d_model]`, their biases,
//! `W_in`/`W_gate`/`W_out` and `b_in`/`b_out`, in snake case (`w_q(layer)`).
//!
//! Quantized weights ([`crate::load_quantized`]) are dequantised to f32; grouped-query
//! keys and values are repeated per query head, as TransformerLens's `W_K` / `W_V` do.
//! Missing biases are zeros of the right shape, as in TransformerLens.

use crate::error::Error;
use crate::mlp::Mlp;
use crate::moe::FeedForward;
use crate::proj::Proj;
use crate::transformer::{HookedTransformer, TransformerBlock};
use candle_core::{Result, Tensor};

impl HookedTransformer {
    fn block(&self, layer: usize) -> Result<&TransformerBlock> {
        self.blocks().get(layer).ok_or_else(|| {
            Error::Input(format!(
                "layer {layer} does not exist: the model has {} layers (0..={})",
                self.blocks().len(),
                self.blocks().len().saturating_sub(1)
            ))
            .into()
        })
    }

    fn dense_mlp(&self, layer: usize) -> Result<&Mlp> {
        match self.block(layer)?.mlp() {
            FeedForward::Dense(mlp) => Ok(mlp),
            FeedForward::Sparse(_) => Err(Error::Unsupported(format!(
                "layer {layer}'s MLP is a mixture of experts: W_in / W_out belong to its experts"
            ))
            .into()),
        }
    }

    /// `W_E` `[d_vocab, d_model]`, the token embedding.
    ///
    /// ```
    /// # let model = auto_hook_models::load("../models/induction-2l", candle_core::DType::F32, &candle_core::Device::Cpu)?;
    /// assert_eq!(model.w_e()?.dims(), [64, 64]);
    /// assert_eq!(model.w_q(1)?.dims(), [4, 64, 16]);   // [n_heads, d_model, d_head]
    /// assert_eq!(model.w_o(1)?.dims(), [4, 16, 64]);   // [n_heads, d_head, d_model]
    /// assert_eq!(model.w_u()?.dims(), [64, 64]);       // [d_model, d_vocab]
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn w_e(&self) -> Result<Tensor> {
        Ok(self.embedding().embeddings().clone())
    }

    /// `W_pos` `[n_ctx, d_model]` of learned positions (GPT-2); `None` for rotary models.
    pub fn w_pos(&self) -> Option<Tensor> {
        self.pos_embedding().map(|e| e.embeddings().clone())
    }

    /// `W_U` `[d_model, d_vocab]`, the unembedding.
    pub fn w_u(&self) -> Result<Tensor> {
        self.unembed().weight()?.t()?.contiguous()
    }

    /// `b_U` `[d_vocab]` (zeros: these architectures have no unembedding bias).
    pub fn b_u(&self) -> Result<Tensor> {
        bias_or_zeros(self.unembed(), self.config().vocab_size)
    }

    /// `W_Q` `[n_heads, d_model, d_head]` of `layer`.
    pub fn w_q(&self, layer: usize) -> Result<Tensor> {
        let attn = self.block(layer)?.attn();
        let (n, _, d_head) = attn.heads();
        per_head_in(&attn.q_proj().weight()?, n, d_head, 1)
    }

    /// `W_K` `[n_heads, d_model, d_head]` of `layer` (key heads repeated per query head).
    pub fn w_k(&self, layer: usize) -> Result<Tensor> {
        let attn = self.block(layer)?.attn();
        let (n, kv, d_head) = attn.heads();
        per_head_in(&attn.k_proj().weight()?, kv, d_head, n / kv)
    }

    /// `W_V` `[n_heads, d_model, d_head]` of `layer` (value heads repeated per query head).
    pub fn w_v(&self, layer: usize) -> Result<Tensor> {
        let attn = self.block(layer)?.attn();
        let (n, kv, d_head) = attn.heads();
        per_head_in(&attn.v_proj().weight()?, kv, d_head, n / kv)
    }

    /// `W_O` `[n_heads, d_head, d_model]` of `layer`.
    pub fn w_o(&self, layer: usize) -> Result<Tensor> {
        let attn = self.block(layer)?.attn();
        let (n, _, d_head) = attn.heads();
        let w = attn.o_proj().weight()?; // [d_model, n · d_head]
        w.t()?.reshape((n, d_head, w.dim(0)?))?.contiguous()
    }

    /// `b_Q` `[n_heads, d_head]` of `layer`.
    pub fn b_q(&self, layer: usize) -> Result<Tensor> {
        let attn = self.block(layer)?.attn();
        let (n, _, d_head) = attn.heads();
        per_head_bias(attn.q_proj(), n, d_head, 1)
    }

    /// `b_K` `[n_heads, d_head]` of `layer`.
    pub fn b_k(&self, layer: usize) -> Result<Tensor> {
        let attn = self.block(layer)?.attn();
        let (n, kv, d_head) = attn.heads();
        per_head_bias(attn.k_proj(), kv, d_head, n / kv)
    }

    /// `b_V` `[n_heads, d_head]` of `layer`.
    pub fn b_v(&self, layer: usize) -> Result<Tensor> {
        let attn = self.block(layer)?.attn();
        let (n, kv, d_head) = attn.heads();
        per_head_bias(attn.v_proj(), kv, d_head, n / kv)
    }

    /// `b_O` `[d_model]` of `layer`.
    pub fn b_o(&self, layer: usize) -> Result<Tensor> {
        bias_or_zeros(self.block(layer)?.attn().o_proj(), self.config().d_model)
    }

    /// `W_in` `[d_model, d_mlp]` of `layer` (the up projection of a gated MLP).
    pub fn w_in(&self, layer: usize) -> Result<Tensor> {
        self.dense_mlp(layer)?.in_proj().weight()?.t()?.contiguous()
    }

    /// `W_gate` `[d_model, d_mlp]` of `layer`'s gated MLP; `None` for GPT-2's MLP.
    pub fn w_gate(&self, layer: usize) -> Result<Option<Tensor>> {
        match self.dense_mlp(layer)?.gate_proj() {
            Some(p) => Ok(Some(p.weight()?.t()?.contiguous()?)),
            None => Ok(None),
        }
    }

    /// `W_out` `[d_mlp, d_model]` of `layer`.
    pub fn w_out(&self, layer: usize) -> Result<Tensor> {
        self.dense_mlp(layer)?
            .out_proj()
            .weight()?
            .t()?
            .contiguous()
    }

    /// `b_in` `[d_mlp]` of `layer`.
    pub fn b_in(&self, layer: usize) -> Result<Tensor> {
        bias_or_zeros(self.dense_mlp(layer)?.in_proj(), self.config().d_mlp)
    }

    /// `b_out` `[d_model]` of `layer`.
    pub fn b_out(&self, layer: usize) -> Result<Tensor> {
        bias_or_zeros(self.dense_mlp(layer)?.out_proj(), self.config().d_model)
    }
}

/// `[n · d_head, d_model]` → `[n · repeat, d_model, d_head]`, each head repeated `repeat`
/// times in a row (TransformerLens's `repeat_interleave` for grouped-query attention).
fn per_head_in(w: &Tensor, n: usize, d_head: usize, repeat: usize) -> Result<Tensor> {
    let d_model = w.dim(1)?;
    let w = w.reshape((n, d_head, d_model))?.transpose(1, 2)?;
    let w = w
        .unsqueeze(1)?
        .expand((n, repeat, d_model, d_head))?
        .reshape((n * repeat, d_model, d_head))?;
    w.contiguous()
}

fn per_head_bias(p: &Proj, n: usize, d_head: usize, repeat: usize) -> Result<Tensor> {
    let b = bias_or_zeros(p, n * d_head)?.reshape((n, 1, d_head))?;
    b.expand((n, repeat, d_head))?
        .reshape((n * repeat, d_head))?
        .contiguous()
}

fn bias_or_zeros(p: &Proj, len: usize) -> Result<Tensor> {
    match p.bias() {
        Some(b) => Ok(b.clone()),
        None => Tensor::zeros(len, p.dtype(), &p.device()),
    }
}
