//! What the five experiments share: the model (SmolLM2-135M by default), its tokenizer,
//! and where figures go.
#![allow(dead_code)]

use auto_hook_models::HookedTransformer;
use candle_core::{DType, Device, Tensor};
use std::path::PathBuf;

pub type Res<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The model named by the first argument (a Hugging Face folder or a `.gguf` file), or
/// `$SMOLLM2_GGUF`, or the demo model.
pub fn model_path() -> PathBuf {
    std::env::args()
        .nth(1)
        .or_else(|| std::env::var("SMOLLM2_GGUF").ok())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/induction-2l"))
}

/// Loads the model (f32 on the CPU) and says what it is.
pub fn load() -> Res<(HookedTransformer, PathBuf)> {
    let path = model_path();
    let started = std::time::Instant::now();
    let model = auto_hook_models::load(&path, DType::F32, &Device::Cpu)?;
    let cfg = model.config();
    println!(
        "model {}: {} layers x {} heads (d_model {}, vocab {}), loaded in {:.1} s",
        path.display(),
        cfg.n_layers,
        cfg.n_heads,
        cfg.d_model,
        cfg.vocab_size,
        started.elapsed().as_secs_f32()
    );
    Ok((model, path))
}

/// The folder figures are written to: `$FIGURES` or `figures/` in the current folder.
pub fn figures() -> Res<PathBuf> {
    let dir = std::env::var("FIGURES").map_or_else(|_| PathBuf::from("figures"), PathBuf::from);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// `[1, pos]` token ids.
pub fn ids(tokens: &[u32]) -> Res<Tensor> {
    Ok(Tensor::new(tokens, &Device::Cpu)?.unsqueeze(0)?)
}

/// The model's tokenizer (from the GGUF file's metadata or a folder's `tokenizer.json`).
pub fn text(model: &HookedTransformer) -> Res<&auto_hook_models::Text> {
    model.text().ok_or_else(|| {
        "this model has no tokenizer: this experiment needs text (SmolLM2: pass the GGUF \
         from scripts/fetch_smollm2.sh)"
            .into()
    })
}

/// Token ids of `text` (no special tokens added).
pub fn encode(tok: &auto_hook_models::Text, text: &str) -> Res<Vec<u32>> {
    Ok(tok.encode(text, false)?)
}

/// The id of `text` when it is one token.
pub fn single_token(tok: &auto_hook_models::Text, text: &str) -> Res<Option<u32>> {
    let ids = encode(tok, text)?;
    Ok((ids.len() == 1).then(|| ids[0]))
}

/// The text of one token.
pub fn show(tok: &auto_hook_models::Text, id: u32) -> String {
    tok.decode(&[id]).unwrap_or_else(|_| format!("#{id}"))
}
