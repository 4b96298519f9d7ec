//! `hook_result` (TransformerLens's `use_attn_result`): off by default; when on, each
//! head's output `z · W_O[head]`, whose sum over heads plus `b_O` is `hook_attn_out`, and
//! an edit there acts like the same edit of that head's `hook_z`.

mod common;

use auto_hook::prelude::*;
use auto_hook_models::{load, HookedTransformer};
use candle_core::{DType, Device, IndexOp, Tensor};
use common::{fixture_folder, max_diff, tokens};

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

/// Zeroes `head` on axis 2 of a `[batch, pos, head, _]` activation.
fn zero_head(x: &Tensor, head: usize) -> candle_core::Result<Tensor> {
    let n = x.dim(2)?;
    let keep: Vec<f32> = (0..n).map(|h| f32::from(h != head)).collect();
    x.broadcast_mul(&Tensor::from_vec(keep, (1, 1, n, 1), x.device())?)
}

#[test]
fn attn_result_is_each_heads_output_and_off_by_default() {
    for (what, mut model) in models() {
        let ids = tokens(2, 7)
            .clamp(0u32, model.config().vocab_size as u32 - 1)
            .unwrap();
        let has_result = |m: &HookedTransformer| {
            m.hook_point_names()
                .iter()
                .any(|n| n.ends_with("hook_result"))
        };
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
        let scale = plain
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
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
