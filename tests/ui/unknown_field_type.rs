use auto_hook::prelude::*;

struct Tokenizer;

#[auto_hook]
struct Model {
    fc1: candle_nn::Linear,
    tokenizer: Tokenizer,
}

fn main() {}
