//! Hooks candle-transformers' own Qwen2 and Phi-3 without copying them: `build.rs` runs
//!
//! ```text
//! auto_hook_build::Builder::new("candle-transformers")
//!     .module("models/qwen2.rs")
//!     .module("models/phi3.rs")
//!     .generate()?;
//! ```
//!
//! and the crate `include!`s the result (`auto_hook_ct::built::{qwen2, phi3}` here). The
//! hooked models take the same config, constructor and forward as candle-transformers'.
//! With tiny random weights from one `VarMap`, this shows the hooked output bit-identical
//! to the unhooked model, caches every hook point, and stops a forward after layer 0.
//!
//! `cargo run -p auto_hook_ct --example candle_transformers`

use auto_hook::prelude::*;
use auto_hook_ct::built::{phi3, qwen2};
use auto_hook_ct::check::same_bits;
use candle::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use candle_transformers::models::{phi3 as ct_phi3, qwen2 as ct_qwen2};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

type Res<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const QWEN2: &str = r#"{"vocab_size": 64, "hidden_size": 32, "intermediate_size": 48,
  "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
  "max_position_embeddings": 64, "sliding_window": 64, "max_window_layers": 2,
  "tie_word_embeddings": false, "rope_theta": 10000.0, "rms_norm_eps": 1e-6,
  "use_sliding_window": false, "hidden_act": "silu"}"#;

const PHI3: &str = r#"{"vocab_size": 64, "hidden_act": "silu", "hidden_size": 32,
  "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
  "num_key_value_heads": 2, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
  "bos_token_id": null, "eos_token_id": null, "rope_scaling": null,
  "max_position_embeddings": 64, "original_max_position_embeddings": null,
  "partial_rotary_factor": null, "tie_word_embeddings": false}"#;

/// A `VarMap` whose variables `create` makes, filled with seeded values.
fn weights(create: impl Fn(VarBuilder) -> candle::Result<()>) -> Res<VarMap> {
    let varmap = VarMap::new();
    create(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))?;
    auto_hook_ct::weights::fill(&varmap, 3)?;
    Ok(varmap)
}

fn vb(varmap: &VarMap) -> VarBuilder<'static> {
    VarBuilder::from_varmap(varmap, DType::F32, &Device::Cpu)
}

fn qwen2_demo(ids: &Tensor) -> Res<()> {
    let (cfg, ct_cfg): (qwen2::Config, ct_qwen2::Config) =
        (serde_json::from_str(QWEN2)?, serde_json::from_str(QWEN2)?);
    let varmap = weights(|vb| qwen2::ModelForCausalLM::new(&cfg, vb).map(drop))?;
    let mut model = qwen2::ModelForCausalLM::new(&cfg, vb(&varmap))?;
    let mut unhooked = ct_qwen2::ModelForCausalLM::new(&ct_cfg, vb(&varmap))?;

    let names = model.hook_point_names();
    println!(
        "Qwen2: {} hook points: {}, ...",
        names.len(),
        names[..6].join(", ")
    );
    let want = unhooked.forward(ids, 0)?;
    let got = model.forward(ids, 0)?;
    same_bits("qwen2 logits", &got, &want)?;
    println!("  forward: bit-identical to candle-transformers' Qwen2");

    model.clear_kv_cache();
    let (logits, cache) = model.run_with_cache_mut(CacheOptions::all(), |m| m.forward(ids, 0))?;
    same_bits("qwen2 logits with a full cache", &logits, &want)?;
    let q = cache.get("base_model.layers.0.self_attn.q_proj.hook_point")?;
    println!(
        "  run_with_cache_mut: {} activations, q_proj of layer 0 {:?}",
        cache.len(),
        q.dims()
    );

    // a persistent hook counts what layer 1 computes during the stopped run
    let layer1 = Arc::new(AtomicUsize::new(0));
    let counter = layer1.clone();
    model.add_hook("base_model.layers.1.**", move |_, _| {
        counter.fetch_add(1, Ordering::Relaxed);
    })?;
    model.clear_kv_cache();
    let early = model.run_with_cache_stop_at_mut("base_model.layers.0.**", |m| m.forward(ids, 0));
    model.reset_hooks();
    println!(
        "  stop_at base_model.layers.0.**: {} activations; layer 1 points fired {} times",
        early?.len(),
        layer1.load(Ordering::Relaxed)
    );
    Ok(())
}

fn phi3_demo(ids: &Tensor) -> Res<()> {
    let (cfg, ct_cfg): (phi3::Config, ct_phi3::Config) =
        (serde_json::from_str(PHI3)?, serde_json::from_str(PHI3)?);
    let varmap = weights(|vb| phi3::Model::new(&cfg, vb).map(drop))?;
    let mut model = phi3::Model::new(&cfg, vb(&varmap))?;
    let mut unhooked = ct_phi3::Model::new(&ct_cfg, vb(&varmap))?;

    println!("Phi-3: {} hook points", model.hook_point_names().len());
    let want = unhooked.forward(ids, 0)?;
    let mut seen = 0;
    let identity = Hooks::new().add("**", |_, _| seen += 1);
    let got = model.run_with_hooks_mut(identity, |m| m.forward(ids, 0))?;
    same_bits("phi3 logits with identity hooks", &got, &want)?;
    println!("  identity hook on every point ({seen} calls): bit-identical to candle-transformers' Phi-3");

    model.clear_kv_cache();
    let (_, cache) = model.run_with_cache_mut(CacheOptions::all(), |m| m.forward(ids, 0))?;
    let qkv = cache.get("layers.1.self_attn.qkv_proj.hook_point")?;
    println!(
        "  run_with_cache_mut: {} activations, fused qkv of layer 1 {:?}",
        cache.len(),
        qkv.dims()
    );

    model.clear_kv_cache();
    let early = model.run_with_cache_stop_at_mut("layers.0.**", |m| m.forward(ids, 0))?;
    println!(
        "  stop_at layers.0.**: {} activations, the forward ended in layer 0",
        early.len()
    );
    // a zeroed MLP output in layer 0 changes the logits
    model.clear_kv_cache();
    let ablate = Hooks::new().add("layers.0.mlp.hook_point", |x, _| x.zeros_like());
    let ablated = model.run_with_hooks_mut(ablate, |m| m.forward(ids, 0))?;
    let diff = (ablated - &want)?.abs()?.max_all()?.to_scalar::<f32>()?;
    println!("  layers.0.mlp zeroed: logits move by up to {diff:.4}");
    Ok(())
}

fn main() -> Res<()> {
    let ids = Tensor::new(&[[1u32, 7, 3, 60, 12]], &Device::Cpu)?;
    qwen2_demo(&ids)?;
    phi3_demo(&ids)?;
    Ok(())
}
