//! Steering by activation addition (Turner et al. 2023), with a contrastive vector: the
//! mean residual stream at the last token of prompts about one thing minus the same
//! over prompts about another, added at one layer to every position while the model
//! generates greedily. Prints steered and unsteered continuations side by side.
//!
//! cargo run --release -p auto_hook_analysis --example steering [MODEL]

mod common;

use auto_hook::prelude::*;
use auto_hook_analysis::{steer, steering_vector, Point};
use auto_hook_models::{Decoding, GenerateOptions};
use common::Res;

const POSITIVE: [&str; 4] = [
    "I love this. It is wonderful",
    "What a happy, joyful day",
    "This is great, I am so pleased",
    "Everything is beautiful and kind",
];
const NEGATIVE: [&str; 4] = [
    "I hate this. It is terrible",
    "What a sad, miserable day",
    "This is awful, I am so angry",
    "Everything is ugly and cruel",
];
const PROMPTS: [&str; 3] = [
    "I think that the movie was",
    "My neighbour is",
    "Today the weather",
];

fn main() -> Res<()> {
    let (model, _) = common::load()?;
    let tok = common::text(&model)?;
    let started = std::time::Instant::now();
    let layer = model.config().n_layers / 3;
    let point = Point::ResidPre(layer);
    let ids = |texts: &[&str]| -> Res<Vec<_>> {
        texts
            .iter()
            .map(|t| common::ids(&common::encode(tok, t)?))
            .collect()
    };
    let vector = steering_vector(&model, point, &ids(&POSITIVE)?, &ids(&NEGATIVE)?)?;
    let norm = vector.sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()?;
    println!("steering vector at blocks.{layer}.hook_resid_pre: love - hate, norm {norm:.2}");
    let opts = GenerateOptions {
        max_new_tokens: 20,
        sampling: Decoding::Greedy,
        ..GenerateOptions::default()
    };
    let mut changed = 0;
    for prompt in PROMPTS {
        let prompt_ids = common::ids(&common::encode(tok, prompt)?)?;
        let n = prompt_ids.dim(1)?;
        let continuation = |hooks: Hooks<'static>| -> Res<String> {
            let out = model.run_with_hooks(hooks, |m| m.generate(&prompt_ids, None, &opts))?;
            let new: Vec<u32> = out.get(0)?.narrow(0, n, out.dim(1)? - n)?.to_vec1()?;
            Ok(tok.decode(&new)?)
        };
        let plain = continuation(Hooks::new().may_not_fire())?;
        println!("{prompt:?}");
        println!("  unsteered:   {plain:?}");
        for coeff in [4.0, -4.0] {
            let steered = continuation(steer(&model, point, &vector, coeff)?)?;
            changed += usize::from(steered != plain);
            println!("  {coeff:+} x vector: {steered:?}");
        }
    }
    println!(
        "{changed} of {} steered continuations differ from the unsteered one; {:.1} s",
        2 * PROMPTS.len(),
        started.elapsed().as_secs_f32()
    );
    Ok(())
}
