//! Steering generation by activation addition: add a vector to the residual stream at
//! `blocks.{i}.hook_resid_post` at every generation step.
//!
//! cargo run --release -p auto_hook_models --example steer [-- MODEL_FOLDER]
//!
//! MODEL_FOLDER is any GPT-2 / Llama / Mistral / Qwen2 checkpoint folder; by default the
//! tiny random GPT-2 test fixture, whose tokens mean nothing: what it shows is the
//! mechanism (the hook runs at every generation step and moves the output).

use auto_hook::prelude::*;
use auto_hook_models::{load, Eos, GenerateOptions};
use candle_core::{DType, Device, IndexOp, Tensor};
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gpt2");
    let folder = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or(fixture);
    let model = load(&folder, DType::F32, &Device::Cpu)?;
    let layer = model.config().n_layers - 1;
    let point = format!("blocks.{layer}.hook_resid_post");

    let prompt: Vec<u32> = vec![5, 17, 3, 42, 9, 23];
    let ids = Tensor::new(prompt.as_slice(), &Device::Cpu)?.unsqueeze(0)?;
    // A fixed number of tokens: no end token.
    let opts = GenerateOptions {
        max_new_tokens: 8,
        eos: Eos::Never,
        ..GenerateOptions::default()
    };
    let plain = model.generate(&ids, None, &opts)?;
    println!("model     {}", folder.display());
    println!("prompt    {prompt:?}");
    println!(
        "generated {:?}",
        &plain.i(0)?.to_vec1::<u32>()?[prompt.len()..]
    );

    // Steering vector: the residual stream at `point` after the last prompt token when
    // that token is `a`, minus when it is `b` (activation addition).
    let resid = |token: u32| -> Result<Tensor, Box<dyn std::error::Error>> {
        let mut p = prompt.clone();
        *p.last_mut().expect("non-empty") = token;
        let ids = Tensor::new(p.as_slice(), &Device::Cpu)?.unsqueeze(0)?;
        let (_, cache) = model.run_with_cache(point.as_str(), |m| m.forward(&ids, None))?;
        Ok(cache.get(&point)?.i((0, p.len() - 1))?)
    };
    let vector = (resid(1)? - resid(2)?)?;
    for coeff in [1.0, 4.0, 16.0] {
        let steer = (&vector * coeff)?;
        let mut steps = 0;
        let hooks = Hooks::new().add(point.as_str(), |x, _| {
            steps += 1;
            x.broadcast_add(&steer)
        });
        let steered = model.run_with_hooks(hooks, |m| m.generate(&ids, None, &opts))?;
        let new = &steered.i(0)?.to_vec1::<u32>()?[prompt.len()..];
        println!("steered x{coeff:<4} {new:?}  (hook ran at {steps} steps)");
    }
    Ok(())
}
