//! The SAE's own hook points: firing them with the input's leading axes, and the
//! `HookedModule` walk over them.

use super::{unflatten, Fire, Sae};
use crate::error::Result;
use auto_hook::{HookPoint, HookedModule, Schema, Walker, WalkerMut};
use candle_core::{Module, Tensor};

/// Fires `point` on the 2-D `t` seen with the input's leading axes; returns 2-D.
pub(super) fn fire(point: &HookPoint, t: Tensor, lead: &[usize]) -> Result<Tensor> {
    let width = t.dim(1)?;
    if lead.len() == 1 {
        return Ok(point.fire(t)?);
    }
    let shaped = unflatten(&t, lead)?;
    Ok(point.fire(shaped)?.reshape(((), width))?)
}

pub(super) fn fire_if(on: Fire, point: &HookPoint, t: Tensor, lead: &[usize]) -> Result<Tensor> {
    match on {
        Fire::Yes => fire(point, t, lead),
        Fire::No => Ok(t),
    }
}

const POINT: Schema = Schema::Point;
const SAE_SCHEMA: Schema = Schema::Struct(&[
    ("hook_sae_input", &POINT),
    ("hook_sae_acts_pre", &POINT),
    ("hook_sae_acts_post", &POINT),
    ("hook_sae_output", &POINT),
    ("hook_sae_recons", &POINT),
    ("hook_sae_error", &POINT),
]);

impl HookedModule for Sae {
    const SCHEMA: Schema = SAE_SCHEMA;

    fn visit_hooks<'s>(&'s self, walker: &mut Walker<'_, 's>) {
        walker.module("auto_hook_sae::Sae");
        walker.child("hook_sae_input", &self.hook_sae_input);
        walker.child("hook_sae_acts_pre", &self.hook_sae_acts_pre);
        walker.child("hook_sae_acts_post", &self.hook_sae_acts_post);
        walker.child("hook_sae_output", &self.hook_sae_output);
        walker.child("hook_sae_recons", &self.hook_sae_recons);
        walker.child("hook_sae_error", &self.hook_sae_error);
    }

    fn visit_hooks_mut(&mut self, walker: &mut WalkerMut<'_>) {
        walker.child("hook_sae_input", &mut self.hook_sae_input);
        walker.child("hook_sae_acts_pre", &mut self.hook_sae_acts_pre);
        walker.child("hook_sae_acts_post", &mut self.hook_sae_acts_post);
        walker.child("hook_sae_output", &mut self.hook_sae_output);
        walker.child("hook_sae_recons", &mut self.hook_sae_recons);
        walker.child("hook_sae_error", &mut self.hook_sae_error);
    }
}

impl Module for Sae {
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        Ok(Sae::forward(self, xs)?)
    }
}
