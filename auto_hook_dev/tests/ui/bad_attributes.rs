use auto_hook::prelude::*;
use candle_nn::Linear;

// Every mistake is reported in one build.
#[auto_hook]
struct Model {
    #[auto_hook(skp)]
    fc1: Linear,
    #[auto_hook(skip, leaf)]
    fc2: Linear,
    #[auto_hook(rename = "a.b")]
    fc3: Linear,
    hook_point: Linear,
}

fn main() {}
