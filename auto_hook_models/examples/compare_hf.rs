//! Compares a checkpoint with activations recorded in Python (Hugging Face transformers).
//!
//! cargo run --release -p auto_hook_models --example compare_hf -- FOLDER REFERENCE.safetensors [--tol 1e-4]
//!
//! REFERENCE holds `input_ids` (int64 `[batch, seq]`) and any of `logits`,
//! `hidden_states.{i}` and PyTorch module paths (`transformer.h.1.attn`,
//! `model.layers.0.mlp`, ...) with that module's output (see `scripts/make_fixtures.py`).
//! Prints `KEY max_abs_diff` per mapped key, then `max_abs_diff=X keys=N`; exits non-zero
//! when a key exceeds the tolerance or when no key could be mapped.

use candle_core::{DType, Device};
use std::process::ExitCode;

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<bool, Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut tol = 1e-4f32;
    let mut paths = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--tol" => tol = it.next().ok_or("--tol needs a value")?.parse()?,
            other => paths.push(other),
        }
    }
    let [folder, reference] = paths[..] else {
        return Err("usage: compare_hf FOLDER REFERENCE.safetensors [--tol 1e-4]".into());
    };
    let reference = candle_core::safetensors::load(reference, &Device::Cpu)?;
    let config = std::fs::read_to_string(std::path::Path::new(folder).join("config.json"))?;
    let config: serde_json::Value = serde_json::from_str(&config)?;
    let comparison = if config["model_type"] == "mamba" {
        let model = auto_hook_models::load_mamba(folder, DType::F32, &Device::Cpu)?;
        auto_hook_models::compare_with_reference(&model, &reference)?
    } else {
        let model = auto_hook_models::load(folder, DType::F32, &Device::Cpu)?;
        auto_hook_models::compare_with_reference(&model, &reference)?
    };
    for key in &comparison.skipped {
        eprintln!("{key} skipped (no hook point maps to it)");
    }
    let mut ok = true;
    for (key, _, diff) in &comparison.diffs {
        let flag = if *diff > tol {
            "  <-- over tolerance"
        } else {
            ""
        };
        ok &= *diff <= tol;
        println!("{key} {diff:e}{flag}");
    }
    let n = comparison.diffs.len();
    println!("max_abs_diff={:e} keys={n}", comparison.max_abs_diff());
    if n == 0 {
        eprintln!("no reference key maps to a hook point");
        return Ok(false);
    }
    Ok(ok)
}
