//! Generates, for each model of `MODELS`, candle-transformers' file two ways: a verbatim
//! copy with `#[auto_hook]` on every struct and impl (`verbatim::<model>`), and
//! `auto_hook_build`'s output (`built::<model>`). Nothing of candle-transformers is
//! committed: both come from the registry source that `cargo metadata` points at.

#[path = "src/user_edits.rs"]
#[allow(dead_code)]
mod user_edits;

use std::error::Error;
use std::fmt::Write as _;
use std::path::PathBuf;

/// The candle-transformers 0.11 model files (`src/models/<name>.rs`) under test. Adding a
/// model: its name here, and a test file `tests/<name>.rs`.
const MODELS: &[&str] = &[
    "qwen2", "llama", "phi3", "gemma2", "mistral", "mixtral", "mamba",
];

/// More model files, through `auto_hook_build` only (`built::<model>`): the runtime
/// coverage tests (`tests/coverage.rs`) run them against candle-transformers' own.
const BUILT_ONLY: &[&str] = &[
    "starcoder2",
    "olmo",
    "qwen2_moe",
    "distilbert",
    "phi",
    "qwen3",
    "gemma",
    "falcon",
    "bert",
    "t5",
    "quantized_llama",
    "stable_lm",
    "gemma3",
    "jina_bert",
    "modernbert",
    "vit",
    "segformer",
    "rwkv_v6",
    "granite",
    "deepseek2",
    "xlm_roberta",
    "dinov2",
    "convnext",
    "resnet",
    // directory modules: `mod.rs` with its submodules, hooked whole
    "clip/mod",
    "whisper/mod",
];

fn main() -> Result<(), Box<dyn Error>> {
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let manifest = std::env::var("CARGO_MANIFEST_DIR")?;
    let dep = auto_hook_build::Dependency::locate(&manifest, "candle-transformers")?;
    println!("cargo:rerun-if-changed=src/user_edits.rs");
    let mut builder = auto_hook_build::Builder::new("candle-transformers");
    let mut index = String::from(
        "/// Verbatim copies with `#[auto_hook]` on every struct and impl.\n\
         #[allow(dead_code, unused, unexpected_cfgs, clippy::all, rustdoc::all)]\npub mod verbatim {\n",
    );
    for model in MODELS {
        let file = format!("models/{model}.rs");
        let src_path = dep.src_dir.join(&file);
        println!("cargo:rerun-if-changed={}", src_path.display());
        let src = std::fs::read_to_string(&src_path)?;
        let copy = user_edits::fix_paths(&src, "candle_transformers", "models");
        let copy = user_edits::annotate(&user_edits::strip_inner(&copy), "#[auto_hook::auto_hook]");
        std::fs::create_dir_all(out.join("verbatim"))?;
        std::fs::write(out.join("verbatim").join(format!("{model}.rs")), copy)?;
        writeln!(
            index,
            "    pub mod {model} {{ include!(concat!(env!(\"OUT_DIR\"), \"/verbatim/{model}.rs\")); }}"
        )?;
        builder = builder.module(&file);
    }
    for model in BUILT_ONLY {
        builder = builder.module(&format!("models/{model}.rs"));
    }
    index.push_str("}\n\n/// `auto_hook_build`'s output.\npub mod built {\n");
    for model in MODELS.iter().chain(BUILT_ONLY) {
        writeln!(
            index,
            "    include!(concat!(env!(\"OUT_DIR\"), \"/candle-transformers/models/{model}.rs\"));"
        )?;
    }
    index.push_str("}\n");
    builder.generate()?;
    std::fs::write(out.join("models.rs"), index)?;
    Ok(())
}
