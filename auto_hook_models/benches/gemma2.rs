//! The hooked Gemma 2 port without hooks against candle-transformers' own Gemma 2
//! (`candle_transformers::models::gemma2`, 0.11) on the same random checkpoint: CPU, f32,
//! batch 1, 64 tokens, one forward over the whole sequence.
//!
//! The checkpoint (Hugging Face names, tied embeddings, head_dim 64 with 4 query and 2
//! key/value heads of a 256-wide model, query_pre_attn_scalar 64, soft-caps 50 / 30) is
//! written to `target/gemma2_bench/checkpoint`. Its sliding window (4096) is longer than
//! the sequence: candle-transformers applies the window to every layer (and keeps one
//! key more than transformers does), so the two agree only when no window bites. Both
//! logits are checked against each other within 1e-4 outside the timed code.
//!
//! candle-transformers' `Model::forward` keeps only the last position before the final
//! norm (`[1, 1, vocab]`). Benchmark ids (group `gemma2`):
//! - `small/candle_transformers`: `Model::forward(&ids, 0)` on a fresh clone (empty KV
//!   cache), last-position logits;
//! - `small/candle_transformers_all_pos`: the same, plus the final norm, tied
//!   unembedding and logit soft-cap of the other 63 positions (the work of a
//!   full-sequence forward, which candle-transformers does not expose);
//! - `small/auto_hook_no_hooks`: `HookedTransformer::forward(&ids, None)`, every
//!   position's logits;
//! - `small/auto_hook_last_pos`: the same work as `candle_transformers`: our forward
//!   stopped at the last block's `hook_resid_post`, then the last position through the
//!   final norm, the unembedding and the soft-cap;
//! - `small/auto_hook_cache_all`: `run_with_cache(CacheOptions::all(), ..)`.
//!
//! `cargo bench -p auto_hook_models --bench gemma2` runs criterion, then paired rounds
//! (see `benches/mixtral.rs`): ratios within each round, median and 95% CI, written to
//! `target/criterion/gemma2/paired.json`.

mod moe_ssm;
#[path = "../../auto_hook_dev/benches/paired/mod.rs"]
mod paired;

use auto_hook::prelude::*;
use auto_hook_models::HookedTransformer;
use candle_core::{DType, Device, IndexOp, Module, Result, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::gemma2::{Config, Model};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode};
use moe_ssm::{max_abs_diff, Rng};
use paired::Run;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

const VOCAB: usize = 1000;
const HIDDEN: usize = 256;
const INTERMEDIATE: usize = 688;
const LAYERS: usize = 4;
const HEADS: usize = 4;
const KV_HEADS: usize = 2;
const HEAD_DIM: usize = 64;
const SEQ: usize = 64;
const TOLERANCE: f32 = 1e-4;
const PAIRED_ROUNDS: usize = 200;

const PAIRS: [(&str, &str); 3] = [
    ("auto_hook_no_hooks", "candle_transformers_all_pos"),
    ("auto_hook_last_pos", "candle_transformers"),
    ("auto_hook_cache_all", "candle_transformers_all_pos"),
];

fn config_json() -> String {
    format!(
        r#"{{"model_type": "gemma2", "vocab_size": {VOCAB}, "hidden_size": {HIDDEN},
  "intermediate_size": {INTERMEDIATE}, "num_hidden_layers": {LAYERS},
  "num_attention_heads": {HEADS}, "num_key_value_heads": {KV_HEADS}, "head_dim": {HEAD_DIM},
  "hidden_activation": "gelu_pytorch_tanh", "max_position_embeddings": 8192,
  "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "attention_bias": false,
  "query_pre_attn_scalar": {HEAD_DIM}, "sliding_window": 4096,
  "final_logit_softcapping": 30.0, "attn_logit_softcapping": 50.0,
  "tie_word_embeddings": true}}"#
    )
}

fn write_checkpoint(dir: &Path) -> Result<PathBuf> {
    let folder = dir.join("checkpoint");
    std::fs::create_dir_all(&folder)?;
    std::fs::write(folder.join("config.json"), config_json())?;
    let mut rng = Rng(0x05EE_D000_0000_6E22);
    let std = |fan_in: usize| 1.0 / (fan_in as f32).sqrt();
    let (q, kv) = (HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM);
    let mut w: HashMap<String, Tensor> = HashMap::new();
    w.insert(
        "model.embed_tokens.weight".into(),
        rng.tensor(&[VOCAB, HIDDEN], 0.05, 0.0)?,
    );
    for i in 0..LAYERS {
        let p = format!("model.layers.{i}");
        let mut put = |name: &str, t: Tensor| w.insert(format!("{p}.{name}"), t);
        for norm in [
            "input_layernorm",
            "post_attention_layernorm",
            "pre_feedforward_layernorm",
            "post_feedforward_layernorm",
        ] {
            put(&format!("{norm}.weight"), rng.tensor(&[HIDDEN], 0.1, 0.0)?);
        }
        for (name, rows) in [("q_proj", q), ("k_proj", kv), ("v_proj", kv)] {
            put(
                &format!("self_attn.{name}.weight"),
                rng.tensor(&[rows, HIDDEN], std(HIDDEN), 0.0)?,
            );
        }
        put(
            "self_attn.o_proj.weight",
            rng.tensor(&[HIDDEN, q], std(q), 0.0)?,
        );
        for name in ["gate_proj", "up_proj"] {
            put(
                &format!("mlp.{name}.weight"),
                rng.tensor(&[INTERMEDIATE, HIDDEN], std(HIDDEN), 0.0)?,
            );
        }
        put(
            "mlp.down_proj.weight",
            rng.tensor(&[HIDDEN, INTERMEDIATE], std(INTERMEDIATE), 0.0)?,
        );
    }
    w.insert("model.norm.weight".into(), rng.tensor(&[HIDDEN], 0.1, 0.0)?);
    candle_core::safetensors::save(&w, folder.join("model.safetensors"))?;
    Ok(folder)
}

