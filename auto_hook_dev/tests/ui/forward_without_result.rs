use auto_hook::prelude::*;
use candle_core::Tensor;

#[auto_hook]
struct Model {
    fc1: candle_nn::Linear,
}

#[auto_hook]
impl Model {
    fn forward(&self, x: &Tensor) {
        let _ = x;
    }

    #[auto_hook(forward)]
    fn run(x: &Tensor) -> candle_core::Result<Tensor> {
        Ok(x.clone())
    }
}

fn main() {}
