//! Mixtral (sparse mixture of experts) against Hugging Face transformers on a tiny
//! checkpoint (`scripts/make_fixtures.py mixtral`, committed): parity in both checkpoint
//! layouts, the MoE hook points, routing edits, the load-balancing loss.

mod common;

use auto_hook::prelude::*;
use auto_hook_models::{
    compare_with_reference, from_var_builder, load, ArchConfig, GenerateOptions, HookedTransformer,
    KvCache,
};
use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::VarBuilder;
use common::{max_diff, reference_ids as ids};
use std::collections::HashMap;
use std::path::PathBuf;

fn folder() -> PathBuf {
    common::fixture_folder("mixtral")
}

fn fixture() -> (HookedTransformer, HashMap<String, Tensor>) {
    let model = load(folder(), DType::F32, &Device::Cpu).unwrap();
    (model, common::reference(&folder()))
}

fn assert_parity(model: &HookedTransformer, reference: &HashMap<String, Tensor>) {
    let comparison = compare_with_reference(model, reference).unwrap();
    for (key, hook, diff) in &comparison.diffs {
        assert!(*diff <= 1e-4, "{key} (hook {hook}) differs by {diff}");
    }
    let keys: Vec<&str> = comparison.diffs.iter().map(|d| d.0.as_str()).collect();
    for key in ["logits", "hidden_states.0", "hidden_states.2", "model.norm"] {
        assert!(keys.contains(&key), "{key} not compared: {keys:?}");
    }
    for i in 0..2 {
        for sub in ["", ".self_attn", ".mlp", ".mlp.gate", ".input_layernorm"] {
            let key = format!("model.layers.{i}{sub}");
            assert!(keys.contains(&key.as_str()), "{key} not compared");
        }
    }
}

#[test]
fn mixtral_legacy_checkpoint_matches_hugging_face_within_1e_4() {
    let (model, reference) = fixture();
    assert_eq!(model.config().sliding_window, Some(4));
    assert_parity(&model, &reference);
}

/// The fused transformers-5 names, built from the legacy file exactly as transformers'
/// conversion mapping does (`gate_up_proj[e] = cat(w1, w3)`, `down_proj[e] = w2`).
#[test]
fn mixtral_fused_transformers_5_layout_matches_hugging_face_within_1e_4() {
    let saved =
        candle_core::safetensors::load(folder().join("model.safetensors"), &Device::Cpu).unwrap();
    let mut fused: HashMap<String, Tensor> = HashMap::new();
    for (name, t) in &saved {
        if !name.contains("block_sparse_moe") {
            fused.insert(name.clone(), t.clone());
        }
    }
    for i in 0..2 {
        let p = format!("model.layers.{i}");
        let get = |e: usize, w: &str| {
            saved[&format!("{p}.block_sparse_moe.experts.{e}.{w}.weight")].clone()
        };
        let gate_up: Vec<Tensor> = (0..4)
            .map(|e| Tensor::cat(&[get(e, "w1"), get(e, "w3")], 0).unwrap())
            .collect();
        let down: Vec<Tensor> = (0..4).map(|e| get(e, "w2")).collect();
        fused.insert(
            format!("{p}.mlp.experts.gate_up_proj"),
            Tensor::stack(&gate_up, 0).unwrap(),
        );
        fused.insert(
            format!("{p}.mlp.experts.down_proj"),
            Tensor::stack(&down, 0).unwrap(),
        );
        fused.insert(
            format!("{p}.mlp.gate.weight"),
            saved[&format!("{p}.block_sparse_moe.gate.weight")].clone(),
        );
    }
    let cfg =
        ArchConfig::from_json(&std::fs::read_to_string(folder().join("config.json")).unwrap())
            .unwrap();
    let vb = VarBuilder::from_tensors(fused, DType::F32, &Device::Cpu);
    let model = from_var_builder(cfg, vb).unwrap();
    let (_, reference) = fixture();
    assert_parity(&model, &reference);
}

