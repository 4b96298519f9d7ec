//! The real SmolLM2-135M-Instruct (Q4_1 GGUF) against transformers' loading of the same
//! file (`tests/fixtures/smollm2/transformers.json`, made by `scripts/gguf_reference.py`).
//!
//! Ignored by default (CI never downloads). Run them with:
//!
//! ```sh
//! export AUTO_HOOK_SMOLLM2=$(scripts/fetch_smollm2.sh | tail -1)
//! cargo test --release -p auto_hook_models --test smollm2 -- --ignored
//! ```

mod common;

use auto_hook::prelude::*;
use auto_hook_models::HookedTransformer;
use candle_core::{DType, Device, IndexOp, Tensor};
use common::fixture_folder;
use serde_json::Value;

fn gguf() -> String {
    std::env::var("AUTO_HOOK_SMOLLM2").unwrap_or_else(|_| {
        panic!(
            "set AUTO_HOOK_SMOLLM2 to SmolLM2-135M-Instruct.Q4_1.gguf: \
             export AUTO_HOOK_SMOLLM2=$(scripts/fetch_smollm2.sh | tail -1)"
        )
    })
}

fn reference() -> Value {
    let path = fixture_folder("smollm2").join("transformers.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn ids_of(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// Logits `[pos, vocab]` of the reference prompt, with every hook point cached; checks
/// that every listed point fired.
fn run(model: &HookedTransformer) -> Tensor {
    let r = reference();
    let ids = ids_of(&r["input_ids"]);
    assert_eq!(
        model
            .to_tokens(r["prompt"].as_str().unwrap(), &Device::Cpu)
            .unwrap()
            .i(0)
            .unwrap()
            .to_vec1::<u32>()
            .unwrap(),
        ids
    );
    let ids = Tensor::new(ids.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let (logits, cache) = model
        .run_with_cache(CacheOptions::all(), |m| m.forward(&ids, None))
        .unwrap();
    assert_eq!(cache.len(), model.hook_point_names().len());
    logits.i(0).unwrap()
}

/// Largest difference from transformers' top-20 logits at every position.
fn max_diff_to_reference(logits: &Tensor) -> f32 {
    let r = reference();
    let mut worst = 0f32;
    for p in r["positions"].as_array().unwrap() {
        let pos = p["position"].as_u64().unwrap() as usize;
        let row = logits.i(pos).unwrap().to_vec1::<f32>().unwrap();
        for (id, want) in ids_of(&p["top_ids"])
            .iter()
            .zip(p["top_logits"].as_array().unwrap())
        {
            worst = worst.max((row[*id as usize] - want.as_f64().unwrap() as f32).abs());
        }
    }
    worst
}

fn top_token(model: &HookedTransformer, logits: &Tensor) -> String {
    let last = logits.i(logits.dim(0).unwrap() - 1).unwrap();
    let id = last.argmax(0).unwrap().to_scalar::<u32>().unwrap();
    model.to_string(&[id]).unwrap()
}

#[test]
#[ignore = "needs SmolLM2's GGUF: AUTO_HOOK_SMOLLM2=$(scripts/fetch_smollm2.sh | tail -1)"]
fn dequantised_smollm2_matches_transformers_within_1e_4_and_answers_paris() {
    let model = auto_hook_models::load(gguf(), DType::F32, &Device::Cpu).unwrap();
    let logits = run(&model);
    let diff = max_diff_to_reference(&logits);
    eprintln!("dequantised vs transformers, top-20 logits at every position: {diff:e}");
    assert!(diff < 1e-4, "{diff}");
    assert_eq!(top_token(&model, &logits), " Paris");
}

#[test]
#[ignore = "needs SmolLM2's GGUF: AUTO_HOOK_SMOLLM2=$(scripts/fetch_smollm2.sh | tail -1)"]
fn quantized_smollm2_fires_every_point_answers_paris_and_stays_near_dequantised() {
    let quant = auto_hook_models::load_quantized(gguf(), &Device::Cpu).unwrap();
    let logits = run(&quant);
    assert_eq!(top_token(&quant, &logits), " Paris");
    let deq = auto_hook_models::load(gguf(), DType::F32, &Device::Cpu).unwrap();
    let reference = run(&deq);
    let rel = common::rel_diff(&logits, &reference);
    eprintln!(
        "quantized vs dequantised logits: max |diff| {:.3} = {rel:.3} of the largest |logit|",
        common::max_diff(&logits, &reference)
    );
    assert!(rel < 0.1, "{rel}");
    // Editing a mid-model point through its hook takes effect in the quantized model.
    let ids = quant
        .to_tokens("The capital of France is", &Device::Cpu)
        .unwrap();
    let zeroed = quant
        .run_with_hooks(
            Hooks::new().add("blocks.15.attn.w_o.hook_point", |x, _| x.zeros_like()),
            |m| m.forward(&ids, None),
        )
        .unwrap();
    assert!(common::max_diff(&zeroed.i(0).unwrap(), &logits) > 1e-2);
}

#[test]
#[ignore = "needs SmolLM2's GGUF: AUTO_HOOK_SMOLLM2=$(scripts/fetch_smollm2.sh | tail -1)"]
fn smollm2_tokenizer_and_chat_template_match_transformers() {
    let model = auto_hook_models::load_quantized(gguf(), &Device::Cpu).unwrap();
    let tok = model.text().unwrap().tokenizer();
    for case in reference()["tokenizer"].as_array().unwrap() {
        let want = ids_of(&case["ids"]);
        if let Some(chat) = case.get("chat") {
            let messages: Vec<auto_hook_models::ChatMessage> = chat
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    auto_hook_models::ChatMessage::new(
                        m["role"].as_str().unwrap(),
                        m["content"].as_str().unwrap(),
                    )
                })
                .collect();
            let rendered = model.apply_chat_template(&messages, true).unwrap();
            assert_eq!(rendered, case["rendered"].as_str().unwrap());
            assert_eq!(tok.encode(rendered, false).unwrap().get_ids(), want);
        } else {
            let text = case["text"].as_str().unwrap();
            assert_eq!(tok.encode(text, false).unwrap().get_ids(), want, "{text:?}");
        }
    }
}
