//! Parity with Hugging Face transformers on tiny random checkpoints whose reference
//! activations were recorded in PyTorch (`scripts/make_fixtures.py`, committed outputs).

use auto_hook::prelude::*;
use auto_hook_models::{compare_with_reference, load};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::PathBuf;

fn fixture(name: &str) -> (auto_hook_models::HookedTransformer, HashMap<String, Tensor>) {
    fixture_with(name, "reference.safetensors")
}

fn fixture_with(
    name: &str,
    reference: &str,
) -> (auto_hook_models::HookedTransformer, HashMap<String, Tensor>) {
    let folder = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let model = load(&folder, DType::F32, &Device::Cpu).unwrap();
    let reference = candle_core::safetensors::load(folder.join(reference), &Device::Cpu).unwrap();
    (model, reference)
}

fn assert_parity(name: &str, per_layer: &[&str], min_keys: usize) {
    assert_parity_with(name, "reference.safetensors", per_layer, min_keys)
}

fn assert_parity_with(name: &str, file: &str, per_layer: &[&str], min_keys: usize) {
    let (model, reference) = fixture_with(name, file);
    let comparison = compare_with_reference(&model, &reference).unwrap();
    for (key, hook, diff) in &comparison.diffs {
        assert!(
            *diff <= 1e-4,
            "{name}: {key} (hook {hook}) differs by {diff}"
        );
    }
    let keys: Vec<&str> = comparison.diffs.iter().map(|d| d.0.as_str()).collect();
    assert!(
        keys.len() >= min_keys,
        "{name}: only {} keys compared: {keys:?}",
        keys.len()
    );
    assert!(keys.contains(&"logits"));
    for i in 0..=model.config().n_layers {
        assert!(
            keys.contains(&format!("hidden_states.{i}").as_str()),
            "{name}: hidden_states.{i}"
        );
    }
    for layer in 0..model.config().n_layers {
        for sub in per_layer {
            let key = sub.replace("{i}", &layer.to_string());
            assert!(keys.contains(&key.as_str()), "{name}: {key} not compared");
        }
    }
}

#[test]
fn gpt2_matches_hugging_face_within_1e_4() {
    let per_layer = [
        "transformer.h.{i}",
        "transformer.h.{i}.attn",
        "transformer.h.{i}.mlp",
        "transformer.h.{i}.ln_1",
    ];
    assert_parity("gpt2", &per_layer, 26);
}

#[test]
fn llama_with_gqa_and_untied_embeddings_matches_hugging_face_within_1e_4() {
    let per_layer = [
        "model.layers.{i}",
        "model.layers.{i}.self_attn",
        "model.layers.{i}.mlp",
        "model.layers.{i}.self_attn.k_proj",
    ];
    assert_parity("llama", &per_layer, 31);
}

#[test]
fn qwen2_with_attention_biases_matches_hugging_face_within_1e_4() {
    let per_layer = [
        "model.layers.{i}",
        "model.layers.{i}.self_attn",
        "model.layers.{i}.mlp",
        "model.layers.{i}.self_attn.q_proj",
    ];
    assert_parity("qwen2", &per_layer, 31);
}

/// Gemma 2's keys: the attention pattern of every layer (sliding and global), the norms
/// after each sublayer, and the soft-capped logits.
const GEMMA2_KEYS: [&str; 7] = [
    "attentions.{i}",
    "model.layers.{i}",
    "model.layers.{i}.self_attn",
    "model.layers.{i}.post_attention_layernorm",
    "model.layers.{i}.pre_feedforward_layernorm",
    "model.layers.{i}.post_feedforward_layernorm",
    "model.layers.{i}.mlp",
];

#[test]
fn gemma2_with_soft_caps_windows_and_free_head_dim_matches_hugging_face_within_1e_4() {
    assert_parity("gemma2", &GEMMA2_KEYS, 50);
}

#[test]
fn gemma2_left_padded_batch_matches_hugging_face_within_1e_4() {
    assert_parity_with("gemma2", "reference_padded.safetensors", &GEMMA2_KEYS, 50);
}

#[test]
fn gemma_v1_matches_hugging_face_within_1e_4() {
    let per_layer = [
        "attentions.{i}",
        "model.layers.{i}",
        "model.layers.{i}.self_attn",
        "model.layers.{i}.post_attention_layernorm",
        "model.layers.{i}.mlp",
    ];
    assert_parity("gemma", &per_layer, 30);
}

#[test]
fn hooked_output_is_bit_identical_to_the_unhooked_run() {
    for name in ["gpt2", "llama", "qwen2", "gemma2"] {
        let (model, reference) = fixture(name);
        let ids = reference["input_ids"].to_dtype(DType::U32).unwrap();
        let plain = model.forward(&ids, None).unwrap();
        let hooked = model
            .run_with_hooks(Hooks::new().add("**", |x, _| x.clone()), |m| {
                m.forward(&ids, None)
            })
            .unwrap();
        let bits = |t: &Tensor| {
            t.flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
                .iter()
                .map(|x| x.to_bits())
                .collect::<Vec<_>>()
        };
        assert_eq!(bits(&plain), bits(&hooked), "{name}");
    }
}

#[test]
fn a_perturbed_reference_is_caught() {
    let (model, mut reference) = fixture("llama");
    let logits = reference["logits"].clone();
    reference.insert("logits".into(), (logits + 1e-3).unwrap());
    let comparison = compare_with_reference(&model, &reference).unwrap();
    let logits_diff = comparison.diffs.iter().find(|d| d.0 == "logits").unwrap().2;
    assert!(logits_diff > 9e-4, "{logits_diff}");
    reference.insert(
        "model.norm".into(),
        Tensor::zeros((3, 3), DType::F32, &Device::Cpu).unwrap(),
    );
    let err = compare_with_reference(&model, &reference).unwrap_err();
    assert!(err.to_string().contains("model.norm"), "{err}");
}
