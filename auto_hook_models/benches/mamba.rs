//! The hooked Mamba port (no hooks) against candle-transformers' Mamba
//! (`candle_transformers::models::mamba`, 0.11): CPU, f32, batch 1, d_model 256, 4 layers,
//! d_inner 512, d_state 16, conv kernel 4, tied embeddings.
//!
//! candle-transformers' Mamba runs one token per call (its `State` holds the conv inputs
//! and SSM states); ours runs any number of positions per call, with or without a cache.
//! A random checkpoint (Hugging Face names, plus the `backbone.embedding.weight` alias
//! candle-transformers reads) is written to `target/mamba_bench/checkpoint`. Outside the
//! timed code, our 64-position logits must equal candle-transformers' 64 steps within
//! 1e-4 at every position, and one more cached step must match its next step.
//!
//! Variants (group `mamba`): `auto_hook_prefill64` (`forward_with_cache` of 64 tokens in
//! one call, fresh cache: logits of every position and the states),
//! `candle_transformers_64_steps` (64 single-token calls from a fresh `State`: the same
//! logits and states), `auto_hook_step` / `candle_transformers_step` (one decode step
//! after a 64-token prompt; the states have a fixed size, so repeated steps cost the
//! same). Pairs: `auto_hook_prefill64 / candle_transformers_64_steps` and
//! `auto_hook_step / candle_transformers_step`. A full `cargo bench -p auto_hook_models
//! --bench mamba` ends with paired rounds, the two pairs in separate rounds (100 for the
//! prefill, 1000 for the step; `target/criterion/mamba/{prefill,step}/paired.json`).

mod moe_ssm;
#[path = "../../auto_hook_dev/benches/paired/mod.rs"]
mod paired;

use auto_hook_models::{HookedMamba, MambaCache};
use candle_core::{DType, Device, IndexOp, Result, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::mamba::{Config, Model, State};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode};
use moe_ssm::{max_abs_diff, Rng};
use paired::Run;
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

const VOCAB: usize = 1000;
const D_MODEL: usize = 256;
const LAYERS: usize = 4;
const D_INNER: usize = 512;
const D_STATE: usize = 16;
const D_CONV: usize = 4;
const DT_RANK: usize = 16;
const SEQ: usize = 64;
const TOLERANCE: f32 = 1e-4;
const PAIRED_ROUNDS: usize = 100;
/// Rounds of the step pair (each run is one step: cheap).
const STEP_ROUNDS: usize = 1000;

const PAIRS: [(&str, &str); 2] = [
    ("auto_hook_prefill64", "candle_transformers_64_steps"),
    ("auto_hook_step", "candle_transformers_step"),
];

fn write_checkpoint(dir: &Path) -> Result<PathBuf> {
    let folder = dir.join("checkpoint");
    std::fs::create_dir_all(&folder)?;
    let config = format!(
        r#"{{"model_type": "mamba", "vocab_size": {VOCAB}, "hidden_size": {D_MODEL},
  "num_hidden_layers": {LAYERS}, "intermediate_size": {D_INNER}, "state_size": {D_STATE},
  "conv_kernel": {D_CONV}, "time_step_rank": {DT_RANK}, "use_conv_bias": true,
  "use_bias": false, "layer_norm_epsilon": 1e-5, "tie_word_embeddings": true,
  "d_model": {D_MODEL}, "n_layer": {LAYERS}, "pad_vocab_size_multiple": 1}}"#
    );
    std::fs::write(folder.join("config.json"), config)?;
    let mut rng = Rng(0x5EED_0000_3A3B_A001);
    let std = |fan_in: usize| 1.0 / (fan_in as f32).sqrt();
    let mut w: HashMap<String, Tensor> = HashMap::new();
    // Tied unembedding: small rows keep the logits O(1), as an untied head would.
    let embed = rng.tensor(&[VOCAB, D_MODEL], 0.1, 0.0)?;
    w.insert("backbone.embeddings.weight".into(), embed.clone());
    w.insert("backbone.embedding.weight".into(), embed);
    let a_log = Tensor::arange(1f32, D_STATE as f32 + 1.0, &Device::Cpu)?
        .log()?
        .broadcast_as((D_INNER, D_STATE))?
        .contiguous()?;
    for i in 0..LAYERS {
        let p = format!("backbone.layers.{i}");
        let mut put = |name: &str, t: Tensor| w.insert(format!("{p}.{name}"), t);
        put("norm.weight", rng.tensor(&[D_MODEL], 0.1, 1.0)?);
        let m = "mixer";
        put(
            &format!("{m}.in_proj.weight"),
            rng.tensor(&[2 * D_INNER, D_MODEL], std(D_MODEL), 0.0)?,
        );
        put(
            &format!("{m}.conv1d.weight"),
            rng.tensor(&[D_INNER, 1, D_CONV], 0.5, 0.0)?,
        );
        put(
            &format!("{m}.conv1d.bias"),
            rng.tensor(&[D_INNER], 0.1, 0.0)?,
        );
        let x_rows = DT_RANK + 2 * D_STATE;
        put(
            &format!("{m}.x_proj.weight"),
            rng.tensor(&[x_rows, D_INNER], std(D_INNER), 0.0)?,
        );
        put(
            &format!("{m}.dt_proj.weight"),
            rng.tensor(&[D_INNER, DT_RANK], std(DT_RANK), 0.0)?,
        );
        put(
            &format!("{m}.dt_proj.bias"),
            rng.tensor(&[D_INNER], 0.5, -3.0)?,
        );
        put(&format!("{m}.A_log"), a_log.clone());
        put(&format!("{m}.D"), rng.tensor(&[D_INNER], 0.1, 1.0)?);
        put(
            &format!("{m}.out_proj.weight"),
            rng.tensor(&[D_MODEL, D_INNER], std(D_INNER), 0.0)?,
        );
    }
    w.insert(
        "backbone.norm_f.weight".into(),
        rng.tensor(&[D_MODEL], 0.1, 1.0)?,
    );
    candle_core::safetensors::save(&w, folder.join("model.safetensors"))?;
    Ok(folder)
}