#[test]
fn moe_hook_points_fire_once_with_transformer_lens_shapes() {
    let (model, reference) = fixture();
    let ids = ids(&reference);
    let mut seen: HashMap<String, (usize, Vec<usize>)> = HashMap::new();
    let hooks = Hooks::new().add("**", |x, h| {
        let entry = seen.entry(h.name().to_owned()).or_default();
        entry.0 += 1;
        entry.1 = x.dims().to_vec();
    });
    model
        .run_with_hooks(hooks, |m| m.forward(&ids, None))
        .unwrap();
    let tokens = 14;
    for i in 0..2 {
        let p = format!("blocks.{i}.mlp");
        let shape = |n: &str| seen[&format!("{p}.{n}")].clone();
        assert_eq!(shape("router.hook_point"), (1, vec![tokens, 4]));
        assert_eq!(shape("hook_expert_weights"), (1, vec![tokens, 4]));
        assert_eq!(shape("hook_expert_indices"), (1, vec![tokens, 2]));
        assert_eq!(shape("hook_point"), (1, vec![2, 7, 32]));
        assert_eq!(seen[&format!("blocks.{i}.hook_mlp_out")].0, 1);
        let mut routed = 0;
        for e in 0..4 {
            let Some((count, dims)) = seen.get(&format!("{p}.experts.{e}.hook_gate")) else {
                continue;
            };
            assert_eq!(*count, 1);
            assert_eq!(dims[1], 32);
            for point in ["hook_pre", "hook_post", "w_out.hook_point"] {
                assert_eq!(seen[&format!("{p}.experts.{e}.{point}")].1[0], dims[0]);
            }
            routed += dims[0];
        }
        assert_eq!(
            routed,
            tokens * 2,
            "layer {i}: every token goes to 2 experts"
        );
    }
    // Every point of the type's name list exists on the model.
    let names = model.hook_point_names();
    assert!(names
        .iter()
        .any(|n| n == "blocks.1.mlp.experts.3.hook_post"));
    assert!(!names.iter().any(|n| n.starts_with("blocks.0.mlp.hook_pre")));
}

#[test]
fn expert_weights_are_an_f32_softmax_and_indices_its_top_2() {
    let (model, reference) = fixture();
    let (_, cache) = model
        .run_with_cache("blocks.0.mlp.*", |m| m.forward(&ids(&reference), None))
        .unwrap();
    let w = cache.get("blocks.0.mlp.hook_expert_weights").unwrap();
    assert_eq!(w.dtype(), DType::F32);
    let sums = w.sum(1).unwrap().to_vec1::<f32>().unwrap();
    assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-5), "{sums:?}");
    let w = w.to_vec2::<f32>().unwrap();
    let idx = cache.get("blocks.0.mlp.hook_expert_indices").unwrap();
    for (row, chosen) in w.iter().zip(idx.to_vec2::<u32>().unwrap()) {
        let mut order: Vec<usize> = (0..4).collect();
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
        assert_eq!(chosen, [order[0] as u32, order[1] as u32]);
    }
}

fn ablate_expert_3() -> Hooks<'static> {
    common::ablate_expert(3, 4)
}

#[test]
fn zeroing_expert_3_weights_reroutes_every_token_and_its_hooks_do_not_fire() {
    let (model, reference) = fixture();
    let ids = ids(&reference);
    let (_, clean) = model
        .run_with_cache("blocks.*.mlp.hook_expert_indices", |m| {
            m.forward(&ids, None)
        })
        .unwrap();
    let uses_3 = |c: &ActivationCache, i: usize| {
        let idx = c
            .get(&format!("blocks.{i}.mlp.hook_expert_indices"))
            .unwrap();
        idx.flatten_all()
            .unwrap()
            .to_vec1::<u32>()
            .unwrap()
            .contains(&3)
    };
    assert!(
        uses_3(&clean, 0) || uses_3(&clean, 1),
        "the fixture must use expert 3"
    );
    let mut fired = Vec::new();
    let hooks = ablate_expert_3().add("blocks.*.mlp.experts.3.**", |_, h| {
        fired.push(h.name().to_owned())
    });
    let ablated = model
        .run_with_hooks(hooks, |m| m.forward(&ids, None))
        .unwrap();
    assert!(
        fired.is_empty(),
        "an expert with no tokens fires nothing: {fired:?}"
    );
    let (again, cache) = model
        .run_with_hooks(ablate_expert_3(), |m| {
            m.run_with_cache("blocks.*.mlp.hook_expert_indices", |m| {
                m.forward(&ids, None)
            })
        })
        .unwrap();
    assert!(!uses_3(&cache, 0) && !uses_3(&cache, 1));
    assert_eq!(max_diff(&ablated, &again), 0.0);
    let (clean_logits, _) = fixture();
    let clean_logits = clean_logits.forward(&ids, None).unwrap();
    assert!(
        max_diff(&clean_logits, &ablated) > 1e-3,
        "ablation changed nothing"
    );
}

#[test]
fn rewriting_expert_indices_sends_tokens_to_the_named_expert() {
    let (model, reference) = fixture();
    let ids = ids(&reference);
    let mut rows = Vec::new();
    let hooks = Hooks::new()
        .add("blocks.0.mlp.hook_expert_indices", |idx, _| {
            let (t, k) = idx.dims2()?;
            Tensor::from_vec(vec![[1u32, 2]; t].concat(), (t, k), idx.device())
        })
        .add("blocks.0.mlp.experts.*.hook_gate", |x, h| {
            rows.push((h.name().to_owned(), x.dim(0).unwrap()))
        });
    model
        .run_with_hooks(hooks, |m| m.forward(&ids, None))
        .unwrap();
    rows.sort();
    assert_eq!(
        rows,
        [
            ("blocks.0.mlp.experts.1.hook_gate".to_owned(), 14),
            ("blocks.0.mlp.experts.2.hook_gate".to_owned(), 14)
        ]
    );
}

