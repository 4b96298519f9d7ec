//! The MLP, plain (GPT-2) or gated (Llama family), with TransformerLens's hook points.

use crate::config::HiddenAct;
use crate::proj::Proj;
use auto_hook::prelude::*;
use candle_core::{Module, Result, Tensor};

/// `hook_pre` (the pre-activation; the gate's output in a gated MLP), `hook_pre_linear`
/// (the up projection of a gated MLP) and `hook_post` (the input of `w_out`).
#[auto_hook]
#[derive(Debug, Clone)]
pub struct Mlp {
    #[auto_hook(leaf)]
    w_gate: Option<Proj>,
    #[auto_hook(leaf)]
    w_in: Proj,
    #[auto_hook(leaf)]
    w_out: Proj,
    #[auto_hook(skip)]
    act: HiddenAct,
    hook_pre: HookPoint,
    hook_pre_linear: Option<HookPoint>,
    hook_post: HookPoint,
}

#[auto_hook]
impl Mlp {
    pub fn new(
        w_gate: Option<impl Into<Proj>>,
        w_in: impl Into<Proj>,
        w_out: impl Into<Proj>,
        act: HiddenAct,
    ) -> Self {
        let hook_pre_linear = w_gate.is_some().then(HookPoint::new);
        Self {
            w_gate: w_gate.map(Into::into),
            w_in: w_in.into(),
            w_out: w_out.into(),
            act,
            hook_pre: HookPoint::new(),
            hook_pre_linear,
            hook_post: HookPoint::new(),
        }
    }
}

#[auto_hook]
impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let post = match (&self.w_gate, &self.hook_pre_linear) {
            (Some(gate), Some(hook_pre_linear)) => {
                let pre = self.hook_pre.forward(&gate.forward(x)?)?;
                let linear = hook_pre_linear.forward(&self.w_in.forward(x)?)?;
                self.hook_post.forward(&(self.act.apply(&pre)? * linear)?)?
            }
            _ => {
                let pre = self.hook_pre.forward(&self.w_in.forward(x)?)?;
                self.hook_post.forward(&self.act.apply(&pre)?)?
            }
        };
        self.w_out.forward(&post)
    }
}

/// The parts, for weight access ([`crate::HookedTransformer::w_in`], ...).
impl Mlp {
    /// The gate projection of a gated MLP, `[d_mlp, d_model]`.
    pub fn gate_proj(&self) -> Option<&Proj> {
        self.w_gate.as_deref()
    }
    /// The input (up) projection, `[d_mlp, d_model]`.
    pub fn in_proj(&self) -> &Proj {
        &self.w_in
    }
    /// The output (down) projection, `[d_model, d_mlp]`.
    pub fn out_proj(&self) -> &Proj {
        &self.w_out
    }
    /// The activation function.
    pub fn activation(&self) -> HiddenAct {
        self.act
    }
}
