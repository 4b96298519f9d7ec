//! Compares an SAE folder with activations recorded in Python (SAELens).
//!
//! cargo run --release -p auto_hook_sae --example compare_sae -- FOLDER REFERENCE.safetensors [--tol 1e-5]
//!     [--hook NAME | --transcoder LAYER]
//!
//! FOLDER is a SAELens folder (`cfg.json` + `sae_weights.safetensors`) or a Gemma Scope
//! folder (`params.npz`, no `cfg.json`), loaded as SAELens's Gemma Scope loader does with
//! the hook from `--hook` (default `blocks.0.hook_resid_post`; it matters only for
//! `hook_embed`, whose weights SAELens rescales) or as a transcoder of `--transcoder LAYER`.
//!
//! REFERENCE holds `x` `[n, d_in]` and any of `hidden_pre` (pre-activation, as
//! `hook_sae_acts_pre` sees it), `feature_acts` (SAELens `encode(x)`) and `sae_out`
//! (`decode(encode(x))`); see `scripts/make_sae_fixtures.py`. Prints `KEY max_abs_diff`
//! per key, then `max_abs_diff=X keys=N`; exits non-zero when a key exceeds the
//! tolerance or when no key was compared.

use auto_hook_sae::{compare_sae_with_reference, Sae, GEMMA_SCOPE_FILENAME};
use candle_core::Device;
use std::path::Path;
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
    let mut tol = 1e-5f32;
    let mut hook = "blocks.0.hook_resid_post".to_owned();
    let mut transcoder: Option<usize> = None;
    let mut paths = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--tol" => tol = it.next().ok_or("--tol needs a value")?.parse()?,
            "--hook" => hook = it.next().ok_or("--hook needs a name")?.clone(),
            "--transcoder" => {
                transcoder = Some(it.next().ok_or("--transcoder needs a layer")?.parse()?)
            }
            other => paths.push(other),
        }
    }
    let [folder, reference] = paths[..] else {
        return Err(
            "usage: compare_sae FOLDER REFERENCE.safetensors [--tol 1e-5] \
                    [--hook NAME | --transcoder LAYER]"
                .into(),
        );
    };
    let dir = Path::new(folder);
    let gemma_scope = !dir.join("cfg.json").exists() && dir.join(GEMMA_SCOPE_FILENAME).exists();
    let sae = match (gemma_scope, transcoder) {
        (true, Some(layer)) => Sae::load_gemma_scope_transcoder(dir, layer, &Device::Cpu)?,
        (true, None) => Sae::load_gemma_scope(dir, &hook, &Device::Cpu)?,
        (false, _) => Sae::load(dir, &Device::Cpu)?,
    };
    let reference = candle_core::safetensors::load(reference, &Device::Cpu)?;
    let diffs = compare_sae_with_reference(&sae, &reference)?;
    let mut ok = true;
    let mut worst = 0f32;
    for (key, diff) in &diffs {
        let over = diff.is_nan() || *diff > tol;
        ok &= !over;
        worst = worst.max(*diff);
        println!(
            "{key} {diff:e}{}",
            if over { "  <-- over tolerance" } else { "" }
        );
    }
    println!("max_abs_diff={worst:e} keys={}", diffs.len());
    if diffs.is_empty() {
        eprintln!("no reference key (hidden_pre, feature_acts, sae_out) to compare");
        return Ok(false);
    }
    Ok(ok)
}
