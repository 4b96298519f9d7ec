//! Per-head points, off by default. `hook_result` (TransformerLens's `use_attn_result`):
//! each head's output `z · W_O[head]`, whose sum over heads plus `b_O` is `hook_attn_out`;
//! an edit there acts like the same edit of that head's `hook_z`. `hook_q/k/v_input`
//! (`use_split_qkv_input`): the residual stream per head; the same logits, and an edit of
//! one head's input reaches that head only.

mod common;

use auto_hook::prelude::*;
use auto_hook_models::{load, HookedTransformer};
use candle_core::{DType, Device, IndexOp, Tensor};
use common::{fixture_folder, max_abs, max_diff, tokens};

fn models() -> Vec<(&'static str, HookedTransformer)> {
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/induction-2l");
    vec![
        (
            "gpt2 demo (biases)",
            load(demo, DType::F32, &Device::Cpu).unwrap(),
        ),
        (
            "llama fixture (GQA)",
            load(fixture_folder("llama"), DType::F32, &Device::Cpu).unwrap(),
        ),
    ]
}

/// Two rows of 7 token ids inside the model's vocabulary.
fn ids_for(model: &HookedTransformer) -> Tensor {
    tokens(2, 7)
        .clamp(0u32, model.config().vocab_size as u32 - 1)
        .unwrap()
}

/// How many listed points contain `part`.
fn points(model: &HookedTransformer, part: &str) -> usize {
    model
        .hook_point_names()
        .iter()
        .filter(|n| n.contains(part))
        .count()
}

/// Zeroes `head` on axis 2 of a `[batch, pos, head, _]` activation.
fn zero_head(x: &Tensor, head: usize) -> candle_core::Result<Tensor> {
    let n = x.dim(2)?;
    let keep: Vec<f32> = (0..n).map(|h| f32::from(h != head)).collect();
    x.broadcast_mul(&Tensor::from_vec(keep, (1, 1, n, 1), x.device())?)
}

#[test]
fn attn_result_is_each_heads_output_and_off_by_default() {
    for (what, mut model) in models() {
        let ids = ids_for(&model);
        let has_result = |m: &HookedTransformer| points(m, "hook_result") > 0;
        assert!(!has_result(&model), "{what}: off by default");
        let plain = model.forward(&ids, None).unwrap();

        model.set_use_attn_result(true);
        assert!(has_result(&model), "{what}");
        let (logits, cache) = model
            .run_with_cache(
                [
                    "blocks.*.attn.hook_z",
                    "blocks.*.attn.hook_result",
                    "blocks.*.hook_attn_out",
                ],
                |m| m.forward(&ids, None),
            )
            .unwrap();
        let scale = max_abs(&plain);
        assert!(
            max_diff(&logits, &plain) < 1e-5 * scale.max(1.0),
            "{what}: same logits"
        );
        for l in 0..model.config().n_layers {
            let result = cache.get(&format!("blocks.{l}.attn.hook_result")).unwrap();
            let (h, d_model) = (model.config().n_heads, model.config().d_model);
            assert_eq!(result.dims(), [2, 7, h, d_model], "{what}");
            let summed = result
                .sum(2)
                .unwrap()
                .broadcast_add(&model.b_o(l).unwrap())
                .unwrap();
            let attn_out = cache.get(&format!("blocks.{l}.hook_attn_out")).unwrap();
            assert!(
                max_diff(&summed, attn_out) < 1e-5,
                "{what} layer {l}: sum of heads"
            );
            // Head by head, from the cached z and W_O.
            let z = cache.get(&format!("blocks.{l}.attn.hook_z")).unwrap();
            let w_o = model.w_o(l).unwrap();
            for head in 0..h {
                let by_hand = z
                    .i((.., .., head, ..))
                    .unwrap()
                    .broadcast_matmul(&w_o.i(head).unwrap())
                    .unwrap();
                let got = result.i((.., .., head, ..)).unwrap();
                assert!(
                    max_diff(&got, &by_hand) < 1e-5,
                    "{what} layer {l} head {head}"
                );
            }
        }

        // Zeroing a head's result acts as zeroing its z.
        let layer = model.config().n_layers - 1;
        let via_result = model
            .run_with_hooks(
                Hooks::new().add(format!("blocks.{layer}.attn.hook_result"), |x, _| {
                    zero_head(x, 1)
                }),
                |m| m.forward(&ids, None),
            )
            .unwrap();
        let via_z = model
            .run_with_hooks(
                Hooks::new().add(format!("blocks.{layer}.attn.hook_z"), |x, _| {
                    zero_head(x, 1)
                }),
                |m| m.forward(&ids, None),
            )
            .unwrap();
        assert!(max_diff(&via_result, &via_z) < 1e-4, "{what}: ablation");
        assert!(
            max_diff(&via_result, &plain) > 1e-3,
            "{what}: the ablation changed something"
        );

        model.set_use_attn_result(false);
        assert!(!has_result(&model), "{what}: off again");
        assert_eq!(
            max_diff(&model.forward(&ids, None).unwrap(), &plain),
            0.0,
            "{what}"
        );
    }
}

