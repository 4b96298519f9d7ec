use auto_hook::prelude::*;
use candle_core::Tensor;

#[auto_hook]
struct Model {
    fc1: candle_nn::Linear,
}

#[auto_hook]
impl Model {
    #[auto_hook(forward, skip)]
    fn run(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        Ok(x.clone())
    }

    async fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        Ok(x.clone())
    }
}

fn main() {}