#[test]
fn identity_hooks_on_every_point_are_bit_identical() {
    let (model, reference) = fixture();
    let ids = ids(&reference);
    let plain = model.forward(&ids, None).unwrap();
    let hooked = model
        .run_with_hooks(Hooks::new().add("**", |x, _| x.clone()), |m| {
            m.forward(&ids, None)
        })
        .unwrap();
    let bits = |t: &Tensor| -> Vec<u32> {
        let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        v.iter().map(|x| x.to_bits()).collect()
    };
    assert_eq!(bits(&plain), bits(&hooked));
}

#[test]
fn router_aux_loss_matches_hugging_face_load_balancing_loss() {
    let (model, reference) = fixture();
    let (_, cache) = model
        .run_with_cache("blocks.*.mlp.router.hook_point", |m| {
            m.forward(&ids(&reference), None)
        })
        .unwrap();
    let theirs = |k: &str| reference[k].to_vec1::<f32>().unwrap()[0];
    let ours = model.router_aux_loss(&cache, None).unwrap();
    let ours = ours.to_scalar::<f32>().unwrap();
    assert!((ours - theirs("aux_loss")).abs() < 1e-5, "{ours}");
    let mask = &reference["aux_mask"];
    let masked = model.router_aux_loss(&cache, Some(mask)).unwrap();
    let masked = masked.to_scalar::<f32>().unwrap();
    assert!(
        (masked - theirs("aux_loss_masked")).abs() < 1e-5,
        "{masked}"
    );
    assert!((masked - ours).abs() > 1e-6, "the mask changed nothing");
    assert_eq!(
        model.config().moe.as_ref().unwrap().router_aux_loss_coef,
        0.001
    );
}

#[test]
fn cached_generation_equals_the_full_forward() {
    let (model, reference) = fixture();
    let ids = ids(&reference).i((0..1, ..)).unwrap();
    let full = model.forward(&ids, None).unwrap();
    let mut cache = KvCache::new(2);
    let first = model
        .forward_with_cache(&ids.narrow(1, 0, 5).unwrap(), None, &mut cache)
        .unwrap();
    let rest = model
        .forward_with_cache(&ids.narrow(1, 5, 2).unwrap(), None, &mut cache)
        .unwrap();
    let stepped = Tensor::cat(&[first, rest], 1).unwrap();
    assert!(max_diff(&full, &stepped) < 1e-4);
    let out = model
        .generate(&ids, None, &GenerateOptions::default())
        .unwrap();
    assert!(out.dim(1).unwrap() > 7);
}

#[test]
fn bad_mixtral_configs_are_refused_with_the_field_named() {
    let base = r#""model_type":"mixtral","vocab_size":10,"hidden_size":8,"intermediate_size":16,
        "num_hidden_layers":1,"num_attention_heads":2"#;
    let err = ArchConfig::from_json(&format!("{{{base}}}")).unwrap_err();
    assert!(err.to_string().contains("num_local_experts"), "{err}");
    let too_many = format!("{{{base},\"num_local_experts\":2,\"num_experts_per_tok\":3}}");
    let err = ArchConfig::from_json(&too_many).unwrap_err();
    assert!(err.to_string().contains("num_experts_per_tok 3"), "{err}");
    let act = format!(
        "{{{base},\"num_local_experts\":2,\"num_experts_per_tok\":1,\"hidden_act\":\"swiglu9\"}}"
    );
    let err = ArchConfig::from_json(&act).unwrap_err();
    assert!(err.to_string().contains("swiglu9"), "{err}");
}

#[test]
fn a_checkpoint_with_a_missing_expert_or_a_wrong_shape_is_refused() {
    let saved =
        candle_core::safetensors::load(folder().join("model.safetensors"), &Device::Cpu).unwrap();
    let cfg =
        ArchConfig::from_json(&std::fs::read_to_string(folder().join("config.json")).unwrap())
            .unwrap();
    let missing = "model.layers.1.block_sparse_moe.experts.2.w3.weight";
    let mut tensors = saved.clone();
    tensors.remove(missing);
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
    let err = from_var_builder(cfg.clone(), vb).unwrap_err().to_string();
    assert!(err.contains("experts.2.w3.weight"), "{err}");
    let mut tensors = saved;
    let gate = "model.layers.0.block_sparse_moe.gate.weight";
    tensors.insert(
        gate.into(),
        Tensor::zeros((3, 32), DType::F32, &Device::Cpu).unwrap(),
    );
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
    let err = from_var_builder(cfg, vb).unwrap_err().to_string();
    assert!(
        err.contains("gate.weight") && err.contains("shape"),
        "{err}"
    );
}

