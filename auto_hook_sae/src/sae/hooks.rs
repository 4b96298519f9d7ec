//! Firing the SAE's own hook points with the input's leading axes (the points and their
//! names come from `derive(HookedRoot)` on [`Sae`]).

use super::{unflatten, Fire, Sae};
use crate::error::Result;
use auto_hook::HookPoint;
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

impl Module for Sae {
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        Ok(Sae::forward(self, xs)?)
    }
}
