//! The hooked Llama port of `auto_hook_models` without hooks against candle-transformers'
//! own Llama (`candle_transformers::models::llama`, 0.11) on one small config: CPU, f32,
//! batch 1, 64 tokens, one forward over the whole sequence.
//!
//! The bench writes a random checkpoint (`config.json` + `model.safetensors`, Hugging
//! Face names; GQA with 8 query and 4 key/value heads, untied unembedding) to
//! `target/llama_bench/checkpoint`, loads it with both libraries, and checks outside the
//! timed code that both give the same logits within 1e-4 at every position (the
//! candle-transformers logits of position `k` come from the prefix of `k + 1` tokens). It
//! also writes `target/llama_bench/reference.safetensors` (the token ids and our logits),
//! which `scripts/bench_hf_llama.py` uses to check Hugging Face transformers on the same
//! checkpoint before timing it.
//!
//! candle-transformers' `Llama::forward` returns the logits of the LAST position only
//! (`[batch, vocab]`): it runs every block and the final norm on all positions, then the
//! unembedding on one. Our `forward` returns the logits of every position. Benchmark ids
//! (group `llama`):
//! - `small/candle_transformers`: `Llama::forward(&ids, 0, &mut cache)` (no KV cache; the
//!   `Cache` holds the rotary tables and the causal mask, built once, as the library
//!   intends); last-position logits `[1, vocab]`;
//! - `small/candle_transformers_all_pos`: the same, plus the unembedding of the other 63
//!   positions (a `[1, 63, d_model]` hidden state times the same `lm_head` weight): the
//!   work of a full-sequence forward, which candle-transformers does not expose;
//! - `small/auto_hook_no_hooks`: `HookedTransformer::forward(&ids, None)`: full-sequence
//!   logits `[1, 64, vocab]` (builds its causal mask and rotary angles per call);
//! - `small/auto_hook_last_pos`: the work of `candle_transformers`:
//!   `run_with_cache_stop_at("ln_final.hook_normalized", ..)` stops our forward after the
//!   final norm of all positions, then the last position times the norm weight through the
//!   same unembedding, `[1, vocab]`;
//! - `small/auto_hook_cache_all`: `run_with_cache(CacheOptions::all(), ..)`, full sequence.
//!
//! Same-work pairs: `auto_hook_no_hooks` / `candle_transformers_all_pos` (full sequence)
//! and `auto_hook_last_pos` / `candle_transformers` (last position).
//!
//! `cargo bench -p auto_hook_models --bench llama` runs criterion, then (a full `--bench`
//! run only: not with `--test`, a filter or `--profile-time`) paired rounds: one run of
//! every variant per round in a random order, each pair's ratio taken within the round;
//! median and 95% CI (order statistics) are printed and written to
//! `target/criterion/llama/paired.json`. With `RAYON_NUM_THREADS=N` set, the group is
//! `llama_threadsN` instead (criterion results and `paired.json` under
//! `target/criterion/llama_threadsN/`): `RAYON_NUM_THREADS=1` gives the single-thread
//! numbers that `scripts/bench_hf_llama.py` compares with PyTorch.

#[path = "../../auto_hook_dev/benches/paired/mod.rs"]
mod paired;

use auto_hook::prelude::*;
use auto_hook_models::HookedTransformer;
use candle_core::{DType, Device, IndexOp, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};
use candle_transformers::models::llama::{Cache, Llama, LlamaConfig};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode};
use paired::Run;
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The benchmarked config.
const VOCAB: usize = 1000;
const HIDDEN: usize = 256;
const INTERMEDIATE: usize = 688;
const LAYERS: usize = 4;
const HEADS: usize = 8;
const KV_HEADS: usize = 4;
const SEQ: usize = 64;
const MAX_POSITIONS: usize = 512;
const RMS_EPS: f64 = 1e-5;
const ROPE_THETA: f64 = 10_000.0;
/// Largest allowed absolute difference between the two libraries' logits.
const TOLERANCE: f32 = 1e-4;
/// Rounds of the paired comparison that follows criterion.
const PAIRED_ROUNDS: usize = 300;

