use auto_hook::prelude::*;

#[auto_hook]
struct Model(candle_nn::Linear);

fn main() {}
