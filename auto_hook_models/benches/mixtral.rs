//! The hooked Mixtral port (no hooks) against candle-transformers' Mixtral
//! (`candle_transformers::models::mixtral`, 0.11) on one small config: CPU, f32, batch 1,
//! 64 tokens, one forward over the whole sequence; 8 experts, top-2.
//!
//! A random checkpoint (Hugging Face legacy names, `block_sparse_moe.*`) is written to
//! `target/mixtral_bench/checkpoint` and loaded by both. Outside the timed code, both
//! libraries' logits must agree within 1e-4 at the last position of prefixes of 16, 32
//! and 64 tokens (candle-transformers returns the last position only). The sliding window
//! (4096) is longer than the sequence: the two libraries draw its edge one position
//! apart.
//!
//! candle-transformers' `Model` keeps a KV cache inside and has no way to clear it, so
//! each of its runs starts from a clone of the freshly loaded model (cloning shares the
//! weights; it costs microseconds against a forward of milliseconds). Its MoE copies the
//! router probabilities to the host in every layer and does top-k there; ours keeps
//! softmax, top-k and the combine weights on the device and, with the CPU's default
//! `MoeDispatch::Gather`, reads 8 counts per layer; `MoeDispatch::Dense` reads nothing
//! and runs every expert on every token (4× the expert FLOPs here).
//!
//! Variants (group `mixtral`): `candle_transformers` (last-position logits),
//! `candle_transformers_all_pos` (the same plus the unembedding of the other 63
//! positions: the work of a full-sequence forward), `auto_hook_no_hooks`
//! (`HookedTransformer::forward`, logits of every position), `auto_hook_last_pos`
//! (our forward stopped after the final norm, then the last position's unembedding),
//! `auto_hook_dense` (`auto_hook_no_hooks` with `MoeDispatch::Dense`, the GPU default).
//! Same-work pairs: `auto_hook_no_hooks / candle_transformers_all_pos` and
//! `auto_hook_last_pos / candle_transformers`. A full `cargo bench -p auto_hook_models
//! --bench mixtral` run ends with paired rounds (`target/criterion/mixtral/paired.json`).

mod moe_ssm;
#[path = "../../auto_hook_dev/benches/paired/mod.rs"]
mod paired;

use auto_hook::prelude::*;
use auto_hook_models::{HookedTransformer, MoeDispatch};
use candle_core::{DType, Device, IndexOp, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};
use candle_transformers::models::mixtral::{Config, Model};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode};
use moe_ssm::{max_abs_diff, Rng};
use paired::Run;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

const VOCAB: usize = 1000;
const HIDDEN: usize = 256;
const INTERMEDIATE: usize = 512;
const LAYERS: usize = 4;
const HEADS: usize = 8;
const KV_HEADS: usize = 4;
const EXPERTS: usize = 8;
const TOP_K: usize = 2;
const SEQ: usize = 64;
const TOLERANCE: f32 = 1e-4;
const PAIRED_ROUNDS: usize = 100;

const PAIRS: [(&str, &str); 3] = [
    ("auto_hook_no_hooks", "candle_transformers_all_pos"),
    ("auto_hook_last_pos", "candle_transformers"),
    ("auto_hook_dense", "candle_transformers_all_pos"),
];

fn config_json(flash: bool) -> String {
    format!(
        r#"{{"model_type": "mixtral", "vocab_size": {VOCAB}, "hidden_size": {HIDDEN},
  "intermediate_size": {INTERMEDIATE}, "num_hidden_layers": {LAYERS},
  "num_attention_heads": {HEADS}, "num_key_value_heads": {KV_HEADS}, "hidden_act": "silu",
  "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
  "sliding_window": 4096, "num_experts_per_tok": {TOP_K}, "num_local_experts": {EXPERTS},
  "tie_word_embeddings": false, "use_flash_attn": {flash}}}"#
    )
}

