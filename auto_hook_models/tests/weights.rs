//! TransformerLens weight names: each weight, applied by hand to a cached activation,
//! gives the next cached activation.

mod common;

use auto_hook::prelude::*;
use auto_hook_models::HookedTransformer;
use candle_core::{DType, Device, Module, Tensor, D};
use common::{fixture_folder, max_diff, tokens};

fn model(name: &str) -> HookedTransformer {
    auto_hook_models::load(fixture_folder(name), DType::F32, &Device::Cpu).unwrap()
}

/// `x` `[batch, pos, d_model]` · `w` `[head, d_model, d_head]` + `b` `[head, d_head]`
/// → `[batch, pos, head, d_head]`.
fn per_head(x: &Tensor, w: &Tensor, b: &Tensor) -> Tensor {
    let (bsz, pos, d) = x.dims3().unwrap();
    let (h, _, dh) = w.dims3().unwrap();
    let x = x
        .reshape((1, bsz * pos, d))
        .unwrap()
        .broadcast_as((h, bsz * pos, d))
        .unwrap();
    let y = x.contiguous().unwrap().matmul(w).unwrap(); // [head, bp, d_head]
    let y = y.broadcast_add(&b.unsqueeze(1).unwrap()).unwrap();
    y.transpose(0, 1)
        .unwrap()
        .reshape((bsz, pos, h, dh))
        .unwrap()
}

fn check_weights_rebuild_the_cached_activations(name: &str) {
    let model = model(name);
    let ids = tokens(2, 7);
    let (logits, cache) = model
        .run_with_cache(CacheOptions::all(), |m| m.forward(&ids, None))
        .unwrap();
    let cfg = model.config().clone();
    let groups = cfg.n_heads / cfg.n_kv_heads;
    let embed = model
        .w_e()
        .unwrap()
        .embedding(&ids.flatten_all().unwrap())
        .unwrap();
    let hook_embed = cache.get("hook_embed").unwrap().flatten_to(1).unwrap();
    assert_eq!(max_diff(&embed, &hook_embed), 0.0);
    for l in 0..cfg.n_layers {
        let x = cache.get(&format!("blocks.{l}.ln1.hook_point")).unwrap();
        let q = per_head(x, &model.w_q(l).unwrap(), &model.b_q(l).unwrap());
        let got = cache.get(&format!("blocks.{l}.attn.hook_q")).unwrap();
        assert!(max_diff(&q, got) < 1e-5, "{name} W_Q layer {l}");
        for (w, b, hook) in [
            (model.w_k(l), model.b_k(l), "hook_k"),
            (model.w_v(l), model.b_v(l), "hook_v"),
        ] {
            let y = per_head(x, &w.unwrap(), &b.unwrap());
            // Head `k` of the cache is query head `k * groups` of the expanded weight.
            let idx =
                Tensor::arange_step(0u32, cfg.n_heads as u32, groups as u32, &Device::Cpu).unwrap();
            let y = y.index_select(&idx, 2).unwrap();
            let got = cache.get(&format!("blocks.{l}.attn.{hook}")).unwrap();
            assert!(max_diff(&y, got) < 1e-5, "{name} {hook} layer {l}");
        }
        let z = cache.get(&format!("blocks.{l}.attn.hook_z")).unwrap();
        let (b, p, h, dh) = z.dims4().unwrap();
        let w_o = model
            .w_o(l)
            .unwrap()
            .reshape((h * dh, cfg.d_model))
            .unwrap();
        let out = z
            .reshape((b * p, h * dh))
            .unwrap()
            .matmul(&w_o)
            .unwrap()
            .broadcast_add(&model.b_o(l).unwrap())
            .unwrap();
        let got = cache.get(&format!("blocks.{l}.hook_attn_out")).unwrap();
        assert!(
            max_diff(&out, &got.flatten_to(1).unwrap()) < 1e-5,
            "{name} W_O {l}"
        );
        let post = cache.get(&format!("blocks.{l}.mlp.hook_post")).unwrap();
        let out = post
            .flatten_to(1)
            .unwrap()
            .matmul(&model.w_out(l).unwrap())
            .unwrap()
            .broadcast_add(&model.b_out(l).unwrap())
            .unwrap();
        let got = cache.get(&format!("blocks.{l}.hook_mlp_out")).unwrap();
        assert!(
            max_diff(&out, &got.flatten_to(1).unwrap()) < 1e-5,
            "{name} W_out {l}"
        );
        let ln2 = cache.get(&format!("blocks.{l}.ln2.hook_point")).unwrap();
        let pre_in = ln2
            .flatten_to(1)
            .unwrap()
            .matmul(&model.w_in(l).unwrap())
            .unwrap()
            .broadcast_add(&model.b_in(l).unwrap())
            .unwrap();
        let (pre, linear) = match model.w_gate(l).unwrap() {
            Some(gate) => (
                ln2.flatten_to(1).unwrap().matmul(&gate).unwrap(),
                Some(pre_in),
            ),
            None => (pre_in, None),
        };
        let got = cache.get(&format!("blocks.{l}.mlp.hook_pre")).unwrap();
        assert!(
            max_diff(&pre, &got.flatten_to(1).unwrap()) < 1e-5,
            "{name} W_in/gate {l}"
        );
        if let Some(linear) = linear {
            let got = cache
                .get(&format!("blocks.{l}.mlp.hook_pre_linear"))
                .unwrap();
            assert!(
                max_diff(&linear, &got.flatten_to(1).unwrap()) < 1e-5,
                "{name} W_in {l}"
            );
        }
    }
    // The final norm and the unembedding, called by hand on the last residual stream.
    let last = cache
        .get(&format!("blocks.{}.hook_resid_post", cfg.n_layers - 1))
        .unwrap();
    let normed = model.ln_final().forward(last).unwrap();
    let by_parts = model.unembed().forward(&normed).unwrap();
    assert_eq!(max_diff(&by_parts, &logits), 0.0);
    let by_weights = normed
        .flatten_to(1)
        .unwrap()
        .matmul(&model.w_u().unwrap())
        .unwrap()
        .broadcast_add(&model.b_u().unwrap())
        .unwrap();
    assert!(max_diff(&by_weights, &logits.flatten_to(1).unwrap()) < 1e-5);
    assert_eq!(logits.dim(D::Minus1).unwrap(), cfg.vocab_size);
}

#[test]
fn gpt2_weights_rebuild_every_layer_and_the_logits() {
    check_weights_rebuild_the_cached_activations("gpt2");
    assert!(model("gpt2").w_pos().is_some());
}

#[test]
fn qwen2_weights_with_grouped_kv_heads_and_biases_rebuild_every_layer() {
    check_weights_rebuild_the_cached_activations("qwen2");
}

#[test]
fn llama_weights_rebuild_every_layer_and_rotary_models_have_no_w_pos() {
    check_weights_rebuild_the_cached_activations("llama");
    assert!(model("llama").w_pos().is_none());
}

#[test]
fn a_layer_past_the_last_is_a_clear_error() {
    let err = model("llama").w_q(2).unwrap_err();
    let ours = auto_hook::find_error::<auto_hook_models::Error>(&err);
    assert!(
        matches!(ours, Some(auto_hook_models::Error::Input(_))),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("layer 2 does not exist: the model has 2 layers"),
        "{err}"
    );
}
