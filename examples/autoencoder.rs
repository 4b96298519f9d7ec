//! The original library's sparse-autoencoder example in Rust: `Tensor` fields are
//! parameters, and each arithmetic use of one passes through its own hook point.
//!
//! cargo run --example autoencoder

use auto_hook::prelude::*;
use candle_core::{Device, Module, Result, Tensor};

#[auto_hook]
struct AutoEncoder {
    #[auto_hook(rename = "W_enc")]
    w_enc: Tensor,
    #[auto_hook(rename = "W_dec")]
    w_dec: Tensor,
    b_enc: Tensor,
    b_dec: Tensor,
}

#[auto_hook]
impl AutoEncoder {
    fn new(d_in: usize, d_hidden: usize, device: &Device) -> Result<Self> {
        Ok(Self {
            w_enc: Tensor::randn(0f32, 0.1, (d_in, d_hidden), device)?,
            w_dec: Tensor::randn(0f32, 0.1, (d_hidden, d_in), device)?,
            b_enc: Tensor::zeros(d_hidden, candle_core::DType::F32, device)?,
            b_dec: Tensor::zeros(d_in, candle_core::DType::F32, device)?,
        })
    }
}

#[auto_hook]
impl Module for AutoEncoder {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x_cent = x.broadcast_sub(&self.b_dec)?;
        let acts = x_cent
            .matmul(&self.w_enc)?
            .broadcast_add(&self.b_enc)?
            .relu()?;
        acts.matmul(&self.w_dec)?.broadcast_add(&self.b_dec)
    }
}

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let sae = AutoEncoder::new(10, 40, &Device::Cpu)?;
    println!("hook names: {:?}", AutoEncoder::hook_names());
    let x = Tensor::randn(0f32, 1.0, (2, 10), &Device::Cpu)?;
    let hooks = Hooks::new().add("**", |act, hook| {
        println!("hello from hook: {} {:?}", hook.name(), act.dims())
    });
    let recon = sae.run_with_hooks(hooks, |m| m.forward(&x))?;
    println!("reconstruction shape: {:?}", recon.dims());
    Ok(())
}