/// `(variant, baseline)`: the ratios the paired rounds report.
const PAIRS: [(&str, &str); 5] = [
    ("auto_hook_no_hooks", "candle_transformers_all_pos"),
    ("auto_hook_cache_all", "candle_transformers_all_pos"),
    ("auto_hook_last_pos", "candle_transformers"),
    ("auto_hook_no_hooks", "candle_transformers"),
    ("candle_transformers_all_pos", "candle_transformers"),
];

/// xorshift64*: deterministic weights, so every run (and the Python script) sees the same
/// checkpoint.
struct Rng(u64);

impl Rng {
    /// Uniform in `[-1, 1)`.
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
        bits as f32 / (1u64 << 23) as f32 - 1.0
    }

    /// A tensor of `shape`, uniform with standard deviation `std`.
    fn tensor(&mut self, shape: &[usize], std: f32) -> Result<Tensor> {
        let n = shape.iter().product();
        let scale = std * 3f32.sqrt();
        let data: Vec<f32> = (0..n).map(|_| self.next() * scale).collect();
        Tensor::from_vec(data, shape, &Device::Cpu)
    }

    /// Norm weights: 1 plus a little noise, so that a norm that ignored them would show.
    fn norm(&mut self) -> Result<Tensor> {
        let data: Vec<f32> = (0..HIDDEN).map(|_| 1.0 + 0.1 * self.next()).collect();
        Tensor::from_vec(data, HIDDEN, &Device::Cpu)
    }
}

fn target_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    paired::target_dir(manifest.parent().unwrap_or(manifest))
}

/// Writes the random checkpoint; returns its folder.
fn write_checkpoint(dir: &Path) -> Result<PathBuf> {
    let folder = dir.join("checkpoint");
    std::fs::create_dir_all(&folder)?;
    let config = format!(
        r#"{{
  "architectures": ["LlamaForCausalLM"],
  "model_type": "llama",
  "vocab_size": {VOCAB},
  "hidden_size": {HIDDEN},
  "intermediate_size": {INTERMEDIATE},
  "num_hidden_layers": {LAYERS},
  "num_attention_heads": {HEADS},
  "num_key_value_heads": {KV_HEADS},
  "hidden_act": "silu",
  "rms_norm_eps": {RMS_EPS:e},
  "rope_theta": {ROPE_THETA:.1},
  "max_position_embeddings": {MAX_POSITIONS},
  "tie_word_embeddings": false,
  "attention_bias": false,
  "mlp_bias": false,
  "bos_token_id": 1,
  "eos_token_id": 2,
  "torch_dtype": "float32"
}}
"#
    );
    std::fs::write(folder.join("config.json"), config)?;
    let mut rng = Rng(0x5EED_11A3_A000_0001);
    let d_head = HIDDEN / HEADS;
    let (q, kv) = (HEADS * d_head, KV_HEADS * d_head);
    let mut weights: HashMap<String, Tensor> = HashMap::new();
    weights.insert(
        "model.embed_tokens.weight".into(),
        rng.tensor(&[VOCAB, HIDDEN], 1.0)?,
    );
    let linear_std = |fan_in: usize| 1.0 / (fan_in as f32).sqrt();
    for i in 0..LAYERS {
        let p = format!("model.layers.{i}");
        let mut put = |name: &str, t: Tensor| weights.insert(format!("{p}.{name}"), t);
        put("input_layernorm.weight", rng.norm()?);
        for (name, rows) in [("q_proj", q), ("k_proj", kv), ("v_proj", kv)] {
            let w = rng.tensor(&[rows, HIDDEN], linear_std(HIDDEN))?;
            put(&format!("self_attn.{name}.weight"), w);
        }
        put(
            "self_attn.o_proj.weight",
            rng.tensor(&[HIDDEN, q], linear_std(q))?,
        );
        put("post_attention_layernorm.weight", rng.norm()?);
        for name in ["gate_proj", "up_proj"] {
            let w = rng.tensor(&[INTERMEDIATE, HIDDEN], linear_std(HIDDEN))?;
            put(&format!("mlp.{name}.weight"), w);
        }
        put(
            "mlp.down_proj.weight",
            rng.tensor(&[HIDDEN, INTERMEDIATE], linear_std(INTERMEDIATE))?,
        );
    }
    weights.insert("model.norm.weight".into(), rng.norm()?);
    weights.insert(
        "lm_head.weight".into(),
        rng.tensor(&[VOCAB, HIDDEN], linear_std(HIDDEN))?,
    );
    candle_core::safetensors::save(&weights, folder.join("model.safetensors"))?;
    Ok(folder)
}

