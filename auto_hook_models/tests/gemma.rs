//! Gemma 2 on its committed fixture (`scripts/make_fixtures.py gemma2`): layers full,
//! sliding (window 3), sliding; attention soft-cap 2, final soft-cap 3; head_dim 12.

mod common;

use auto_hook::prelude::*;
use auto_hook_models::{load, ArchConfig, Eos, GenerateOptions, HookedTransformer, KvCache};
use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, IndexOp, Tensor};
use common::*;
use std::collections::HashMap;

fn gemma2() -> HookedTransformer {
    load(fixture_folder("gemma2"), DType::F32, &Device::Cpu).unwrap()
}

#[test]
fn gemma2_has_transformer_lens_post_norm_points_each_firing_once() {
    let model = gemma2();
    let names = model.hook_point_names();
    let ids = tokens(2, 7);
    let mut seen: HashMap<String, usize> = HashMap::new();
    let hooks = Hooks::new().add("**", |_, h| {
        *seen.entry(h.name().to_owned()).or_default() += 1
    });
    model
        .run_with_hooks(hooks, |m| m.forward(&ids, None))
        .unwrap();
    for l in 0..3 {
        for point in [
            "ln1_post.hook_scale",
            "ln1_post.hook_normalized",
            "ln2_post.hook_scale",
            "ln2_post.hook_normalized",
            "attn.hook_rot_q",
            "attn.hook_attn_scores",
            "mlp.hook_pre_linear",
        ] {
            let name = format!("blocks.{l}.{point}");
            assert!(names.contains(&name), "missing {name}");
        }
    }
    for name in &names {
        assert_eq!(seen.get(name), Some(&1), "`{name}` fires exactly once");
    }
    let report = check_auto_hook(&model, |m| m.forward(&ids, None)).unwrap();
    assert!(report.is_ok(), "{report}");
}

#[test]
fn attention_scores_are_soft_capped_and_sliding_layers_see_only_the_window() {
    let model = gemma2();
    let ids = tokens(1, 7);
    let (_, cache) = model
        .run_with_cache(
            CacheOptions::names(["blocks.*.attn.hook_attn_scores"]),
            |m| m.forward(&ids, None),
        )
        .unwrap();
    for l in 0..3 {
        // [batch, head, q, k] of the first sequence's last query.
        let row = cache
            .get(&format!("blocks.{l}.attn.hook_attn_scores"))
            .unwrap()
            .i((0, 0, 6))
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let visible: Vec<bool> = row.iter().map(|s| s.is_finite()).collect();
        // Layer 0 is global; layers 1 and 2 slide with window 3 (keys 4, 5, 6).
        let expect = if l == 0 {
            [true; 7]
        } else {
            [false, false, false, false, true, true, true]
        };
        assert_eq!(visible, expect, "layer {l}");
        assert!(
            row.iter().filter(|s| s.is_finite()).all(|s| s.abs() <= 2.0),
            "layer {l}: scores beyond the cap 2: {row:?}"
        );
    }
    let logits = model.forward(&ids, None).unwrap();
    let (_, cache) = model
        .run_with_cache(CacheOptions::names(["unembed.hook_point"]), |m| {
            m.forward(&ids, None)
        })
        .unwrap();
    let raw = cache.get("unembed.hook_point").unwrap();
    let capped = ((raw / 3.0).unwrap().tanh().unwrap() * 3.0).unwrap();
    assert!(
        max_diff(&logits, &capped) < 1e-6,
        "output = 3·tanh(lm_head / 3)"
    );
    assert!(
        max_diff(&logits, raw) > 0.1,
        "the final cap bites on this fixture"
    );
}

