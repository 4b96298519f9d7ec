//! Shared by the model tests: the input, and the two models on one set of weights.

use candle::{DType, Device, Result, Tensor};
use candle_nn::{VarBuilder, VarMap};

/// Two sequences of five token ids below 64.
pub fn tokens(dev: &Device) -> Result<Tensor> {
    Tensor::new(&[[1u32, 7, 3, 60, 12], [5, 5, 41, 0, 63]], dev)
}

/// Builds the hooked model once to create its variables, fills them with
/// [`auto_hook_ct::weights::fill`], then builds the hooked model and candle-transformers'
/// model from the same map, so both compute the same function.
pub fn build_pair<H, R>(
    hooked: impl Fn(VarBuilder) -> Result<H>,
    reference: impl Fn(VarBuilder) -> Result<R>,
) -> Result<(H, R)> {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    hooked(vb.clone())?;
    auto_hook_ct::weights::fill(&varmap, 42)?;
    Ok((hooked(vb.clone())?, reference(vb)?))
}
