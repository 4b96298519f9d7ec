//! The hooked ports on tiny random checkpoints written in Hugging Face layout.

mod common;

use auto_hook::prelude::*;
use auto_hook_models::{load, Decoding, Eos, GenerateOptions, HookedTransformer, KvCache};
use candle_core::{DType, Device, IndexOp, Tensor};
use common::*;
use std::collections::HashMap;

fn gpt2() -> HookedTransformer {
    let dir = temp_folder("gpt2");
    write_gpt2(&dir);
    load(&dir, DType::F32, &Device::Cpu).unwrap()
}

fn llama(qwen: bool) -> HookedTransformer {
    let dir = temp_folder(if qwen { "qwen" } else { "llama" });
    write_llama(&dir, qwen);
    load(&dir, DType::F32, &Device::Cpu).unwrap()
}

const BLOCK_POINTS: [&str; 15] = [
    "hook_resid_pre",
    "ln1.hook_scale",
    "ln1.hook_normalized",
    "attn.hook_q",
    "attn.hook_k",
    "attn.hook_v",
    "attn.hook_attn_scores",
    "attn.hook_pattern",
    "attn.hook_z",
    "hook_attn_out",
    "hook_resid_mid",
    "ln2.hook_scale",
    "ln2.hook_normalized",
    "mlp.hook_pre",
    "hook_resid_post",
];

fn fire_counts(model: &HookedTransformer, ids: &Tensor) -> HashMap<String, (usize, Vec<usize>)> {
    let mut seen: HashMap<String, (usize, Vec<usize>)> = HashMap::new();
    let hooks = Hooks::new().add("**", |x, h| {
        let entry = seen.entry(h.name().to_owned()).or_default();
        entry.0 += 1;
        entry.1 = x.dims().to_vec();
    });
    model
        .run_with_hooks(hooks, |m| m.forward(ids, None))
        .unwrap();
    seen
}

#[test]
fn gpt2_has_transformer_lens_hook_points_each_firing_once_with_tl_shapes() {
    let model = gpt2();
    let names = model.hook_point_names();
    for i in 0..2 {
        for point in BLOCK_POINTS
            .iter()
            .chain(["mlp.hook_post", "hook_mlp_out"].iter())
        {
            assert!(
                names.contains(&format!("blocks.{i}.{point}")),
                "missing blocks.{i}.{point}"
            );
        }
        assert!(
            !names.contains(&format!("blocks.{i}.attn.hook_rot_q")),
            "GPT-2 has no rotary points"
        );
    }
    for point in [
        "hook_embed",
        "hook_pos_embed",
        "ln_final.hook_scale",
        "ln_final.hook_normalized",
        "unembed.hook_point",
    ] {
        assert!(names.contains(&point.to_owned()), "missing {point}");
    }
    let ids = tokens(2, 5);
    let seen = fire_counts(&model, &ids);
    for name in &names {
        assert_eq!(
            seen.get(name).map(|s| s.0),
            Some(1),
            "`{name}` fires exactly once"
        );
    }
    assert_eq!(
        seen["blocks.0.attn.hook_q"].1,
        [2, 5, 4, 4],
        "[batch, pos, head, d_head]"
    );
    assert_eq!(
        seen["blocks.1.attn.hook_pattern"].1,
        [2, 4, 5, 5],
        "[batch, head, q_pos, k_pos]"
    );
    assert_eq!(seen["blocks.0.ln1.hook_scale"].1, [2, 5, 1]);
    assert_eq!(seen["unembed.hook_point"].1, [2, 5, 40]);
}

#[test]
fn llama_with_gqa_has_rotary_and_gated_points_and_passes_the_library_checks() {
    let model = llama(false);
    let ids = tokens(1, 6);
    let seen = fire_counts(&model, &ids);
    assert_eq!(
        seen["blocks.1.attn.hook_k"].1,
        [1, 6, 2, 4],
        "two key/value heads"
    );
    assert_eq!(seen["blocks.1.attn.hook_rot_q"].1, [1, 6, 4, 4]);
    assert_eq!(seen["blocks.0.mlp.hook_pre_linear"].1, [1, 6, 24]);
    assert!(!seen.contains_key("hook_pos_embed"));
    let report = check_auto_hook(&model, |m| m.forward(&ids, None)).unwrap();
    assert!(report.is_ok(), "{report}");
}

