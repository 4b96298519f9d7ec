//! Compares a checkpoint with activations recorded in Python (Hugging Face transformers).
//!
//! cargo run --release -p auto_hook_models --example compare_hf -- MODEL REFERENCE.safetensors [--tol 1e-4]
//!
//! MODEL is a Hugging Face folder or a `.gguf` file (loaded dequantised to f32; make the
//! reference with transformers' `from_pretrained(dir, gguf_file=...)`, as
//! `scripts/gguf_reference.py` does).
//! REFERENCE holds `input_ids` (int64 `[batch, seq]`) and any of `logits`,
//! `hidden_states.{i}` and PyTorch module paths (`transformer.h.1.attn`,
//! `model.layers.0.mlp`, ...) with that module's output (see `scripts/make_fixtures.py`).
//! Prints `KEY max_abs_diff rel` per mapped key (`rel` = max_abs_diff / max |reference|),
//! then `max_abs_diff=X max_rel_diff=Y keys=N`; exits non-zero when a key exceeds the
//! tolerance or when no key could be mapped. `--rel 1e-5` judges keys by `rel` instead:
//! for real models whose residual stream reaches thousands (SmolLM2's first position
//! reaches 7900, where one f32 step is 5e-4), an absolute bound cannot hold for any two
//! implementations that add in another order.

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
    let mut rel_tol: Option<f32> = None;
    let mut paths = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--tol" => tol = it.next().ok_or("--tol needs a value")?.parse()?,
            "--rel" => rel_tol = Some(it.next().ok_or("--rel needs a value")?.parse()?),
            other => paths.push(other),
        }
    }
    let [folder, reference] = paths[..] else {
        return Err(
            "usage: compare_hf MODEL REFERENCE.safetensors [--tol 1e-4 | --rel 1e-5]".into(),
        );
    };
    let reference = candle_core::safetensors::load(reference, &Device::Cpu)?;
    let config_path = std::path::Path::new(folder).join("config.json");
    let is_mamba = match std::fs::read_to_string(&config_path) {
        Ok(text) => serde_json::from_str::<serde_json::Value>(&text)?["model_type"] == "mamba",
        Err(_) => false, // a GGUF file
    };
    let comparison = if is_mamba {
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
    let mut max_rel = 0f32;
    for (key, _, diff) in &comparison.diffs {
        let scale = reference[key]
            .to_dtype(DType::F32)?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        let rel = diff / scale.max(f32::MIN_POSITIVE);
        max_rel = max_rel.max(rel);
        let over = match rel_tol {
            Some(r) => rel > r,
            None => *diff > tol,
        };
        ok &= !over;
        let flag = if over { "  <-- over tolerance" } else { "" };
        println!("{key} {diff:e} {rel:.1e}{flag}");
    }
    let n = comparison.diffs.len();
    println!(
        "max_abs_diff={:e} max_rel_diff={max_rel:e} keys={n}",
        comparison.max_abs_diff()
    );
    if n == 0 {
        eprintln!("no reference key maps to a hook point");
        return Ok(false);
    }
    Ok(ok)
}
