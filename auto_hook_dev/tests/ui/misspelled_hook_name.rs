use auto_hook::prelude::*;

#[auto_hook]
struct Model {
    fc1: candle_nn::Linear,
}

fn main() {
    let _ = hook_name!(Model, "fc1.hok_point");
}
