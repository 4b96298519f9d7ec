use auto_hook::prelude::*;

#[auto_hook(verbose)]
struct Model {
    fc1: candle_nn::Linear,
}

fn main() {}