fn write_checkpoint(dir: &Path) -> Result<PathBuf> {
    let folder = dir.join("checkpoint");
    std::fs::create_dir_all(&folder)?;
    std::fs::write(folder.join("config.json"), config_json(false))?;
    let mut rng = Rng(0x05EE_D000_0000_00E8);
    let std = |fan_in: usize| 1.0 / (fan_in as f32).sqrt();
    let d_head = HIDDEN / HEADS;
    let (q, kv) = (HEADS * d_head, KV_HEADS * d_head);
    let mut w: HashMap<String, Tensor> = HashMap::new();
    w.insert(
        "model.embed_tokens.weight".into(),
        rng.tensor(&[VOCAB, HIDDEN], 1.0, 0.0)?,
    );
    for i in 0..LAYERS {
        let p = format!("model.layers.{i}");
        let mut put = |name: &str, t: Tensor| w.insert(format!("{p}.{name}"), t);
        put("input_layernorm.weight", rng.tensor(&[HIDDEN], 0.1, 1.0)?);
        put(
            "post_attention_layernorm.weight",
            rng.tensor(&[HIDDEN], 0.1, 1.0)?,
        );
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
        put(
            "block_sparse_moe.gate.weight",
            rng.tensor(&[EXPERTS, HIDDEN], std(HIDDEN), 0.0)?,
        );
        for e in 0..EXPERTS {
            let x = format!("block_sparse_moe.experts.{e}");
            put(
                &format!("{x}.w1.weight"),
                rng.tensor(&[INTERMEDIATE, HIDDEN], std(HIDDEN), 0.0)?,
            );
            put(
                &format!("{x}.w3.weight"),
                rng.tensor(&[INTERMEDIATE, HIDDEN], std(HIDDEN), 0.0)?,
            );
            put(
                &format!("{x}.w2.weight"),
                rng.tensor(&[HIDDEN, INTERMEDIATE], std(INTERMEDIATE), 0.0)?,
            );
        }
    }
    w.insert("model.norm.weight".into(), rng.tensor(&[HIDDEN], 0.1, 1.0)?);
    w.insert(
        "lm_head.weight".into(),
        rng.tensor(&[VOCAB, HIDDEN], std(HIDDEN), 0.0)?,
    );
    candle_core::safetensors::save(&w, folder.join("model.safetensors"))?;
    Ok(folder)
}

/// Our forward stopped after the final norm, then the last position through the norm
/// weight and the unembedding: candle-transformers' work.
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
    let t = ids.dim(1)?;
    lm_head.forward(&normalized.i((.., t - 1, ..))?.broadcast_mul(norm_w)?)
}

fn mixtral(c: &mut Criterion) {
    let dir = moe_ssm::target_dir().join("mixtral_bench");
    let folder = write_checkpoint(&dir).expect("write checkpoint");
    let device = Device::Cpu;
    let model = auto_hook_models::load(&folder, DType::F32, &device).expect("auto_hook load");
    let config: Config = serde_json::from_str(&config_json(false)).expect("candle config");
    let files = [folder.join("model.safetensors")];
    // SAFETY: the file was just written and nothing modifies it while the bench runs.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&files, DType::F32, &device) }
        .expect("var builder");
    let fresh = Model::new(&config, vb.clone()).expect("candle-transformers load");
    let lm_head = Linear::new(
        vb.get((VOCAB, HIDDEN), "lm_head.weight").expect("lm_head"),
        None,
    );
    let norm_w = vb.get(HIDDEN, "model.norm.weight").expect("norm weight");
    let rest_hidden = Rng(0xBEEF)
        .tensor(&[1, SEQ - 1, HIDDEN], 1.0, 0.0)
        .expect("hidden");
    let ids = Tensor::from_vec(Rng(0x70CE).ids(SEQ, VOCAB), (1, SEQ), &device).expect("ids");

    let ours = model.forward(&ids, None).expect("auto_hook forward");
    let mut dense = model.clone();
    dense.set_moe_dispatch(MoeDispatch::Dense);
    let mut worst = max_abs_diff(&ours, &dense.forward(&ids, None).unwrap()).unwrap();
    for k in [16, 32, SEQ] {
        let theirs = fresh
            .clone()
            .forward(&ids.narrow(1, 0, k).unwrap(), 0)
            .unwrap();
        let diff = max_abs_diff(&ours.i((.., k - 1..k, ..)).unwrap(), &theirs).unwrap();
        worst = worst.max(diff);
    }
    let last = last_position_logits(&model, &ids, &norm_w, &lm_head).unwrap();
    let theirs = fresh.clone().forward(&ids, 0).unwrap();
    worst = worst.max(max_abs_diff(&last, &theirs.squeeze(1).unwrap()).unwrap());
    assert!(worst <= TOLERANCE, "logits differ by {worst}");
    eprintln!("mixtral: both libraries and both dispatches agree within {worst:.2e}");

    let variants: [(&str, Run); 5] = [
        (
            "candle_transformers",
            Box::new(|| drop(black_box(fresh.clone().forward(&ids, 0).unwrap()))),
        ),
        (
            "candle_transformers_all_pos",
            Box::new(|| {
                let out = fresh.clone().forward(&ids, 0).unwrap();
                drop(black_box((out, lm_head.forward(&rest_hidden).unwrap())))
            }),
        ),
        (
            "auto_hook_no_hooks",
            Box::new(|| drop(black_box(model.forward(&ids, None).unwrap()))),
        ),
        (
            "auto_hook_dense",
            Box::new(|| drop(black_box(dense.forward(&ids, None).unwrap()))),
        ),
        (
            "auto_hook_last_pos",
            Box::new(|| {
                let out = last_position_logits(&model, &ids, &norm_w, &lm_head).unwrap();
                drop(black_box(out))
            }),
        ),
    ];
    let group_name = moe_ssm::group_name("mixtral");
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

criterion_group!(benches, mixtral);
criterion_main!(benches);
