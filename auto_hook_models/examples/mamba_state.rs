//! Mamba's SSM state: read the state `h` of every position through `blocks.{l}.hook_h`,
//! then reset it at one position and see that only later positions change.
//!
//! cargo run --release -p auto_hook_models --example mamba_state [-- MAMBA_FOLDER]
//!
//! By default the tiny random Mamba test fixture: its tokens mean nothing; what it shows
//! is the mechanism.

use auto_hook::prelude::*;
use auto_hook_models::{at_position, load_mamba, Eos, GenerateOptions};
use candle_core::{DType, Device, IndexOp, Tensor, D};
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mamba");
    let folder = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or(fixture);
    let model = load_mamba(&folder, DType::F32, &Device::Cpu)?;
    let prompt: Vec<u32> = vec![5, 17, 3, 42, 9, 23, 5, 17];
    let ids = Tensor::new(prompt.as_slice(), &Device::Cpu)?.unsqueeze(0)?;
    let layer = model.config().n_layers - 1;
    let point = format!("blocks.{layer}.hook_h");

    // hook_h fires once per position with h_t [batch, d_inner, d_state].
    let mut norms = Vec::new();
    let read = Hooks::new().add(&point, |h, _| {
        norms.push(h.sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()?);
        Ok::<(), candle_core::Error>(())
    });
    let clean = model.run_with_hooks(read, |m| m.forward(&ids, None))?;
    let shown: Vec<String> = norms.iter().map(|n| format!("{n:.2}")).collect();
    println!(
        "{point}: |h_t| at positions 0..{}: {}",
        prompt.len(),
        shown.join(" ")
    );

    // Zero the state h_3: positions 0..=2 are unchanged; y_3 reads the zeroed state and
    // positions 4.. continue from it.
    let edit = Hooks::new().add(&point, at_position(3, |h| h.zeros_like()));
    let edited = model.run_with_hooks(edit, |m| m.forward(&ids, None))?;
    let shift = (edited - &clean)?
        .abs()?
        .max(D::Minus1)?
        .i(0)?
        .to_vec1::<f32>()?;
    let shown: Vec<String> = shift.iter().map(|s| format!("{s:.3}")).collect();
    println!(
        "h_3 zeroed: max |logit change| per position: {}",
        shown.join(" ")
    );

    // Generation with the conv + SSM cache; the hook fires at every step.
    let mut steps = 0;
    let count = Hooks::new().add(&point, |_, _| steps += 1);
    let opts = GenerateOptions {
        max_new_tokens: 6,
        eos: Eos::Never,
        ..Default::default()
    };
    let out = model.run_with_hooks(count, |m| m.generate(&ids, None, &opts))?;
    println!(
        "generated {:?}; {point} fired {steps} times ({} prompt positions + 5 cached steps)",
        &out.i(0)?.to_vec1::<u32>()?[prompt.len()..],
        prompt.len()
    );
    Ok(())
}