#[test]
fn qwen2_biases_load_and_unsupported_configs_are_refused() {
    let model = llama(true);
    assert!(model.config().qkv_bias && !model.config().o_bias);
    assert_eq!(
        model.forward(&tokens(1, 3), None).unwrap().dims(),
        [1, 3, 40]
    );
    let dir = temp_folder("scaled");
    write_llama(&dir, false);
    let config = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let scaled = config.replace("\"rope_type\":\"default\"", "\"rope_type\":\"yarn\"");
    std::fs::write(dir.join("config.json"), scaled).unwrap();
    let err = load(&dir, DType::F32, &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("yarn"), "{err}");
}

#[test]
fn sharded_checkpoint_loads_the_same_model() {
    let dir = temp_folder("shards");
    write_llama(&dir, false);
    let single = load(&dir, DType::F32, &Device::Cpu).unwrap();
    let all = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
    let (mut a, mut b, mut index) = (HashMap::new(), HashMap::new(), serde_json::Map::new());
    for (i, (name, t)) in all.into_iter().enumerate() {
        let file = if i % 2 == 0 {
            "model-00001-of-00002.safetensors"
        } else {
            "model-00002-of-00002.safetensors"
        };
        index.insert(name.clone(), serde_json::Value::from(file));
        if i % 2 == 0 {
            a.insert(name, t)
        } else {
            b.insert(name, t)
        };
    }
    candle_core::safetensors::save(&a, dir.join("model-00001-of-00002.safetensors")).unwrap();
    candle_core::safetensors::save(&b, dir.join("model-00002-of-00002.safetensors")).unwrap();
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    let json = serde_json::json!({ "metadata": {}, "weight_map": index });
    std::fs::write(dir.join("model.safetensors.index.json"), json.to_string()).unwrap();
    let sharded = load(&dir, DType::F32, &Device::Cpu).unwrap();
    let ids = tokens(1, 4);
    assert_eq!(
        max_diff(
            &single.forward(&ids, None).unwrap(),
            &sharded.forward(&ids, None).unwrap()
        ),
        0.0
    );
}

#[test]
fn half_precision_loads_run_close_to_f32() {
    let dir = temp_folder("half");
    write_gpt2(&dir);
    let ids = tokens(1, 5);
    let full = load(&dir, DType::F32, &Device::Cpu)
        .unwrap()
        .forward(&ids, None)
        .unwrap();
    for dtype in [DType::F16, DType::BF16] {
        let half = load(&dir, dtype, &Device::Cpu)
            .unwrap()
            .forward(&ids, None)
            .unwrap();
        assert_eq!(half.dtype(), dtype);
        assert!(rel_diff(&half, &full) < 0.05, "{dtype:?}");
    }
}

#[test]
fn left_padding_gives_the_unpadded_logits_at_real_positions() {
    for model in [gpt2(), llama(false)] {
        let ids = tokens(1, 4);
        let alone = model.forward(&ids, None).unwrap();
        let padded_ids = Tensor::cat(
            &[&Tensor::new(&[[0u32, 0]], &Device::Cpu).unwrap(), &ids],
            1,
        )
        .unwrap();
        let mask = Tensor::new(&[[0u32, 0, 1, 1, 1, 1]], &Device::Cpu).unwrap();
        let padded = model.forward(&padded_ids, Some(&mask)).unwrap();
        assert!(
            max_diff(&alone, &padded.i((.., 2..)).unwrap()) < 1e-4,
            "{}",
            model.config().model_type
        );
    }
}

/// Blocked scores are −∞ in `hook_attn_scores` (as TransformerLens shows them); with
/// a padding position that sees no key they are the dtype's minimum, and every pattern
/// value stays finite.
#[test]
fn blocked_attention_scores_are_minus_infinity_unless_a_query_sees_no_key() {
    let model = gpt2();
    let scores = |ids: &Tensor, mask: Option<&Tensor>| {
        let (_, cache) = model
            .run_with_cache("blocks.0.attn.*", |m| m.forward(ids, mask))
            .unwrap();
        let pattern = cache.get("blocks.0.attn.hook_pattern").unwrap();
        let p = pattern.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(
            p.iter().all(|v| v.is_finite()),
            "a non-finite pattern value"
        );
        let s = cache.get("blocks.0.attn.hook_attn_scores").unwrap();
        s.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    };
    let ids = tokens(1, 4);
    let causal = scores(&ids, None);
    // [1, head, 4, 4]: row q blocks keys j > q, 6 of 16 per head.
    let blocked = causal.iter().filter(|v| **v == f32::NEG_INFINITY).count();
    assert_eq!(blocked, 6 * causal.len() / 16);
    assert!(causal
        .iter()
        .all(|v| v.is_finite() || *v == f32::NEG_INFINITY));
    let padded = Tensor::new(&[[0u32, 5, 6, 7]], &Device::Cpu).unwrap();
    let mask = Tensor::new(&[[0u32, 1, 1, 1]], &Device::Cpu).unwrap();
    let with_pad = scores(&padded, Some(&mask));
    assert!(with_pad.iter().all(|v| v.is_finite()));
    assert!(with_pad.contains(&f32::MIN));
}

