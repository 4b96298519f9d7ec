//! Mixtral's sparse mixture-of-experts MLP, with TransformerLens's MoE hook names.
//!
//! Routing follows Hugging Face's `MixtralSparseMoeBlock`: router logits `x W_g^T`,
//! softmax in f32 over all experts, top-k, renormalised over the k, cast back to the
//! model's dtype; the output is `Σ_k p_k · w_out(act(w_gate x) ⊙ w_in x)`.
//!
//! The routing stays on the device: softmax, top-k (a sort), renormalisation and the
//! combine weights (a one-hot product) are tensor ops. How tokens then reach the experts
//! is a [`MoeDispatch`]: `Gather` (the CPU default) sorts each expert's tokens on the
//! device and reads only their counts, one integer per expert and layer, because each
//! expert's hooks see `[tokens routed to e, d_mlp]` and a shape lives on the host;
//! `Dense` (the default on other devices) runs every expert on every token, weighted,
//! and reads nothing, so a GPU never waits on routing. (candle 0.11 has no device-side
//! nonzero or grouped GEMM that would give both.)

use crate::config::HiddenAct;
use crate::error::{Error, Result as ModelResult};
use auto_hook::prelude::*;
use candle_core::{Module, Result, Tensor};
use candle_nn::Linear;
use route::Routes;
use serde::Deserialize;
use serde_json::Value;

pub(crate) mod load;
mod loss;
mod route;

pub use crate::feed_forward::FeedForward;
pub use loss::router_aux_loss;
pub use route::MoeDispatch;
pub(crate) use route::{softmax_f32, top_k};

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
        let raw: RawMoe = crate::config::parse(value.clone(), "mixtral")?;
        let (n_experts, top_k) = (raw.num_local_experts, raw.num_experts_per_tok);
        if n_experts == 0 || top_k == 0 || top_k > n_experts {
            return Err(Error::Config(format!(
                "num_experts_per_tok {top_k} must be between 1 and num_local_experts {n_experts}"
            )));
        }
        Ok(Self {
            n_experts,
            top_k,
            router_aux_loss_coef: raw.router_aux_loss_coef,
        })
    }
}

/// The MoE fields of a Mixtral `config.json`, as Hugging Face names them.
#[derive(Deserialize)]
struct RawMoe {
    num_local_experts: usize,
    num_experts_per_tok: usize,
    #[serde(default = "default_aux_loss_coef")]
    router_aux_loss_coef: f64,
}

fn default_aux_loss_coef() -> f64 {
    0.001
}

/// One expert, a gated MLP: `hook_gate` (`w_gate x`, Mixtral's `w1`), `hook_pre`
/// (`w_in x`, `w3`), `hook_post` (`act(gate) ⊙ pre`, the input of `w_out`, `w2`), each
/// `[tokens, d_mlp]` as in TransformerLens's `MoEGatedMLP`, and `w_out.hook_point`
/// (the expert's output before its routing weight).
#[auto_hook]
#[derive(Debug, Clone)]
pub struct Expert {
    #[auto_hook(skip)]
    gate_in: GateIn,
    w_out: Linear,
    #[auto_hook(skip)]
    act: HiddenAct,
    hook_gate: HookPoint,
    hook_pre: HookPoint,
    hook_post: HookPoint,
}

/// `w_gate` and `w_in`: one `[2·d_mlp, d_model]` matrix (transformers 5's
/// `gate_up_proj`), so that both take one matmul, or two projections when either is a
/// candle `Var` (a model built on a `VarMap`), so that an optimiser's in-place updates
/// reach the forward.
#[derive(Debug, Clone)]
enum GateIn {
    Fused { w: Linear, d_mlp: usize },
    Split { gate: Linear, up: Linear },
}

impl GateIn {
    /// `(w_gate x, w_in x)`; with `observed`, both contiguous (the fused halves are
    /// column views, which candle's `index_select` refuses, and a hook or cache should
    /// get ordinary tensors; unobserved, the copies are skipped).
    fn forward(&self, x: &Tensor, observed: bool) -> Result<(Tensor, Tensor)> {
        match self {
            GateIn::Fused { w, d_mlp } => {
                let both = w.forward(x)?;
                let half = |start| {
                    let view = both.narrow(1, start, *d_mlp)?;
                    if observed {
                        view.contiguous()
                    } else {
                        Ok(view)
                    }
                };
                Ok((half(0)?, half(*d_mlp)?))
            }
            GateIn::Split { gate, up } => Ok((gate.forward(x)?, up.forward(x)?)),
        }
    }
}

#[auto_hook]
impl Expert {
    /// An expert from its three projections (`w1`, `w3`, `w2` in Mixtral's names; no
    /// biases). `w1` and `w3` are stacked into one matrix unless either is a `Var`.
    pub fn new(w_gate: Linear, w_in: Linear, w_out: Linear, act: HiddenAct) -> Result<Self> {
        let (wg, wi) = (w_gate.weight(), w_in.weight());
        if wg.dims() != wi.dims() || w_gate.bias().is_some() || w_in.bias().is_some() {
            candle_core::bail!(
                "an expert's w1 {:?} and w3 {:?} must be bias-free and of one shape",
                wg.dims(),
                wi.dims()
            );
        }
        let gate_in = if wg.is_variable() || wi.is_variable() {
            GateIn::Split {
                gate: w_gate,
                up: w_in,
            }
        } else {
            GateIn::Fused {
                w: Linear::new(Tensor::cat(&[wg, wi], 0)?, None),
                d_mlp: wg.dim(0)?,
            }
        };
        Ok(Self::from_parts(gate_in, w_out, act))
    }

