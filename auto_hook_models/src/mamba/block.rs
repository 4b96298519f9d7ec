//! One Mamba block (norm → mixer → residual), with MambaLens's hook names.

use super::config::MambaConfig;
use auto_hook::prelude::*;
use candle_core::{DType, IndexOp, Module, Result, Tensor, D};
use candle_nn::Linear;

/// The conv and SSM state one block carries from one call to the next.
#[derive(Debug, Clone, Default)]
pub struct MambaSlot {
    /// The last `K - 1` conv inputs `[batch, d_inner, K - 1]`.
    conv: Option<Tensor>,
    /// The SSM state `h` after the last position, `[batch, d_inner, d_state]` (f32).
    ssm: Option<Tensor>,
}

impl MambaSlot {
    /// The SSM state after the last cached position, `[batch, d_inner, d_state]`, if any.
    pub fn ssm_state(&self) -> Option<&Tensor> {
        self.ssm.as_ref()
    }

    /// The last `K - 1` inputs of the causal convolution, `[batch, d_inner, K - 1]`, if any.
    pub fn conv_state(&self) -> Option<&Tensor> {
        self.conv.as_ref()
    }
}

/// The weights of a block that are not modules.
#[derive(Debug, Clone)]
pub struct MixerWeights {
    /// Depthwise conv weight `[d_inner, K]` (the checkpoint's `[d_inner, 1, K]`).
    pub conv_w: Tensor,
    pub conv_b: Option<Tensor>,
    /// `A_log` `[d_inner, d_state]`.
    pub a_log: Tensor,
    /// `D` `[d_inner]`.
    pub d: Tensor,
}

/// A Mamba block. Hooks (MambaLens's names), with `B` batch, `L` positions, `E` =
/// `d_inner`, `N` = `d_state`, `R` = `dt_rank`, `D` = `d_model`: `hook_resid_pre`,
/// `hook_normalized_input` (the norm's output, after its weight), `hook_in_proj` (x)
/// `[B,L,E]`, `hook_skip` (z) `[B,L,E]`, `hook_conv` `[B,L,E]` (causal conv, before silu),
/// `hook_ssm_input` `[B,L,E]` (after silu), `hook_delta_1` `[B,L,R]`, `hook_B`, `hook_C`
/// `[B,L,N]`, `hook_delta` `[B,L,E]` (after softplus), `hook_A` `[E,N]` (`-exp(A_log)`, f32),
/// `hook_h` (the SSM state, see below), `hook_y` `[B,L,E]`, `hook_ssm_output` `[B,L,E]`
/// (`y + D·x`), `hook_after_skip` `[B,L,E]` (`· silu(z)`), `hook_out_proj` `[B,L,D]`,
/// `hook_resid_post`; plus `in_proj`/`x_proj`/`dt_proj`/`out_proj.hook_point`
/// and `hook_point`. The scan's inputs `hook_delta`, `hook_A`, `hook_B`, `hook_C` and
/// `hook_ssm_input` are f32 (the reference path's precision).
///
/// `hook_h` fires once per position, in order, with the state `h_t` `[B,E,N]` (f32)
/// right after position `t` updated it; what the hook returns is the state `y_t` reads
/// and every later position continues from. Every other point fires once per call.
#[auto_hook]
#[derive(Debug, Clone)]
pub struct MambaBlock {
    hook_resid_pre: HookPoint,
    #[auto_hook(skip)]
    norm_w: Tensor,
    hook_normalized_input: HookPoint,
    in_proj: Linear,
    hook_in_proj: HookPoint,
    hook_skip: HookPoint,
    hook_conv: HookPoint,
    hook_ssm_input: HookPoint,
    x_proj: Linear,
    hook_delta_1: HookPoint,
    #[auto_hook(rename = "hook_B")]
    hook_b: HookPoint,
    #[auto_hook(rename = "hook_C")]
    hook_c: HookPoint,
    dt_proj: Linear,
    hook_delta: HookPoint,
    #[auto_hook(rename = "hook_A")]
    hook_a: HookPoint,
    hook_h: HookPoint,
    hook_y: HookPoint,
    hook_ssm_output: HookPoint,
    hook_after_skip: HookPoint,
    out_proj: Linear,
    hook_out_proj: HookPoint,
    hook_resid_post: HookPoint,
    #[auto_hook(skip)]
    weights: MixerWeights,
    /// `-exp(A_log)` computed once when `A_log` tracks no gradient (a loaded checkpoint).
    #[auto_hook(skip)]
    a_fixed: Option<Tensor>,
    #[auto_hook(skip)]
    dims: (usize, usize, usize),
    #[auto_hook(skip)]
    eps: f64,
}

