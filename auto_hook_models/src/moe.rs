//! Mixtral's sparse mixture-of-experts MLP, with TransformerLens's MoE hook names.
//!
//! Routing follows Hugging Face's `MixtralSparseMoeBlock`: router logits `x W_g^T`,
//! softmax in f32 over all experts, top-k, renormalised over the k, cast back to the
//! model's dtype; the output is `Σ_k p_k · w_out(act(w_gate x) ⊙ w_in x)`.
//!
//! The routing stays on the device: softmax, top-k (a sort), renormalisation, the
//! combine weights (a one-hot product) and each expert's token list (a sort of a mask)
//! are tensor ops, and the experts' outputs go back with `index_add`. The host reads
//! only the number of tokens each expert receives and a range check of the (possibly
//! edited) indices, `n_experts + 1` integers per layer: a tensor's shape lives on the
//! host, and each expert's hooks see `[tokens routed to e, d_mlp]`. (On a GPU this read
//! is still a sync per layer; candle 0.11 has no device-side nonzero or grouped GEMM.)

use crate::config::Activation;
use crate::error::{Error, Result as ModelResult};
use auto_hook::prelude::*;
use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::Linear;
use serde_json::Value;

pub use crate::feed_forward::FeedForward;
pub use crate::moe_loss::router_aux_loss;

/// The mixture-of-experts part of a Mixtral `config.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct MoeConfig {
    /// `num_local_experts`.
    pub n_experts: usize,
    /// `num_experts_per_tok` (the k of top-k).
    pub top_k: usize,
    /// `router_aux_loss_coef`: the weight of [`router_aux_loss`] in a training loss.
    pub router_aux_loss_coef: f64,
}

impl MoeConfig {
    /// Reads and checks the MoE fields of a parsed `config.json`.
    ///
    /// ```
    /// let v = serde_json::json!({"num_local_experts": 4, "num_experts_per_tok": 2});
    /// let moe = auto_hook_models::MoeConfig::from_json(&v)?;
    /// assert_eq!((moe.n_experts, moe.top_k, moe.router_aux_loss_coef), (4, 2, 0.001));
    /// let bad = serde_json::json!({"num_local_experts": 2, "num_experts_per_tok": 3});
    /// assert!(auto_hook_models::MoeConfig::from_json(&bad).is_err());
    /// # Ok::<(), auto_hook_models::Error>(())
    /// ```
    pub fn from_json(value: &Value) -> ModelResult<Self> {
        let count = |key: &str| -> ModelResult<usize> {
            value
                .get(key)
                .and_then(Value::as_u64)
                .map(|n| n as usize)
                .ok_or_else(|| Error::Config(format!("mixtral config has no integer `{key}`")))
        };
        let n_experts = count("num_local_experts")?;
        let top_k = count("num_experts_per_tok")?;
        if n_experts == 0 || top_k == 0 || top_k > n_experts {
            return Err(Error::Config(format!(
                "num_experts_per_tok {top_k} must be between 1 and num_local_experts {n_experts}"
            )));
        }
        let router_aux_loss_coef = value
            .get("router_aux_loss_coef")
            .and_then(Value::as_f64)
            .unwrap_or(0.001);
        Ok(Self {
            n_experts,
            top_k,
            router_aux_loss_coef,
        })
    }
}

/// One expert, a gated MLP: `hook_gate` (`w_gate x`, Mixtral's `w1`), `hook_pre`
/// (`w_in x`, `w3`), `hook_post` (`act(gate) ⊙ pre`, the input of `w_out`, `w2`), each
/// `[tokens routed to this expert, d_mlp]` as in TransformerLens's `MoEGatedMLP`.
#[auto_hook]
#[derive(Debug, Clone)]
pub struct Expert {
    w_gate: Linear,
    w_in: Linear,
    w_out: Linear,
    #[auto_hook(skip)]
    act: Activation,
    hook_gate: HookPoint,
    hook_pre: HookPoint,
    hook_post: HookPoint,
}

#[auto_hook]
impl Expert {
    /// An expert from its three projections (`w1`, `w3`, `w2` in Mixtral's names).
    pub fn new(w_gate: Linear, w_in: Linear, w_out: Linear, act: Activation) -> Self {
        Self {
            w_gate,
            w_in,
            w_out,
            act,
            hook_gate: HookPoint::new(),
            hook_pre: HookPoint::new(),
            hook_post: HookPoint::new(),
        }
    }
}

#[auto_hook]
impl Module for Expert {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let gate = self.hook_gate.forward(&self.w_gate.forward(x)?)?;
        let pre = self.hook_pre.forward(&self.w_in.forward(x)?)?;
        let post = self
            .hook_post
            .forward(&(activate(self.act, &gate)? * pre)?)?;
        self.w_out.forward(&post)
    }
}

pub(crate) fn activate(act: Activation, x: &Tensor) -> Result<Tensor> {
    match act {
        Activation::GeluTanh => x.gelu(),
        Activation::Gelu => x.gelu_erf(),
        Activation::Relu => x.relu(),
        Activation::Silu => x.silu(),
    }
}