/// Fixed token ids `[1, SEQ]`.
fn token_ids() -> Vec<u32> {
    let mut rng = Rng(0x0070_CE75);
    (0..SEQ)
        .map(|_| ((rng.next() + 1.0) * 0.5 * VOCAB as f32) as u32 % VOCAB as u32)
        .collect()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()
}

/// The unembedding of the last position after our final norm, as candle-transformers
/// computes it: `lm_head(norm_weight * normalized[:, last])`.
fn last_position_logits(
    model: &HookedTransformer,
    ids: &Tensor,
    norm_w: &Tensor,
    lm_head: &Linear,
) -> Result<Tensor> {
    let cache = model
        .run_with_cache_stop_at("ln_final.hook_normalized", |m| m.forward(ids, None))
        .map_err(candle_core::Error::wrap)?;
    let normalized = cache
        .get("ln_final.hook_normalized")
        .map_err(candle_core::Error::wrap)?;
    let last = normalized.i((.., SEQ - 1, ..))?.broadcast_mul(norm_w)?;
    lm_head.forward(&last)
}

fn llama(c: &mut Criterion) {
    let dir = target_dir().join("llama_bench");
    let folder = write_checkpoint(&dir).expect("write checkpoint");
    eprintln!("llama: checkpoint in {}", folder.display());
    let device = Device::Cpu;

    // Ours.
    let model = auto_hook_models::load(&folder, DType::F32, &device).expect("auto_hook load");
    // candle-transformers, from the same files.
    let json = std::fs::read_to_string(folder.join("config.json")).expect("config.json");
    let config = serde_json::from_str::<LlamaConfig>(&json)
        .expect("LlamaConfig")
        .into_config(false);
    let files = [folder.join("model.safetensors")];
    // SAFETY: the file was just written and nothing modifies it while the bench runs.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&files, DType::F32, &device) }
        .expect("var builder");
    let ct = Llama::load(vb.clone(), &config).expect("candle-transformers load");
    let ct_cache = RefCell::new(Cache::new(false, DType::F32, &config, &device).expect("cache"));
    let lm_head = Linear::new(
        vb.get((VOCAB, HIDDEN), "lm_head.weight").expect("lm_head"),
        None,
    );
    let norm_w = vb.get(HIDDEN, "model.norm.weight").expect("norm weight");
    let rest_hidden = Rng(0xBEEF)
        .tensor(&[1, SEQ - 1, HIDDEN], 1.0)
        .expect("hidden");

    let ids = Tensor::from_vec(token_ids(), (1, SEQ), &device).expect("ids");

    // Checks, outside the timed code.
    let ours = model.forward(&ids, None).expect("auto_hook forward");
    assert_eq!(ours.dims(), [1, SEQ, VOCAB]);
    let mut worst = 0f32;
    for k in 0..SEQ {
        let mut check_cache = Cache::new(false, DType::F32, &config, &device).expect("cache");
        let theirs = ct
            .forward(&ids.narrow(1, 0, k + 1).unwrap(), 0, &mut check_cache)
            .expect("candle-transformers forward");
        assert_eq!(theirs.dims(), [1, VOCAB]);
        let diff = max_abs_diff(&ours.i((.., k, ..)).unwrap(), &theirs).unwrap();
        worst = worst.max(diff);
    }
    assert!(
        worst <= TOLERANCE,
        "auto_hook and candle-transformers logits differ by {worst} (> {TOLERANCE})"
    );
    let theirs_last = ct
        .forward(&ids, 0, &mut ct_cache.borrow_mut())
        .expect("candle-transformers forward");
    let ours_last = last_position_logits(&model, &ids, &norm_w, &lm_head).expect("last pos");
    let last_diff = max_abs_diff(&ours_last, &theirs_last).unwrap();
    assert!(
        last_diff <= TOLERANCE,
        "last-position logits differ by {last_diff}"
    );
    let (cached_out, cache) = model
        .run_with_cache(CacheOptions::all(), |m| m.forward(&ids, None))
        .expect("cache run");
    assert_eq!(max_abs_diff(&cached_out, &ours).unwrap(), 0.0);
    assert!(cache.len() >= model.hook_dict().len());
    let logit_scale = ours.abs().unwrap().flatten_all().unwrap().max(0).unwrap();
    eprintln!(
        "llama: logits agree at all {SEQ} positions (max |diff| {worst:.2e}, last-position \
         variant {last_diff:.2e}; max |logit| {}); {} hook points cached",
        logit_scale.to_scalar::<f32>().unwrap(),
        cache.len()
    );
    // For scripts/bench_hf_llama.py: the ids and our logits.
    let reference = HashMap::from([
        (
            "input_ids".to_owned(),
            ids.to_dtype(DType::I64).expect("i64 ids"),
        ),
        ("logits".to_owned(), ours.clone()),
    ]);
    candle_core::safetensors::save(&reference, dir.join("reference.safetensors"))
        .expect("write reference");

    let variants: [(&str, Run); 5] = [
        (
            "candle_transformers",
            Box::new(|| {
                let out = ct.forward(&ids, 0, &mut ct_cache.borrow_mut()).unwrap();
                drop(black_box(out))
            }),
        ),
        (
            "candle_transformers_all_pos",
            Box::new(|| {
                let out = ct.forward(&ids, 0, &mut ct_cache.borrow_mut()).unwrap();
                let rest = lm_head.forward(&rest_hidden).unwrap();
                drop(black_box((out, rest)))
            }),
        ),
        (
            "auto_hook_no_hooks",
            Box::new(|| drop(black_box(model.forward(&ids, None).unwrap()))),
        ),
        (
            "auto_hook_last_pos",
            Box::new(|| {
                let out = last_position_logits(&model, &ids, &norm_w, &lm_head).unwrap();
                drop(black_box(out))
            }),
        ),
        (
            "auto_hook_cache_all",
            Box::new(|| {
                let run = model.run_with_cache(CacheOptions::all(), |m| m.forward(&ids, None));
                drop(black_box(run.unwrap()))
            }),
        ),
    ];

    let group_name = match std::env::var("RAYON_NUM_THREADS") {
        Ok(n) if !n.is_empty() => format!("llama_threads{n}"),
        _ => "llama".to_owned(),
    };
    let mut group = c.benchmark_group(&group_name);
    group
        .sample_size(60)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(3))
        .measurement_time(Duration::from_secs(10));
    for (variant, run) in &variants {
        group.bench_function(BenchmarkId::new("small", *variant), |b| b.iter(run));
    }
    group.finish();

    if paired::enabled() {
        paired_rounds(&group_name, &variants);
    }
}