#[test]
fn bf16_mixtral_routes_in_f32_and_stays_close_to_f32() {
    let (model, reference) = fixture();
    let half = load(folder(), DType::BF16, &Device::Cpu).unwrap();
    let ids = ids(&reference);
    let (logits, cache) = half
        .run_with_cache("blocks.0.mlp.hook_expert_weights", |m| {
            m.forward(&ids, None)
        })
        .unwrap();
    assert_eq!(logits.dtype(), DType::BF16);
    let weights = cache.get("blocks.0.mlp.hook_expert_weights").unwrap();
    assert_eq!(weights.dtype(), DType::F32);
    let full = model.forward(&ids, None).unwrap();
    let diff = max_diff(&full, &logits.to_dtype(DType::F32).unwrap());
    assert!(diff < 0.2, "bf16 logits differ from f32 by {diff}");
}

#[test]
fn gradients_flow_through_routing_experts_and_the_aux_loss() {
    let text = std::fs::read_to_string(folder().join("config.json")).unwrap();
    let cfg = ArchConfig::from_json(&text).unwrap();
    let varmap = candle_nn::VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let model = from_var_builder(cfg, vb).unwrap();
    let (_, reference) = fixture();
    let (logits, cache) = model
        .run_with_cache("blocks.*.mlp.router.hook_point", |m| {
            m.forward(&ids(&reference), None)
        })
        .unwrap();
    let aux = model.router_aux_loss(&cache, None).unwrap();
    let loss = (logits.sqr().unwrap().mean_all().unwrap() + (aux * 0.01).unwrap()).unwrap();
    let grads = loss.backward().unwrap();
    let vars = varmap.data().lock().unwrap();
    for name in [
        "model.layers.0.block_sparse_moe.gate.weight",
        "model.layers.1.block_sparse_moe.experts.0.w2.weight",
    ] {
        common::assert_nonzero_grad(&grads, vars[name].as_tensor(), name);
    }
}

#[test]
fn an_edited_expert_index_out_of_range_is_a_clear_error() {
    let (model, reference) = fixture();
    let hooks = Hooks::new().add("blocks.1.mlp.hook_expert_indices", |idx, _| {
        idx.ones_like()? * 7.0
    });
    let err = model
        .run_with_hooks(hooks, |m| m.forward(&ids(&reference), None))
        .unwrap_err()
        .to_string();
    assert!(err.contains("outside 0..4"), "{err}");
}

#[test]
fn moe_names_are_compile_checked_on_the_shared_model_type() {
    const WEIGHTS: &str = hook_name!(HookedTransformer, "blocks.0.mlp.hook_expert_weights");
    const EXPERT: &str = hook_name!(HookedTransformer, "blocks.1.mlp.experts.3.hook_post");
    const DENSE: &str = hook_name!(HookedTransformer, "blocks.0.mlp.hook_pre_linear");
    let (model, _) = fixture();
    let names = model.hook_point_names();
    assert!(names.iter().any(|n| n == WEIGHTS) && names.iter().any(|n| n == EXPERT));
    assert!(
        !names.iter().any(|n| n == DENSE),
        "a Mixtral block has no dense MLP points"
    );
}

#[test]
fn routing_equals_hugging_face_top_k_experts_and_weights() {
    let (model, reference) = fixture();
    let (_, cache) = model
        .run_with_cache("blocks.*.mlp.hook_expert_*", |m| {
            m.forward(&ids(&reference), None)
        })
        .unwrap();
    for i in 0..2 {
        let ours = cache
            .get(&format!("blocks.{i}.mlp.hook_expert_indices"))
            .unwrap();
        let theirs = reference[&format!("router.{i}.indices")]
            .to_dtype(DType::U32)
            .unwrap();
        assert_eq!(
            ours.to_vec2::<u32>().unwrap(),
            theirs.to_vec2::<u32>().unwrap(),
            "layer {i}: chosen experts"
        );
        let probs = cache
            .get(&format!("blocks.{i}.mlp.hook_expert_weights"))
            .unwrap();
        let top = probs.gather(ours, 1).unwrap();
        let top = top.broadcast_div(&top.sum_keepdim(1).unwrap()).unwrap();
        let diff = max_diff(&top, &reference[&format!("router.{i}.weights")]);
        assert!(diff < 1e-6, "layer {i}: routing weights differ by {diff}");
    }
}