/// Mixtral's sparse MoE block. Hook points (under `blocks.{i}.mlp.`): `router.hook_point`
/// (the router logits `[batch·pos, n_experts]`, in the model's dtype),
/// `hook_expert_weights` (the f32 softmax over all experts, `[batch·pos, n_experts]`),
/// `hook_expert_indices` (the chosen experts, u32 `[batch·pos, k]`, best first),
/// `experts.{e}.hook_gate/hook_pre/hook_post` and `experts.{e}.w_*.hook_point`, and
/// `hook_point` (the block's output `[batch, pos, d_model]`).
///
/// Routing is computed *from the hooked values*: a hook that zeroes column `e` of
/// `hook_expert_weights` removes expert `e` from the top-k; one that rewrites
/// `hook_expert_indices` sends tokens to other experts (each slot keeps its weight; an id
/// outside `0..n_experts` is an error).
/// An expert that receives no token is skipped, as in Hugging Face and TransformerLens:
/// its `experts.{e}.*` hooks do not fire in that forward. Every other point fires once
/// per forward.
#[auto_hook]
#[derive(Debug, Clone)]
pub struct SparseMoe {
    router: Linear,
    hook_expert_weights: HookPoint,
    hook_expert_indices: HookPoint,
    experts: Vec<Expert>,
    #[auto_hook(skip)]
    top_k: usize,
}

#[auto_hook]
impl SparseMoe {
    /// A block from its router (`[n_experts, d_model]`) and experts; `top_k` experts per token.
    pub fn new(router: Linear, experts: Vec<Expert>, top_k: usize) -> Self {
        Self {
            router,
            hook_expert_weights: HookPoint::new(),
            hook_expert_indices: HookPoint::new(),
            experts,
            top_k,
        }
    }

    /// The number of experts.
    pub fn n_experts(&self) -> usize {
        self.experts.len()
    }

    /// The number of experts each token uses.
    pub fn top_k(&self) -> usize {
        self.top_k
    }
}

#[auto_hook]
impl Module for SparseMoe {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, p, h) = x.dims3()?;
        let xs = x.reshape((b * p, h))?;
        let logits = self.router.forward(&xs)?;
        let probs = self.hook_expert_weights.forward(&softmax_f32(&logits)?)?;
        let (indices, weights) = top_k(&probs, self.top_k)?;
        let indices = self.hook_expert_indices.forward(&indices)?;
        let routes = Routes::new(&indices, &weights.to_dtype(x.dtype())?, self.n_experts())?;
        let mut out = xs.zeros_like()?;
        for (e, expert) in self.experts.iter().enumerate() {
            let Some((tokens, weight)) = routes.expert(e)? else {
                continue;
            };
            let y = expert.forward(&xs.index_select(&tokens, 0)?)?;
            out = out.index_add(&tokens, &y.broadcast_mul(&weight)?, 0)?;
        }
        out.reshape((b, p, h))
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

/// Which tokens each expert gets, and with what weight, all as device tensors.
struct Routes {
    /// `[n_experts, tokens]`: per expert, its tokens in increasing order, then the rest.
    order: Tensor,
    /// Tokens per expert (the one host read).
    counts: Vec<u32>,
    /// `[n_experts, tokens]` combine weights (0 where a token does not use an expert).
    combine: Tensor,
}

impl Routes {
    fn new(indices: &Tensor, weights: &Tensor, n_experts: usize) -> Result<Self> {
        let (t, k) = indices.dims2()?;
        if weights.dims() != [t, k] {
            candle_core::bail!(
                "hook_expert_indices has shape {:?}; the routing weights have {:?}",
                indices.dims(),
                weights.dims()
            );
        }
        let device = indices.device();
        let indices = indices.to_dtype(DType::U32)?;
        let experts = Tensor::arange(0u32, n_experts as u32, device)?.reshape((1, 1, n_experts))?;
        // one_hot[t, k, e] = 1 when slot k of token t is expert e. The combine weights
        // are a product and a sum (differentiable; candle's scatter_add backward is not
        // usable here), and chosen[t, e] = 1 when token t uses expert e in any slot.
        let one_hot = indices.unsqueeze(2)?.broadcast_eq(&experts)?;
        let combine = one_hot
            .to_dtype(weights.dtype())?
            .broadcast_mul(&weights.unsqueeze(2)?)?
            .sum(1)?;
        let one_hot = one_hot.to_dtype(DType::F32)?;
        let chosen = one_hot.max(1)?;
        // The one host read: tokens per expert, and the number of slots naming a real
        // expert (an edited `hook_expert_indices` may hold ids out of range).
        let matched = one_hot.sum_all()?.reshape(1)?;
        let mut counts = Tensor::cat(&[&chosen.sum(0)?, &matched], 0)?
            .to_dtype(DType::U32)?
            .to_vec1::<u32>()?;
        if counts.pop() != Some((t * k) as u32) {
            candle_core::bail!(
                "hook_expert_indices holds expert ids outside 0..{n_experts} (there are {n_experts} experts)"
            );
        }
        // Sort key per (expert, token): chosen tokens first, each group by position.
        let position = Tensor::arange(0f32, t as f32, device)?;
        let key = chosen
            .t()?
            .affine(-(t as f64), t as f64)?
            .broadcast_add(&position)?;
        let order = key.contiguous()?.arg_sort_last_dim(true)?;
        Ok(Self {
            order,
            counts,
            combine: combine.t()?.contiguous()?,
        })
    }

    /// The tokens routed to expert `e` (`[n]` u32) and their weights `[n, 1]`; `None`
    /// when the expert gets no token.
    fn expert(&self, e: usize) -> Result<Option<(Tensor, Tensor)>> {
        let n = self.counts[e] as usize;
        if n == 0 {
            return Ok(None);
        }
        let tokens = self.order.get(e)?.narrow(0, 0, n)?.contiguous()?;
        let weight = self
            .combine
            .get(e)?
            .index_select(&tokens, 0)?
            .unsqueeze(1)?;
        Ok(Some((tokens, weight)))
    }
}
