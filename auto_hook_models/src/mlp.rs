//! The MLP, plain (GPT-2) or gated (Llama family), with TransformerLens's hook points.

use crate::config::Activation;
use auto_hook::prelude::*;
use candle_core::{Module, Result, Tensor};
use candle_nn::Linear;

/// `hook_pre` (the pre-activation; the gate's output in a gated MLP), `hook_pre_linear`
/// (the up projection of a gated MLP) and `hook_post` (the input of `w_out`).
#[auto_hook]
#[derive(Debug, Clone)]
pub struct Mlp {
    w_gate: Option<Linear>,
    w_in: Linear,
    w_out: Linear,
    #[auto_hook(skip)]
    act: Activation,
    hook_pre: HookPoint,
    hook_pre_linear: Option<HookPoint>,
    hook_post: HookPoint,
}

#[auto_hook]
impl Mlp {
    pub fn new(w_gate: Option<Linear>, w_in: Linear, w_out: Linear, act: Activation) -> Self {
        let hook_pre_linear = w_gate.is_some().then(HookPoint::new);
        Self {
            w_gate,
            w_in,
            w_out,
            act,
            hook_pre: HookPoint::new(),
            hook_pre_linear,
            hook_post: HookPoint::new(),
        }
    }

    fn activate(&self, x: &Tensor) -> Result<Tensor> {
        match self.act {
            Activation::GeluTanh => x.gelu(),
            Activation::Gelu => x.gelu_erf(),
            Activation::Relu => x.relu(),
            Activation::Silu => x.silu(),
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
                self.hook_post.forward(&(self.activate(&pre)? * linear)?)?
            }
            _ => {
                let pre = self.hook_pre.forward(&self.w_in.forward(x)?)?;
                self.hook_post.forward(&self.activate(&pre)?)?
            }
        };
        self.w_out.forward(&post)
    }
}
