use auto_hook::prelude::*;

#[auto_hook]
enum Model {
    A(candle_nn::Linear),
}

fn main() {}