#[test]
fn inputs_longer_than_learned_positions_are_refused_with_the_limit() {
    let model = gpt2(); // n_positions 32
    let err = model.forward(&tokens(1, 33), None).unwrap_err().to_string();
    assert!(
        err.contains("33 tokens") && err.contains("32 learned positions"),
        "{err}"
    );
    // Padding does not count: 34 slots holding 32 real tokens are fine.
    let ids = Tensor::cat(
        &[
            &Tensor::zeros((1, 2), DType::U32, &Device::Cpu).unwrap(),
            &tokens(1, 32),
        ],
        1,
    )
    .unwrap();
    let mut mask = vec![1u32; 34];
    mask[..2].fill(0);
    let mask = Tensor::from_vec(mask, (1, 34), &Device::Cpu).unwrap();
    assert_eq!(
        model.forward(&ids, Some(&mask)).unwrap().dims(),
        &[1, 34, 40]
    );
    // Generation stops at the limit with the same error, not an index error.
    let opts = GenerateOptions {
        max_new_tokens: 40,
        eos: Eos::Never,
        ..Default::default()
    };
    let err = model
        .generate(&tokens(1, 4), None, &opts)
        .unwrap_err()
        .to_string();
    assert!(err.contains("33 tokens"), "{err}");
}

#[test]
fn kv_cache_steps_give_the_full_sequence_logits() {
    for model in [gpt2(), llama(true)] {
        let ids = tokens(2, 6);
        let full = model.forward(&ids, None).unwrap();
        let mut cache = KvCache::new(model.config().n_layers);
        let mut steps = vec![model
            .forward_with_cache(&ids.i((.., ..3)).unwrap(), None, &mut cache)
            .unwrap()];
        for p in 3..6 {
            let mask = Tensor::ones((2, p + 1), DType::U32, &Device::Cpu).unwrap();
            steps.push(
                model
                    .forward_with_cache(&ids.i((.., p..p + 1)).unwrap(), Some(&mask), &mut cache)
                    .unwrap(),
            );
        }
        let stepped = Tensor::cat(&steps, 1).unwrap();
        assert!(
            max_diff(&full, &stepped) < 1e-4,
            "{}",
            model.config().model_type
        );
    }
}

#[test]
fn generation_is_greedy_or_seeded_and_hooks_fire_every_step() {
    let model = llama(false);
    let ids = tokens(1, 3);
    let opts = GenerateOptions {
        max_new_tokens: 5,
        eos: Eos::Tokens(vec![999]),
        ..GenerateOptions::default()
    };
    let greedy = model.generate(&ids, None, &opts).unwrap();
    assert_eq!(greedy.dims(), [1, 8]);
    // Greedy generation continues with the argmax of the full forward.
    let logits = model.forward(&greedy.i((.., ..7)).unwrap(), None).unwrap();
    let argmax = logits
        .i((0, 6))
        .unwrap()
        .argmax(0)
        .unwrap()
        .to_scalar::<u32>()
        .unwrap();
    assert_eq!(
        argmax,
        greedy.i((0, 7)).unwrap().to_scalar::<u32>().unwrap()
    );
    let sample = GenerateOptions {
        sampling: Decoding::Sample {
            temperature: 1.5,
            top_k: Some(10),
            top_p: Some(0.9),
        },
        seed: 42,
        ..opts.clone()
    };
    let a = model
        .generate(&ids, None, &sample)
        .unwrap()
        .to_vec2::<u32>()
        .unwrap();
    let b = model
        .generate(&ids, None, &sample)
        .unwrap()
        .to_vec2::<u32>()
        .unwrap();
    assert_eq!(a, b, "same seed, same tokens");
    let mut widths = Vec::new();
    let hooks = Hooks::new().add("blocks.0.attn.hook_pattern", |x, _| {
        widths.push((x.dim(2).unwrap(), x.dim(3).unwrap()))
    });
    model
        .run_with_hooks(hooks, |m| m.generate(&ids, None, &opts))
        .unwrap();
    assert_eq!(widths, [(3, 3), (1, 4), (1, 5), (1, 6), (1, 7)]);
}