/// candle-transformers' logits of every position, one call per token: `[SEQ, vocab]`.
fn their_steps(ct: &Model, config: &Config, ids: &[u32]) -> Result<(Tensor, State)> {
    let mut state = State::new(1, config, DType::F32, &Device::Cpu)?;
    let mut rows = Vec::with_capacity(ids.len());
    for &id in ids {
        rows.push(ct.forward(&Tensor::new(&[id], &Device::Cpu)?, &mut state)?);
    }
    Ok((Tensor::cat(&rows, 0)?, state))
}

fn prefill(model: &HookedMamba, ids: &Tensor) -> Result<(Tensor, MambaCache)> {
    let mut cache = MambaCache::new(LAYERS);
    let logits = model.forward_with_cache(ids, None, &mut cache)?;
    Ok((logits, cache))
}

fn mamba(c: &mut Criterion) {
    let dir = moe_ssm::target_dir().join("mamba_bench");
    let folder = write_checkpoint(&dir).expect("write checkpoint");
    let device = Device::Cpu;
    let model = auto_hook_models::load_mamba(&folder, DType::F32, &device).expect("our load");
    let json = std::fs::read_to_string(folder.join("config.json")).expect("config");
    let config: Config = serde_json::from_str(&json).expect("candle config");
    let files = [folder.join("model.safetensors")];
    // SAFETY: the file was just written and nothing modifies it while the bench runs.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&files, DType::F32, &device) }
        .expect("var builder");
    let ct = Model::new(&config, vb.pp("backbone")).expect("candle-transformers load");
    let raw_ids = Rng(0x70CE).ids(SEQ + 1, VOCAB);
    let ids = Tensor::new(&raw_ids[..SEQ], &device)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let next = Tensor::new(&raw_ids[SEQ..], &device)
        .unwrap()
        .unsqueeze(0)
        .unwrap();

    let (ours, mut cache) = prefill(&model, &ids).expect("prefill");
    let (theirs, mut state) = their_steps(&ct, &config, &raw_ids[..SEQ]).expect("steps");
    let mut worst = max_abs_diff(&ours.squeeze(0).unwrap(), &theirs).unwrap();
    let our_step = model.forward_with_cache(&next, None, &mut cache).unwrap();
    let their_step = ct.forward(&next.squeeze(0).unwrap(), &mut state).unwrap();
    worst = worst.max(max_abs_diff(&our_step.i((.., 0)).unwrap(), &their_step).unwrap());
    assert!(worst <= TOLERANCE, "logits differ by {worst}");
    eprintln!("mamba: both libraries agree within {worst:.2e} at all {SEQ} positions and one step");

    let cache = RefCell::new(cache);
    let state = RefCell::new(state);
    let step_id = next.squeeze(0).unwrap();
    let variants: [(&str, Run); 4] = [
        (
            "auto_hook_prefill64",
            Box::new(|| drop(black_box(prefill(&model, &ids).unwrap()))),
        ),
        (
            "candle_transformers_64_steps",
            Box::new(|| {
                drop(black_box(
                    their_steps(&ct, &config, &raw_ids[..SEQ]).unwrap(),
                ))
            }),
        ),
        (
            "auto_hook_step",
            Box::new(|| {
                let out = model.forward_with_cache(&next, None, &mut cache.borrow_mut());
                drop(black_box(out.unwrap()))
            }),
        ),
        (
            "candle_transformers_step",
            Box::new(|| {
                drop(black_box(
                    ct.forward(&step_id, &mut state.borrow_mut()).unwrap(),
                ))
            }),
        ),
    ];
    let group_name = moe_ssm::group_name("mamba");
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
        // Two separate sets of rounds: the 64-token variants allocate megabytes, which
        // would otherwise sit between the two sub-millisecond steps of a round.
        let (prefill, step) = variants.split_at(2);
        moe_ssm::paired_report(
            &format!("{group_name}/prefill"),
            prefill,
            &PAIRS[..1],
            PAIRED_ROUNDS,
        );
        moe_ssm::paired_report(
            &format!("{group_name}/step"),
            step,
            &PAIRS[1..],
            STEP_ROUNDS,
        );
    }
}

criterion_group!(benches, mamba);
criterion_main!(benches);
