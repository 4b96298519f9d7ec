use auto_hook::prelude::*;

#[derive(HookedRoot)]
struct Root {
    fc1: candle_nn::Linear,
}

fn main() {}
