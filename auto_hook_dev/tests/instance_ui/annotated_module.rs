use auto_hook::prelude::*;
use candle_core::{Module, Result, Tensor};

#[auto_hook]
struct Mlp {
    fc1: candle_nn::Linear,
}

#[auto_hook]
impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc1.forward(x)
    }
}

fn wrap(model: Mlp) {
    // Both kinds apply: the model is a `Module` and already hooked.
    let _wrapped = auto_hook(model);
}

fn main() {}
