//! A hook point of your own (here around `relu`) beside the automatic ones, named by
//! its field like TransformerLens's `hook_*` points.
//!
//! cargo run --example manual_hook_point

use auto_hook::prelude::*;
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder, VarMap};

#[auto_hook]
struct Mlp {
    fc1: Linear,
    hook_relu: HookPoint,
    fc2: Linear,
}

#[auto_hook]
impl Mlp {
    fn new(vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            fc1: candle_nn::linear(8, 32, vb.pp("fc1"))?,
            hook_relu: HookPoint::new(),
            fc2: candle_nn::linear(32, 8, vb.pp("fc2"))?,
        })
    }
}

#[auto_hook]
impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.hook_relu.forward(&self.fc1.forward(x)?.relu()?)?;
        self.fc2.forward(&h)
    }
}

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let varmap = VarMap::new();
    let mlp = Mlp::new(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))?;
    println!("hook names: {:?}", mlp.hook_point_names());
    let x = Tensor::randn(0f32, 1.0, (4, 8), &Device::Cpu)?;
    let (_, cache) = mlp.run_with_cache("hook_relu", |m| m.forward(&x))?;
    let relu = cache.get("hook_relu")?;
    let active = relu
        .gt(0f32)?
        .to_dtype(DType::F32)?
        .mean_all()?
        .to_scalar::<f32>()?;
    println!(
        "hook_relu {:?}: {:.0}% of units active",
        relu.dims(),
        100.0 * active
    );
    let halved = mlp.run_with_hooks(Hooks::new().add("hook_relu", |a, _| a * 0.5), |m| {
        m.forward(&x)
    })?;
    let clean = mlp.forward(&x)?;
    let diff = (clean - halved)?.abs()?.max_all()?.to_scalar::<f32>()?;
    println!("halving hook_relu moves the output by up to {diff:.4}");
    Ok(())
}