#[auto_hook]
impl MambaBlock {
    /// A block from its RMSNorm weight, the mixer's projections and its other weights.
    pub fn new(
        norm_w: Tensor,
        (in_proj, x_proj, dt_proj, out_proj): (Linear, Linear, Linear, Linear),
        weights: MixerWeights,
        cfg: &MambaConfig,
    ) -> Result<Self> {
        let a_fixed = if weights.a_log.track_op() {
            None
        } else {
            Some(weights.a_log.to_dtype(DType::F32)?.exp()?.neg()?)
        };
        Ok(Self {
            hook_resid_pre: HookPoint::new(),
            norm_w,
            hook_normalized_input: HookPoint::new(),
            in_proj,
            hook_in_proj: HookPoint::new(),
            hook_skip: HookPoint::new(),
            hook_conv: HookPoint::new(),
            hook_ssm_input: HookPoint::new(),
            x_proj,
            hook_delta_1: HookPoint::new(),
            hook_b: HookPoint::new(),
            hook_c: HookPoint::new(),
            dt_proj,
            hook_delta: HookPoint::new(),
            hook_a: HookPoint::new(),
            hook_h: HookPoint::new(),
            hook_y: HookPoint::new(),
            hook_ssm_output: HookPoint::new(),
            hook_after_skip: HookPoint::new(),
            out_proj,
            hook_out_proj: HookPoint::new(),
            hook_resid_post: HookPoint::new(),
            weights,
            a_fixed,
            dims: (cfg.d_inner, cfg.d_state, cfg.dt_rank),
            eps: cfg.norm_eps,
        })
    }

    /// `resid` `[B,L,D]` through the block; `mask` `[B,L,1]` (1 = token, 0 = padding, in
    /// the model's dtype) zeroes padding before `in_proj` and after the conv, as Hugging
    /// Face does, so left padding leaves the states of the real tokens unchanged; `slot`
    /// (generation) supplies the conv and SSM states before these positions and receives
    /// those after them.
    pub fn forward(
        &self,
        resid: &Tensor,
        mask: Option<&Tensor>,
        slot: Option<&mut MambaSlot>,
    ) -> Result<Tensor> {
        let (d_inner, d_state, dt_rank) = self.dims;
        let resid = self.hook_resid_pre.forward(resid)?;
        let normed = self
            .hook_normalized_input
            .forward(&auto_hook::ops::rms_norm(
                &resid,
                &self.norm_w,
                self.eps as f32,
            )?)?;
        let xz = match mask {
            Some(m) => self.in_proj.forward(&normed.broadcast_mul(m)?)?,
            None => self.in_proj.forward(&normed)?,
        };
        let x = self
            .hook_in_proj
            .forward(&xz.narrow(D::Minus1, 0, d_inner)?)?;
        let z = self
            .hook_skip
            .forward(&xz.narrow(D::Minus1, d_inner, d_inner)?)?;
        let (past_conv, past_h) = match &slot {
            Some(s) => (s.conv.clone(), s.ssm.clone()),
            None => (None, None),
        };
        let (conv, conv_state) = self.conv(&x, past_conv.as_ref())?;
        let conv = self.hook_conv.forward(&conv)?;
        let u = match mask {
            Some(m) => conv.silu()?.broadcast_mul(m)?,
            None => conv.silu()?,
        };
        let u = self.hook_ssm_input.forward(&u.to_dtype(DType::F32)?)?;
        let dbc = self.x_proj.forward(&u.to_dtype(x.dtype())?)?;
        let delta_1 = self
            .hook_delta_1
            .forward(&dbc.narrow(D::Minus1, 0, dt_rank)?.contiguous()?)?;
        let f32 = |t: Tensor| t.to_dtype(DType::F32);
        let b = self
            .hook_b
            .forward(&f32(dbc.narrow(D::Minus1, dt_rank, d_state)?)?)?;
        let c = self
            .hook_c
            .forward(&f32(dbc.narrow(D::Minus1, dt_rank + d_state, d_state)?)?)?;
        let delta = self
            .hook_delta
            .forward(&softplus(&f32(self.dt_proj.forward(&delta_1)?)?)?)?;
        let a = match &self.a_fixed {
            Some(a) => a.clone(),
            None => f32(self.weights.a_log.clone())?.exp()?.neg()?,
        };
        let a = self.hook_a.forward(&a)?;
        let (y, h) = self.scan(&u, &delta, &a, &b, &c, past_h.as_ref())?;
        let y = self.hook_y.forward(&y)?;
        let d = f32(self.weights.d.clone())?;
        let ssm_out = self.hook_ssm_output.forward(&(y + u.broadcast_mul(&d)?)?)?;
        let gated = ssm_out.to_dtype(x.dtype())?.mul(&z.silu()?)?;
        let after_skip = self.hook_after_skip.forward(&gated)?;
        let out = self
            .hook_out_proj
            .forward(&self.out_proj.forward(&after_skip)?)?;
        if let Some(slot) = slot {
            slot.conv = Some(conv_state);
            slot.ssm = Some(h);
        }
        self.hook_resid_post.forward(&(resid + out)?)
    }

