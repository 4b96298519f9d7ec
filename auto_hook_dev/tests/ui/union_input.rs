use auto_hook::prelude::*;

#[auto_hook]
union Model {
    a: u32,
    b: f32,
}

fn main() {}