/// The last position's logits: our forward stopped after the last block, then the final
/// norm, the unembedding and the soft-cap on that position only (candle-transformers' work).
fn last_position_logits(model: &HookedTransformer, ids: &Tensor) -> Result<Tensor> {
    let last_block = format!("blocks.{}.hook_resid_post", LAYERS - 1);
    let cache = model
        .run_with_cache_stop_at(last_block.as_str(), |m| m.forward(ids, None))
        .map_err(candle_core::Error::wrap)?;
    let resid = cache.get(&last_block).map_err(candle_core::Error::wrap)?;
    let last = resid.i((.., SEQ - 1..SEQ, ..))?;
    let logits = model.unembed().forward(&model.ln_final().forward(&last)?)?;
    (logits / 30.0)?.tanh()? * 30.0
}

fn gemma2(c: &mut Criterion) {
    let dir = moe_ssm::target_dir().join("gemma2_bench");
    let folder = write_checkpoint(&dir).expect("write checkpoint");
    let device = Device::Cpu;
    let model = auto_hook_models::load(&folder, DType::F32, &device).expect("auto_hook load");
    let config: Config = serde_json::from_str(&config_json()).expect("candle config");
    let files = [folder.join("model.safetensors")];
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&files, DType::F32, &device) }
        .expect("var builder");
    let fresh = Model::new(false, &config, vb).expect("candle-transformers load");
    let rest_hidden = Rng(0xBEEF)
        .tensor(&[1, SEQ - 1, HIDDEN], 1.0, 0.0)
        .expect("hidden");
    let ids = Tensor::from_vec(Rng(0x70CE).ids(SEQ, VOCAB), (1, SEQ), &device).expect("ids");

    let ours = model.forward(&ids, None).expect("auto_hook forward");
    let mut worst = 0f32;
    for k in [16, 32, SEQ] {
        let theirs = fresh
            .clone()
            .forward(&ids.narrow(1, 0, k).unwrap(), 0)
            .unwrap();
        worst = worst.max(max_abs_diff(&ours.i((.., k - 1..k, ..)).unwrap(), &theirs).unwrap());
    }
    let last = last_position_logits(&model, &ids).unwrap();
    worst = worst.max(max_abs_diff(&ours.i((.., SEQ - 1..SEQ, ..)).unwrap(), &last).unwrap());
    assert!(worst <= TOLERANCE, "logits differ by {worst}");
    eprintln!("gemma2: both libraries agree within {worst:.2e}");

    let (norm, unembed) = (model.ln_final(), model.unembed());
    let variants: [(&str, Run); 5] = [
        (
            "candle_transformers",
            Box::new(|| drop(black_box(fresh.clone().forward(&ids, 0).unwrap()))),
        ),
        (
            "candle_transformers_all_pos",
            Box::new(|| {
                let out = fresh.clone().forward(&ids, 0).unwrap();
                let rest = unembed
                    .forward(&norm.forward(&rest_hidden).unwrap())
                    .unwrap();
                let rest = ((rest / 30.0).unwrap().tanh().unwrap() * 30.0).unwrap();
                drop(black_box((out, rest)))
            }),
        ),
        (
            "auto_hook_no_hooks",
            Box::new(|| drop(black_box(model.forward(&ids, None).unwrap()))),
        ),
        (
            "auto_hook_last_pos",
            Box::new(|| drop(black_box(last_position_logits(&model, &ids).unwrap()))),
        ),
        (
            "auto_hook_cache_all",
            Box::new(|| {
                let out = model
                    .run_with_cache(CacheOptions::all(), |m| m.forward(&ids, None))
                    .unwrap();
                drop(black_box(out))
            }),
        ),
    ];
    let group_name = moe_ssm::group_name("gemma2");
    let mut group = c.benchmark_group(&group_name);
    group
        .sample_size(30)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(6));
    for (variant, run) in &variants {
        group.bench_function(BenchmarkId::new("small", *variant), |b| b.iter(run));
    }
    group.finish();
    if paired::enabled() {
        moe_ssm::paired_report(&group_name, &variants, &PAIRS, PAIRED_ROUNDS);
    }
}

criterion_group!(benches, gemma2);
criterion_main!(benches);