    /// Causal depthwise conv of `x` `[B,L,E]` after `past` (the `K - 1` inputs before it,
    /// zeros when `None`): `[B,L,E]` and the new `K - 1` inputs.
    fn conv(&self, x: &Tensor, past: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        let (b, l, e) = x.dims3()?;
        let k = self.weights.conv_w.dim(1)?;
        let xt = x.transpose(1, 2)?;
        let past = match past {
            Some(p) => p.clone(),
            None => Tensor::zeros((b, e, k - 1), x.dtype(), x.device())?,
        };
        let padded = Tensor::cat(&[&past, &xt.contiguous()?], 2)?;
        let out = if l == 1 {
            // One new position (a generation step): the window times the kernel.
            padded
                .broadcast_mul(&self.weights.conv_w.unsqueeze(0)?)?
                .sum_keepdim(2)?
        } else {
            let tap = |j: usize| self.weights.conv_w.narrow(1, j, 1)?.reshape((1, e, 1));
            let mut out = padded.narrow(2, 0, l)?.broadcast_mul(&tap(0)?)?;
            for j in 1..k {
                out = (out + padded.narrow(2, j, l)?.broadcast_mul(&tap(j)?)?)?;
            }
            out
        };
        let out = match &self.weights.conv_b {
            Some(bias) => out.broadcast_add(&bias.reshape((1, e, 1))?)?,
            None => out,
        };
        let state = padded.narrow(2, l, k - 1)?.contiguous()?;
        Ok((out.transpose(1, 2)?.contiguous()?, state))
    }

    /// The selective scan in f32: `h_t = exp(Δ_t A) h_{t-1} + Δ_t B_t x_t`, `y_t = C_t h_t`,
    /// from `h_0 = past` (zeros when `None`). Returns `y` `[B,L,E]` and the last state.
    fn scan(
        &self,
        u: &Tensor,
        delta: &Tensor,
        a: &Tensor,
        b: &Tensor,
        c: &Tensor,
        past: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor)> {
        let (batch, l, e) = u.dims3()?;
        let n = a.dim(1)?;
        let delta_4 = delta.unsqueeze(3)?;
        let decay = delta_4.broadcast_mul(&a.reshape((1, 1, e, n))?)?.exp()?;
        let input = delta_4
            .broadcast_mul(&b.unsqueeze(2)?)?
            .broadcast_mul(&u.unsqueeze(3)?)?;
        let mut h = match past {
            Some(p) => p.clone(),
            None => Tensor::zeros((batch, e, n), DType::F32, u.device())?,
        };
        let mut states = Vec::with_capacity(l);
        for t in 0..l {
            h = ((decay.i((.., t))? * &h)? + input.i((.., t))?)?;
            h = self.hook_h.forward(&h)?;
            states.push(h.clone());
        }
        let states = match states.as_slice() {
            [only] => only.unsqueeze(1)?,
            _ => Tensor::stack(&states, 1)?,
        };
        let y = states.broadcast_mul(&c.unsqueeze(2)?)?.sum(3)?;
        Ok((y, h))
    }
}

/// `log(1 + exp(x))`, computed as `max(x, 0) + log(1 + exp(-|x|))` (no overflow).
fn softplus(x: &Tensor) -> Result<Tensor> {
    x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?
}
