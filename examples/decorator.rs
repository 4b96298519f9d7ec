//! The original library's decorator example in Rust: a model with one Linear, annotated
//! with #[auto_hook]; a hook on every point prints its name.
//!
//! cargo run --example decorator

use auto_hook::prelude::*;
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

#[auto_hook]
struct MyModule {
    fc1: Linear,
}

#[auto_hook]
impl MyModule {
    fn new(vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            fc1: candle_nn::linear(10, 10, vb.pp("fc1"))?,
        })
    }
}

#[auto_hook]
impl Module for MyModule {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc1.forward(x)
    }
}

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let model = MyModule::new(VarBuilder::zeros(DType::F32, &Device::Cpu))?;
    println!("hook names: {:?}", MyModule::hook_names());
    let x = Tensor::zeros((1, 10), DType::F32, &Device::Cpu)?;
    let hooks = Hooks::new().add("**", |_, hook| println!("hello from hook: {}", hook.name()));
    let out = model.run_with_hooks(hooks, |m| m.forward(&x))?;
    println!("output shape: {:?}", out.dims());
    Ok(())
}