#[test]
fn generation_with_cache_matches_the_full_forward_beyond_the_window_and_with_padding() {
    let model = gemma2();
    let ids = tokens(2, 9);
    // Left padding: the second sequence's first two positions are padding.
    let mask = Tensor::new(
        &[[1u32, 1, 1, 1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1, 1, 1, 1]],
        &Device::Cpu,
    )
    .unwrap();
    let full = model.forward(&ids, Some(&mask)).unwrap();
    let mut cache = KvCache::new(3);
    let mut steps = vec![model
        .forward_with_cache(
            &ids.i((.., ..4)).unwrap(),
            Some(&mask.i((.., ..4)).unwrap()),
            &mut cache,
        )
        .unwrap()];
    for p in 4..9 {
        let seen = mask.i((.., ..p + 1)).unwrap();
        steps.push(
            model
                .forward_with_cache(&ids.i((.., p..p + 1)).unwrap(), Some(&seen), &mut cache)
                .unwrap(),
        );
    }
    let stepped = Tensor::cat(&steps, 1).unwrap();
    // Padding positions' logits are meaningless; compare the real ones.
    assert!(max_diff(&full.i(0).unwrap(), &stepped.i(0).unwrap()) < 1e-5);
    assert!(max_diff(&full.i((1, 2..)).unwrap(), &stepped.i((1, 2..)).unwrap()) < 1e-5);
    // Greedy generation continues with the argmax of the full forward.
    let opts = GenerateOptions {
        max_new_tokens: 6,
        eos: Eos::Never,
        ..GenerateOptions::default()
    };
    let out = model
        .generate(&ids.i((..1, ..3)).unwrap(), None, &opts)
        .unwrap();
    let logits = model.forward(&out.i((.., ..8)).unwrap(), None).unwrap();
    let next: Vec<u32> = logits.i(0).unwrap().argmax(1).unwrap().to_vec1().unwrap();
    let generated: Vec<u32> = out.i(0).unwrap().to_vec1().unwrap();
    assert_eq!(&generated[3..9], &next[2..8]);
}

#[test]
fn gemma_configs_with_bad_layer_types_are_refused() {
    let base = r#"{"model_type":"gemma2","vocab_size":10,"hidden_size":8,"intermediate_size":16,
        "num_hidden_layers":2,"num_attention_heads":2,"head_dim":4"#;
    let short = format!("{base},\"layer_types\":[\"sliding_attention\"]}}");
    let err = ArchConfig::from_json(&short).unwrap_err();
    assert!(
        err.to_string()
            .contains("layer_types has 1 entries for 2 layers"),
        "{err}"
    );
    let odd = format!("{base},\"layer_types\":[\"sliding_attention\",\"chunked\"]}}");
    let err = ArchConfig::from_json(&odd).unwrap_err();
    assert!(err.to_string().contains("chunked"), "{err}");
    let default = ArchConfig::from_json(&format!("{base}}}")).unwrap();
    assert_eq!(default.gemma.unwrap().sliding_layers, [true, false]);
    let null_caps =
        format!("{base},\"attn_logit_softcapping\":null,\"final_logit_softcapping\":null}}");
    let gemma = ArchConfig::from_json(&null_caps).unwrap().gemma.unwrap();
    assert_eq!((gemma.attn_softcap, gemma.final_softcap), (None, None));
}

/// The fixture's weights as llama.cpp's converter writes a Gemma 2 GGUF (its names, norm
/// weights stored as `1 + w`, soft-caps and window in the metadata, a SentencePiece
/// vocabulary), 2-D weights as `quant` where their rows fit its blocks.
fn write_gemma2_gguf(path: &std::path::Path, quant: GgmlDType) {
    let weights = candle_core::safetensors::load(
        fixture_folder("gemma2").join("model.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    for (name, w) in weights {
        let gguf = match name.as_str() {
            "model.embed_tokens.weight" => "token_embd.weight".to_owned(),
            "model.norm.weight" => "output_norm.weight".to_owned(),
            _ => {
                let rest = name.strip_prefix("model.layers.").unwrap();
                let (layer, part) = rest.split_once('.').unwrap();
                let part = match part.trim_end_matches(".weight") {
                    "input_layernorm" => "attn_norm",
                    "post_attention_layernorm" => "post_attention_norm",
                    "pre_feedforward_layernorm" => "ffn_norm",
                    "post_feedforward_layernorm" => "post_ffw_norm",
                    "self_attn.q_proj" => "attn_q",
                    "self_attn.k_proj" => "attn_k",
                    "self_attn.v_proj" => "attn_v",
                    "self_attn.o_proj" => "attn_output",
                    "mlp.gate_proj" => "ffn_gate",
                    "mlp.up_proj" => "ffn_up",
                    "mlp.down_proj" => "ffn_down",
                    other => panic!("unexpected weight {other}"),
                };
                format!("blk.{layer}.{part}.weight")
            }
        };
        // Blocks of 32 values: the 48-wide inputs (o_proj, down_proj) stay f32.
        let (w, dtype) = if name.ends_with("norm.weight") {
            ((w + 1.0).unwrap(), GgmlDType::F32)
        } else if w.dim(1).unwrap() % 32 == 0 {
            (w, quant)
        } else {
            (w, GgmlDType::F32)
        };
        tensors.push((gguf, QTensor::quantize(&w, dtype).unwrap()));
    }
    let tokens: Vec<Value> = (0..64)
        .map(|i| match i {
            0 => "<pad>".to_owned(),
            1 => "<eos>".to_owned(),
            2 => "<bos>".to_owned(),
            i => format!("\u{2581}t{i}"),
        })
        .map(Value::String)
        .collect();
    let types = (0..64)
        .map(|i| Value::I32(if i < 3 { 3 } else { 1 }))
        .collect();
    let u = |v: u32| Value::U32(v);
    let meta: Vec<(&str, Value)> = vec![
        ("general.architecture", Value::String("gemma2".into())),
        ("gemma2.context_length", u(64)),
        ("gemma2.embedding_length", u(32)),
        ("gemma2.block_count", u(3)),
        ("gemma2.feed_forward_length", u(48)),
        ("gemma2.attention.head_count", u(4)),
        ("gemma2.attention.head_count_kv", u(2)),
        ("gemma2.attention.key_length", u(12)),
        ("gemma2.attention.value_length", u(12)),
        ("gemma2.attention.layer_norm_rms_epsilon", Value::F32(1e-6)),
        ("gemma2.attention.sliding_window", u(3)),
        ("gemma2.attn_logit_softcapping", Value::F32(2.0)),
        ("gemma2.final_logit_softcapping", Value::F32(3.0)),
        ("tokenizer.ggml.model", Value::String("llama".into())),
        ("tokenizer.ggml.tokens", Value::Array(tokens)),
        (
            "tokenizer.ggml.scores",
            Value::Array(vec![Value::F32(0.0); 64]),
        ),
        ("tokenizer.ggml.token_type", Value::Array(types)),
        ("tokenizer.ggml.bos_token_id", u(2)),
        ("tokenizer.ggml.eos_token_id", u(1)),
        ("tokenizer.ggml.padding_token_id", u(0)),
    ];
    let meta: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (*k, v)).collect();
    let tensors: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut file = std::fs::File::create(path).unwrap();
    gguf_file::write(&mut file, &meta, &tensors).unwrap();
}