#[test]
fn stop_at_the_first_block_computes_no_later_layer() {
    let model = gpt2();
    let ids = tokens(1, 5);
    let mut later = 0;
    let counter = Hooks::new().add(
        vec!["blocks.1.**", "ln_final.**", "unembed.hook_point"],
        |_, _| later += 1,
    );
    let cache = model
        .run_with_hooks(counter, |m| {
            m.run_with_cache_stop_at("blocks.0.**", |m| m.forward(&ids, None))
        })
        .unwrap();
    assert_eq!(later, 0);
    assert!(cache.contains("blocks.0.hook_resid_post"));
}

#[test]
fn gradients_reach_every_weight_of_a_port_built_from_a_var_map() {
    let json = r#"{"model_type":"gpt2","vocab_size":40,"n_positions":16,"n_embd":16,"n_layer":2,"n_head":4}"#;
    let cfg = auto_hook_models::ArchConfig::from_json(json).unwrap();
    let map = candle_nn::VarMap::new();
    let vb = candle_nn::VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
    let model = auto_hook_models::from_var_builder(cfg, vb).unwrap();
    let ids = tokens(2, 8);
    let logits = model.forward(&ids, None).unwrap();
    let loss = auto_hook_models::next_token_log_probs(&logits, &ids)
        .unwrap()
        .mean_all()
        .unwrap();
    let grads = loss.backward().unwrap();
    let data = map.data().lock().unwrap();
    assert!(
        data.contains_key("transformer.h.1.attn.c_attn.weight"),
        "HF names: {:?}",
        data.keys()
    );
    for (name, var) in data.iter() {
        common::assert_nonzero_grad(&grads, var.as_tensor(), name);
    }
}

#[test]
fn port_weight_gradients_match_finite_differences() {
    let json = r#"{"model_type":"gpt2","vocab_size":40,"n_positions":16,"n_embd":16,"n_layer":2,"n_head":4}"#;
    let cfg = auto_hook_models::ArchConfig::from_json(json).unwrap();
    let map = candle_nn::VarMap::new();
    let vb = candle_nn::VarBuilder::from_varmap(&map, DType::F64, &Device::Cpu);
    // Creates the variables, then gives them seeded weights larger than GPT-2's init (so
    // attention is far from uniform) and norm gains near 1.
    auto_hook_models::from_var_builder(cfg.clone(), vb).unwrap();
    let mut g = Gauss::new(7);
    let mut vars: Vec<_> = map.data().lock().unwrap().clone().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, var) in vars {
        let gain = name.contains("ln_") && name.ends_with(".weight");
        let values = g.values(var.elem_count(), if gain { 0.1 } else { 0.3 });
        let values: Vec<f64> = values.into_iter().map(|v| v + f64::from(gain)).collect();
        var.set(&Tensor::from_vec(values, var.shape(), &Device::Cpu).unwrap())
            .unwrap();
    }
    let ids = tokens(2, 8);
    let targets = ids
        .narrow(1, 1, 7)
        .unwrap()
        .unsqueeze(2)
        .unwrap()
        .contiguous()
        .unwrap();
    let loss = |m: &HookedTransformer| {
        let logits = m.forward(&ids, None).unwrap().narrow(1, 0, 7).unwrap();
        let log_probs = candle_nn::ops::log_softmax(&logits, candle_core::D::Minus1).unwrap();
        log_probs.gather(&targets, 2).unwrap().mean_all().unwrap()
    };
    // The model holds transposed copies of Conv1D weights: rebuild it after each change.
    let rebuild = || {
        auto_hook_models::from_var_builder(
            cfg.clone(),
            candle_nn::VarBuilder::from_varmap(&map, DType::F64, &Device::Cpu),
        )
        .unwrap()
    };
    let grads = loss(&rebuild()).backward().unwrap();
    let data = map.data().lock().unwrap().clone();
    for (name, (r, c)) in [
        ("transformer.h.0.attn.c_attn.weight", (3, 5)),
        ("transformer.h.1.attn.c_attn.weight", (2, 20)),
        ("transformer.wpe.weight", (4, 1)),
    ] {
        let var = &data[name];
        let analytic = grads
            .get(var.as_tensor())
            .unwrap()
            .i((r, c))
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        let original = var.as_tensor().copy().unwrap();
        let nudge = |eps: f64| {
            let mut v = original.to_vec2::<f64>().unwrap();
            v[r][c] += eps;
            var.set(&Tensor::new(v, &Device::Cpu).unwrap()).unwrap();
            loss(&rebuild()).to_scalar::<f64>().unwrap()
        };
        let numeric = (nudge(1e-5) - nudge(-1e-5)) / 2e-5;
        var.set(&original).unwrap();
        assert!(
            (numeric - analytic).abs() <= 1e-4 * analytic.abs().max(1e-3),
            "{name}[{r},{c}]: analytic {analytic} numeric {numeric}"
        );
    }
}
