use auto_hook::prelude::*;

struct Tokenizer;

fn main() {
    let _wrapped = auto_hook(Tokenizer);
}