#[test]
fn split_qkv_inputs_reach_one_head_each() {
    for (what, mut model) in models() {
        let ids = ids_for(&model);
        let plain = model.forward(&ids, None).unwrap();
        let names = |m: &HookedTransformer| points(m, "_input");
        assert_eq!(names(&model), 0, "{what}: off by default");
        model.set_use_split_qkv_input(true);
        let n_layers = model.config().n_layers;
        assert_eq!(names(&model), 3 * n_layers, "{what}");
        let (h, kv, d) = (
            model.config().n_heads,
            model.config().n_kv_heads,
            model.config().d_model,
        );

        let (logits, clean) = model
            .run_with_cache(
                [
                    "blocks.0.hook_q_input",
                    "blocks.0.hook_k_input",
                    "blocks.0.attn.hook_q",
                    "blocks.0.attn.hook_k",
                ],
                |m| m.forward(&ids, None),
            )
            .unwrap();
        let scale = max_abs(&plain);
        assert!(
            max_diff(&logits, &plain) < 1e-5 * scale.max(1.0),
            "{what}: same logits"
        );
        assert_eq!(
            clean.get("blocks.0.hook_q_input").unwrap().dims(),
            [2, 7, h, d],
            "{what}"
        );
        assert_eq!(
            clean.get("blocks.0.hook_k_input").unwrap().dims(),
            [2, 7, kv, d],
            "{what}"
        );

        // Noise on head 1's query input: only head 1's query moves; keys do not.
        let noise = |x: &Tensor, _: &auto_hook::HookInfo| -> candle_core::Result<Tensor> {
            let n = x.dim(2)?;
            let only: Vec<f32> = (0..n).map(|i| f32::from(i == 1)).collect();
            let only = Tensor::from_vec(only, (1, 1, n, 1), x.device())?;
            x + (x.randn_like(0.0, 1.0)?.broadcast_mul(&only))?
        };
        let (_, edited) = model
            .run_with_hooks(Hooks::new().add("blocks.0.hook_q_input", noise), |m| {
                m.run_with_cache(["blocks.0.attn.hook_q", "blocks.0.attn.hook_k"], |m| {
                    m.forward(&ids, None)
                })
            })
            .unwrap();
        let (q0, q1) = (
            clean.get("blocks.0.attn.hook_q").unwrap(),
            edited.get("blocks.0.attn.hook_q").unwrap(),
        );
        for head in 0..h {
            let moved = max_diff(
                &q0.i((.., .., head, ..)).unwrap(),
                &q1.i((.., .., head, ..)).unwrap(),
            );
            if head == 1 {
                assert!(moved > 1e-2, "{what}: head 1 moved ({moved})");
            } else {
                // (the edited input is a fresh tensor, not a stride-0 view: the same sums in
                // another order, hence not bit for bit)
                assert!(moved < 1e-5, "{what}: head {head} untouched ({moved})");
            }
        }
        let (k0, k1) = (
            clean.get("blocks.0.attn.hook_k").unwrap(),
            edited.get("blocks.0.attn.hook_k").unwrap(),
        );
        assert!(max_diff(k0, k1) < 1e-5, "{what}: keys untouched");

        model.set_use_split_qkv_input(false);
        assert_eq!(names(&model), 0, "{what}: off again");
        assert_eq!(
            max_diff(&model.forward(&ids, None).unwrap(), &plain),
            0.0,
            "{what}"
        );
    }
}