/// `PAIRED_ROUNDS` paired rounds (see `paired`); for each pair of `PAIRS`, the median
/// over rounds of variant time / baseline time in the same round, with a 95% CI. Printed,
/// and written to `target/criterion/{group}/paired.json`.
fn paired_rounds(group: &str, variants: &[(&str, Run)]) {
    let times = paired::time_rounds(variants, PAIRED_ROUNDS);
    let index = |name: &str| variants.iter().position(|(v, _)| *v == name).unwrap();
    let mut json = Vec::new();
    for (variant, _) in variants {
        let (_, mid, _) = paired::median_ci(times[index(variant)].clone());
        println!(
            "{group}/small/{variant}: paired-round median {:.3} ms",
            mid * 1e3
        );
        json.push(format!("\"{variant}\": {{\"median_s\": {mid}}}"));
    }
    for (variant, baseline) in PAIRS {
        let (lo, mid, hi) = paired::ratio(&times, index(variant), index(baseline));
        println!(
            "{group}/small: {variant} / {baseline}: paired ratio {mid:.4} (95% CI {lo:.4}..{hi:.4}, {PAIRED_ROUNDS} rounds)"
        );
        json.push(format!(
            "\"{variant}/{baseline}\": {{\"median\": {mid}, \"ci_low\": {lo}, \"ci_high\": {hi}, \"rounds\": {PAIRED_ROUNDS}}}"
        ));
    }
    paired::write_json(&target_dir().join("criterion").join(group), &json);
}

criterion_group!(benches, llama);
criterion_main!(benches);
