use auto_hook::prelude::*;

#[auto_hook(data, module)]
struct Both {
    fc1: candle_nn::Linear,
}

struct Plain;

#[auto_hook(data)]
impl Plain {
    fn new() -> Self {
        Plain
    }
}

fn main() {}
