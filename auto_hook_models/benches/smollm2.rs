//! SmolLM2-135M-Instruct (the Q4_1 GGUF of `scripts/fetch_smollm2.sh`) through the hooked
//! port against candle-transformers 0.11 on the same file: CPU, batch 1, 64 tokens, one
//! forward over the whole sequence, paired rounds (every variant once per round in a
//! random order; ratios within a round; median and 95% CI).
//!
//! ```sh
//! AUTO_HOOK_SMOLLM2=$(scripts/fetch_smollm2.sh | tail -1) cargo bench -p auto_hook_models --bench smollm2
//! ```
//!
//! Without `AUTO_HOOK_SMOLLM2` it prints how to fetch the file and exits (CI builds it only).
//! `RAYON_NUM_THREADS=1` gives single-thread numbers, `SMOLLM2_ONLY=f32` (or
//! `quantized`) times one half of the variants. Variants:
//! - `quantized/candle_transformers`: `quantized_llama::ModelWeights::forward(&ids, 0)`,
//!   the logits of the last position (it unembeds that position only);
//! - `quantized/auto_hook_last_pos`: our quantized model, the same work:
//!   `run_with_cache_stop_at("ln_final.hook_point")` (every block and the final norm on all
//!   positions), then the unembedding of the last position;
//! - `quantized/auto_hook_no_hooks` and `quantized/auto_hook_cache_all`: full-sequence
//!   logits without hooks and with every hook point cached;
//! - `f32/candle_transformers` and `f32/auto_hook_last_pos`: the same pair on the weights
//!   dequantised to f32 (`auto_hook_models::gguf_tensors` feeds `llama::Llama::load`).
//!
//! Before timing, it checks that each pair gives the same last-position logits (within
//! 1e-3 for f32; the quantized pair within 5% of the largest logit: both round the
//! activations to 8 bits before each quantized matmul, and the last bits of their norms
//! differ, which moves some roundings; 2.5% measured).

#[path = "../../auto_hook_dev/benches/paired/mod.rs"]
mod paired;

