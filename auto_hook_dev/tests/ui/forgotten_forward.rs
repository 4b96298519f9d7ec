use auto_hook::prelude::*;
use candle_core::{Module, Result, Tensor};
use candle_nn::Linear;

#[auto_hook]
struct Mlp {
    fc1: Linear,
    scale: Tensor,
}

// The attribute is missing here.
impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc1.forward(x)?.broadcast_mul(&self.scale)
    }
}

fn main() {}