    /// An expert from `gate_up` `[2·d_mlp, d_model]` (`w1` rows, then `w3` rows, as one
    /// expert of transformers 5's `experts.gate_up_proj`) and `w_out` (`w2`).
    pub fn from_gate_up(gate_up: Tensor, w_out: Linear, act: HiddenAct) -> Result<Self> {
        let rows = gate_up.dim(0)?;
        if rows % 2 != 0 {
            candle_core::bail!("gate_up_proj has an odd number of rows ({rows})");
        }
        let gate_in = GateIn::Fused {
            w: Linear::new(gate_up, None),
            d_mlp: rows / 2,
        };
        Ok(Self::from_parts(gate_in, w_out, act))
    }

    fn from_parts(gate_in: GateIn, w_out: Linear, act: HiddenAct) -> Self {
        Self {
            gate_in,
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
        let observed = self.hook_gate.is_observed();
        let (gate, pre) = self.gate_in.forward(x, observed)?;
        let gate = self.hook_gate.forward(&gate)?;
        let pre = self.hook_pre.forward(&pre)?;
        let post = self.hook_post.forward(&(self.act.apply(&gate)? * pre)?)?;
        self.w_out.forward(&post)
    }
}

/// Mixtral's sparse MoE block. Hook points (under `blocks.{i}.mlp.`): `router.hook_point`
/// (the router logits `[batch·pos, n_experts]`, in the model's dtype),
/// `hook_expert_weights` (the f32 softmax over all experts, `[batch·pos, n_experts]`),
/// `hook_expert_indices` (the chosen experts, u32 `[batch·pos, k]`, best first),
/// `experts.{e}.hook_gate/hook_pre/hook_post` and `experts.{e}.w_out.hook_point`, and
/// `hook_point` (the block's output `[batch, pos, d_model]`).
///
/// Routing is computed *from the hooked values*: a hook that zeroes column `e` of
/// `hook_expert_weights` removes expert `e` from the top-k; one that rewrites
/// `hook_expert_indices` sends tokens to other experts (each slot keeps its weight; an id
/// outside `0..n_experts` is an error).
/// With [`MoeDispatch::Gather`] (the CPU default) an expert that receives no token is
/// skipped, as in Hugging Face and TransformerLens: its `experts.{e}.*` hooks do not fire
/// in that forward. With [`MoeDispatch::Dense`] every expert sees every token
/// (`[batch·pos, d_mlp]`). Every other point fires once per forward.
#[auto_hook]
#[derive(Debug, Clone)]
pub struct SparseMoe {
    router: Linear,
    hook_expert_weights: HookPoint,
    hook_expert_indices: HookPoint,
    experts: Vec<Expert>,
    #[auto_hook(skip)]
    top_k: usize,
    #[auto_hook(skip)]
    dispatch: MoeDispatch,
    /// `0..n_experts` as u32 `[1, 1, n_experts]` on the router's device, made once so
    /// that a forward uploads nothing.
    #[auto_hook(skip)]
    expert_ids: Tensor,
}

#[auto_hook]
impl SparseMoe {
    /// A block from its router (`[n_experts, d_model]`) and experts; `top_k` experts per
    /// token.
    pub fn new(router: Linear, experts: Vec<Expert>, top_k: usize) -> Result<Self> {
        let (n, device) = (experts.len(), router.weight().device());
        if router.weight().dim(0)? != n || top_k == 0 || top_k > n {
            candle_core::bail!(
                "a router of shape {:?} for {n} experts, top-{top_k}",
                router.weight().dims()
            );
        }
        let expert_ids = Tensor::arange(0u32, n as u32, device)?.reshape((1, 1, n))?;
        Ok(Self {
            router,
            hook_expert_weights: HookPoint::new(),
            hook_expert_indices: HookPoint::new(),
            experts,
            top_k,
            dispatch: MoeDispatch::Auto,
            expert_ids,
        })
    }

    /// How tokens reach the experts ([`MoeDispatch::Auto`] unless set).
    pub fn dispatch(&self) -> MoeDispatch {
        self.dispatch
    }

    /// Sets how tokens reach the experts.
    pub fn set_dispatch(&mut self, dispatch: MoeDispatch) {
        self.dispatch = dispatch;
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
        let routed = self.hook_expert_indices.forward(&indices)?;
        let edited = routed.id() != indices.id();
        let weights = weights.to_dtype(x.dtype())?;
        let dispatch = self.dispatch.resolve(x.device());
        let routes = Routes::new(&routed, &weights, &self.expert_ids, dispatch, edited)?;
        let mut out = xs.zeros_like()?;
        for (e, expert) in self.experts.iter().enumerate() {
            if dispatch == MoeDispatch::Dense {
                let y = expert.forward(&xs)?;
                out = (out + y.broadcast_mul(&routes.dense_weight(e)?)?)?;
                continue;
            }
            let Some((tokens, weight)) = routes.gathered(e)? else {
                continue;
            };
            let y = expert.forward(&xs.index_select(&tokens, 0)?)?;
            out = out.index_add(&tokens, &y.broadcast_mul(&weight)?, 0)?;
        }
        out.reshape((b, p, h))
    }
}
