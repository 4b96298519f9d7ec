use auto_hook::prelude::*;
use candle_core::{Module, Result, Tensor};

struct Plain {
    fc1: candle_nn::Linear,
}

#[auto_hook]
impl Module for Plain {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc1.forward(x)
    }
}

fn main() {}