#[test]
fn gemma2_gguf_loads_like_the_same_weights_from_a_hugging_face_folder() {
    let dir = temp_folder("gemma2_gguf");
    let gguf = dir.join("gemma2.gguf");
    write_gemma2_gguf(&gguf, GgmlDType::F32);
    // A GGUF says nothing of query_pre_attn_scalar or the layer order: llama.cpp scales by
    // 1/sqrt(head_dim) and slides on layers 0, 2, ...; the same in a folder's config.
    let config = std::fs::read_to_string(fixture_folder("gemma2").join("config.json")).unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&config).unwrap();
    config["query_pre_attn_scalar"] = 12.into();
    config["layer_types"] =
        serde_json::json!(["sliding_attention", "full_attention", "sliding_attention"]);
    let folder = dir.join("hf");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("config.json"), config.to_string()).unwrap();
    std::fs::copy(
        fixture_folder("gemma2").join("model.safetensors"),
        folder.join("model.safetensors"),
    )
    .unwrap();
    let hf = load(&folder, DType::F32, &Device::Cpu).unwrap();
    let from_gguf = load(&gguf, DType::F32, &Device::Cpu).unwrap();
    assert_eq!(from_gguf.config().gemma, hf.config().gemma);
    assert_eq!(from_gguf.config().sliding_window, Some(3));
    let ids = tokens(2, 9);
    let (a, b) = (
        hf.forward(&ids, None).unwrap(),
        from_gguf.forward(&ids, None).unwrap(),
    );
    assert!(max_diff(&a, &b) < 1e-5, "{}", max_diff(&a, &b));
    assert!(from_gguf.to_tokens("t5 t7", &Device::Cpu).is_ok());
    let q8 = dir.join("gemma2_q8.gguf");
    write_gemma2_gguf(&q8, GgmlDType::Q8_0);
    let quantized = auto_hook_models::load_quantized(&q8, &Device::Cpu).unwrap();
    assert!(quantized.blocks()[0].attn().q_proj().is_quantized());
    // This random fixture amplifies rounding (Q8_0 weights alone move its logits, capped at
    // ±3, by 0.19): the quantized run is checked against the same file dequantised, where
    // only candle's Q8 quantization of the activations differs (measured 0.079).
    let dequantized = load(&q8, DType::F32, &Device::Cpu).unwrap();
    let d = dequantized.forward(&ids, None).unwrap();
    let diff = max_diff(&d, &quantized.forward(&ids, None).unwrap());
    assert!(diff < 0.15, "Q8_0 logits differ by {diff}");
    assert!(max_diff(&a, &d) > 1e-3, "the Q8_0 file is really quantized");
}