use auto_hook::prelude::*;
use auto_hook_models::HookedTransformer;
use candle_core::quantized::gguf_file;
use candle_core::{DType, Device, IndexOp, Module, Result, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::llama::{Cache, Llama, LlamaConfig};
use candle_transformers::models::quantized_llama::ModelWeights;
use paired::Run;
use std::cell::RefCell;
use std::path::Path;

const SEQ: usize = 64;
/// Paired rounds (`SMOLLM2_ROUNDS` overrides).
const ROUNDS: usize = 30;

fn last_pos(model: &HookedTransformer, ids: &Tensor) -> Result<Tensor> {
    let cache = model
        .run_with_cache_stop_at("ln_final.hook_point", |m| m.forward(ids, None))
        .map_err(candle_core::Error::wrap)?;
    let normed = cache
        .get("ln_final.hook_point")
        .map_err(candle_core::Error::wrap)?;
    model.unembed().forward(&normed.i((.., SEQ - 1, ..))?)
}

fn full(model: &HookedTransformer, ids: &Tensor) -> Result<Tensor> {
    model.forward(ids, None)
}

fn cache_all(model: &HookedTransformer, ids: &Tensor) -> Result<Tensor> {
    let (out, _cache) = model
        .run_with_cache(CacheOptions::all(), |m| m.forward(ids, None))
        .map_err(candle_core::Error::wrap)?;
    Ok(out)
}

fn max_rel(a: &Tensor, b: &Tensor) -> Result<f32> {
    let scale = b.abs()?.max_all()?.to_scalar::<f32>()?;
    Ok((a - b)?.abs()?.max_all()?.to_scalar::<f32>()? / scale)
}

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let Ok(path) = std::env::var("AUTO_HOOK_SMOLLM2") else {
        eprintln!(
            "smollm2 bench skipped: set AUTO_HOOK_SMOLLM2=$(scripts/fetch_smollm2.sh | tail -1)"
        );
        return Ok(());
    };
    if !paired::enabled() {
        eprintln!("smollm2 bench: run it with `cargo bench` (no filter) to time it");
        return Ok(());
    }
    let dev = Device::Cpu;
    let ours_q = auto_hook_models::load_quantized(&path, &dev)?;
    let ours_f = auto_hook_models::load(&path, DType::F32, &dev)?;
    let cfg = ours_f.config().clone();
    let text = "The capital of France is Paris, and the capital of Italy is Rome. ".repeat(8);
    let ids = ours_q.to_tokens(&text, &dev)?.narrow(1, 0, SEQ)?;

    let mut file = std::fs::File::open(&path)?;
    let content = gguf_file::Content::read(&mut file)?;
    let ct_q = RefCell::new(ModelWeights::from_gguf(content, &mut file, &dev)?);
    let llama_cfg = LlamaConfig {
        hidden_size: cfg.d_model,
        intermediate_size: cfg.d_mlp,
        vocab_size: cfg.vocab_size,
        num_hidden_layers: cfg.n_layers,
        num_attention_heads: cfg.n_heads,
        num_key_value_heads: Some(cfg.n_kv_heads),
        rms_norm_eps: cfg.norm_eps,
        rope_theta: match cfg.positions {
            auto_hook_models::Positions::Rotary { theta } => theta as f32,
            _ => 10_000.0,
        },
        bos_token_id: None,
        eos_token_id: None,
        rope_scaling: None,
        max_position_embeddings: cfg.context_length.unwrap_or(8192),
        tie_word_embeddings: Some(cfg.tie_embeddings),
    }
    .into_config(false);
    let tensors = auto_hook_models::gguf_tensors(&path, DType::F32, &dev)?;
    let ct_f = Llama::load(
        VarBuilder::from_tensors(tensors, DType::F32, &dev),
        &llama_cfg,
    )?;
    let ct_cache = RefCell::new(Cache::new(false, DType::F32, &llama_cfg, &dev)?);

    // Same answers before timing.
    let a = last_pos(&ours_f, &ids)?;
    let b = ct_f.forward(&ids, 0, &mut ct_cache.borrow_mut())?;
    let f32_diff = (&a - &b)?.abs()?.max_all()?.to_scalar::<f32>()?;
    assert!(f32_diff < 1e-3, "f32 logits differ by {f32_diff}");
    let a = last_pos(&ours_q, &ids)?;
    let b = ct_q.borrow_mut().forward(&ids, 0)?;
    let q_diff = max_rel(&a, &b)?;
    assert!(
        q_diff < 0.05,
        "quantized logits differ by {q_diff} of the largest"
    );
    eprintln!("checked: f32 pair max |diff| {f32_diff:.1e}; quantized pair {q_diff:.1e} of the largest logit");

    fn run<'a>(f: Box<dyn Fn() -> Result<Tensor> + 'a>) -> Run<'a> {
        Box::new(move || {
            std::hint::black_box(f().expect("forward"));
        })
    }
    let variants: Vec<(&str, Run)> = vec![
        (
            "quantized/candle_transformers",
            run(Box::new(|| ct_q.borrow_mut().forward(&ids, 0))),
        ),
        (
            "quantized/auto_hook_last_pos",
            run(Box::new(|| last_pos(&ours_q, &ids))),
        ),
        (
            "quantized/auto_hook_no_hooks",
            run(Box::new(|| full(&ours_q, &ids))),
        ),
        (
            "quantized/auto_hook_cache_all",
            run(Box::new(|| cache_all(&ours_q, &ids))),
        ),
        (
            "f32/candle_transformers",
            run(Box::new(|| {
                ct_f.forward(&ids, 0, &mut ct_cache.borrow_mut())
            })),
        ),
        (
            "f32/auto_hook_last_pos",
            run(Box::new(|| last_pos(&ours_f, &ids))),
        ),
        (
            "f32/auto_hook_no_hooks",
            run(Box::new(|| full(&ours_f, &ids))),
        ),
        (
            "f32/auto_hook_cache_all",
            run(Box::new(|| cache_all(&ours_f, &ids))),
        ),
    ];
    // `SMOLLM2_ONLY=f32` (or `quantized`) times one half.
    let only = std::env::var("SMOLLM2_ONLY").unwrap_or_default();
    let variants: Vec<(&str, Run)> = variants
        .into_iter()
        .filter(|(name, _)| name.starts_with(only.as_str()))
        .collect();
    for (_, f) in &variants {
        f(); // warm-up
    }
    let rounds = std::env::var("SMOLLM2_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(ROUNDS);
    let times = paired::time_rounds(&variants, rounds);
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all".into());
    println!("SmolLM2-135M, {SEQ} tokens, threads {threads}, {rounds} paired rounds");
    for (i, (name, _)) in variants.iter().enumerate() {
        let (lo, med, hi) = paired::median_ci(times[i].clone());
        println!(
            "  {name:<32} {:>8.1} ms  [{:.1}, {:.1}]",
            med * 1e3,
            lo * 1e3,
            hi * 1e3
        );
    }
    let index = |n: &str| variants.iter().position(|(v, _)| *v == n);
    let mut entries = Vec::new();
    for (v, b) in [
        (
            "quantized/auto_hook_last_pos",
            "quantized/candle_transformers",
        ),
        (
            "quantized/auto_hook_cache_all",
            "quantized/auto_hook_no_hooks",
        ),
        ("f32/auto_hook_last_pos", "f32/candle_transformers"),
        ("f32/auto_hook_cache_all", "f32/auto_hook_no_hooks"),
    ] {
        let (Some(v_at), Some(b_at)) = (index(v), index(b)) else {
            continue;
        };
        let (lo, med, hi) = paired::ratio(&times, v_at, b_at);
        println!("  {v} / {b}: {med:.3}x (95% CI {lo:.3}-{hi:.3})");
        entries.push(format!(
            "\"{v} / {b}\": {{\"median\": {med}, \"low\": {lo}, \"high\": {hi}}}"
        ));
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = paired::target_dir(manifest.parent().unwrap_or(manifest))
        .join("criterion")
        .join(format!("smollm2_threads{threads}"));
    paired::write_json(&dir, &entries);
    Ok(())
}
