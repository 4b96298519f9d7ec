//! Gemma 2 on its committed fixture (`scripts/make_fixtures.py gemma2`): layers full,
//! sliding (window 3), sliding; attention soft-cap 2, final soft-cap 3; head_dim 12.

mod common;

use auto_hook::prelude::*;
use auto_hook_models::{load, ArchConfig, Eos, GenerateOptions, HookedTransformer, KvCache};
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
