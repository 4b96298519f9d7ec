//! Patching sweeps on the demo model against hand-written loops, and early stopping.

use auto_hook::prelude::*;
use auto_hook_analysis::{logit_diff, Metric, Patching, Point};
use auto_hook_models::HookedTransformer;
use candle_core::{DType, Device, Tensor};
use std::cell::Cell;

fn model() -> HookedTransformer {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/induction-2l");
    auto_hook_models::load(dir, DType::F32, &Device::Cpu).unwrap()
}

/// Clean: `[BOS] a b c a b` → c. Corrupted: the first `b` changed, so induction
/// from the second `b` finds nothing to copy.
fn clean() -> Tensor {
    Tensor::new(
        &[[0u32, 5, 9, 17, 5, 9], [0, 33, 2, 40, 33, 2]],
        &Device::Cpu,
    )
    .unwrap()
}

fn corrupted() -> Tensor {
    Tensor::new(
        &[[0u32, 5, 12, 17, 5, 9], [0, 33, 8, 40, 33, 2]],
        &Device::Cpu,
    )
    .unwrap()
}

fn answers() -> (Tensor, Tensor) {
    let right = Tensor::new(&[17u32, 40], &Device::Cpu).unwrap();
    let wrong = Tensor::new(&[5u32, 33], &Device::Cpu).unwrap();
    (right, wrong)
}

fn mean_diff(logits: &Tensor) -> candle_core::Result<f32> {
    let (right, wrong) = answers();
    logit_diff(logits, -1i64, &right, &wrong)
        .map_err(candle_core::Error::from)?
        .mean_all()?
        .to_scalar::<f32>()
}

/// `x` with `[.., pos, ..]` (axis 1) copied from `src`, by plain vector surgery.
fn copy_position(x: &Tensor, src: &Tensor, pos: usize) -> candle_core::Result<Tensor> {
    let (b, p, d) = x.dims3()?;
    let mut out: Vec<f32> = x.flatten_all()?.to_vec1()?;
    let from: Vec<f32> = src.flatten_all()?.to_vec1()?;
    for batch in 0..b {
        let at = (batch * p + pos) * d;
        out[at..at + d].copy_from_slice(&from[at..at + d]);
    }
    Tensor::from_vec(out, (b, p, d), x.device())
}

#[test]
fn resid_pre_sweep_equals_a_hand_written_loop() {
    let model = model();
    let (_, cache) = model
        .run_with_cache(CacheOptions::all(), |m| m.forward(&clean(), None))
        .unwrap();
    let grid = Patching::new(&model, &corrupted(), &cache, Metric::logits(mean_diff))
        .progress(false)
        .resid_pre_by_pos()
        .unwrap();
    assert_eq!(grid.tensor().dims(), [2, 6]);
    for layer in 0..2 {
        let name = format!("blocks.{layer}.hook_resid_pre");
        let source = cache.get(&name).unwrap();
        for pos in 0..6 {
            let hooks = Hooks::new().add(name.as_str(), |x, _| copy_position(x, source, pos));
            let logits = model
                .run_with_hooks(hooks, |m| m.forward(&corrupted(), None))
                .unwrap();
            let want = mean_diff(&logits).unwrap();
            let got = grid.value(&[layer, pos]).unwrap();
            assert!(
                (got - want).abs() < 1e-5,
                "layer {layer} pos {pos}: {got} vs {want}"
            );
        }
    }
    // Patching the corrupted token's position at layer 0 restores the clean answer.
    let (clean_logits, corrupt_logits) = (
        model.forward(&clean(), None).unwrap(),
        model.forward(&corrupted(), None).unwrap(),
    );
    let (clean_diff, corrupt_diff) = (
        mean_diff(&clean_logits).unwrap(),
        mean_diff(&corrupt_logits).unwrap(),
    );
    assert!(
        clean_diff > corrupt_diff + 1.0,
        "clean {clean_diff} corrupt {corrupt_diff}"
    );
    assert!((grid.value(&[0, 2]).unwrap() - clean_diff).abs() < 1e-4);
    assert!((grid.value(&[0, 4]).unwrap() - corrupt_diff).abs() < 1e-4);
}

#[test]
fn head_sweep_equals_a_hand_written_loop_and_finds_the_induction_heads() {
    let model = model();
    let (_, cache) = model
        .run_with_cache(CacheOptions::all(), |m| m.forward(&clean(), None))
        .unwrap();
    let corrupted = corrupted();
    let patching =
        Patching::new(&model, &corrupted, &cache, Metric::logits(mean_diff)).progress(false);
    let grid = patching.heads_all_pos().unwrap();
    assert_eq!(grid.tensor().dims(), [2, 4]);
    for (layer, head) in [(0usize, 0usize), (1, 2)] {
        let name = format!("blocks.{layer}.attn.hook_z");
        let source = cache.get(&name).unwrap();
        let hooks = Hooks::new().add(name.as_str(), |z, _| {
            let keep: Vec<f32> = (0..4).map(|h| f32::from(h != head)).collect();
            let keep = Tensor::from_vec(keep, (1, 1, 4, 1), &Device::Cpu)?;
            z.broadcast_mul(&keep)? + source.broadcast_mul(&(1.0 - &keep)?)?
        });
        let logits = model
            .run_with_hooks(hooks, |m| m.forward(&corrupted, None))
            .unwrap();
        let want = mean_diff(&logits).unwrap();
        assert!((grid.value(&[layer, head]).unwrap() - want).abs() < 1e-5);
    }
    let by_pos = patching.heads_by_pos().unwrap();
    assert_eq!(by_pos.tensor().dims(), [2, 6, 4]);
    assert_eq!(
        by_pos
            .axes()
            .iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>(),
        ["layer", "pos", "head"]
    );
}

#[test]
fn an_activation_metric_stops_each_forward_and_skips_later_layers() {
    let model = model();
    let (_, cache) = model
        .run_with_cache(CacheOptions::all(), |m| m.forward(&clean(), None))
        .unwrap();
    let calls = Cell::new(0);
    let metric = Metric::activation(Point::ResidPre(1), |x| {
        calls.set(calls.get() + 1);
        x.narrow(1, 5, 1)?.sqr()?.sum_all()?.to_scalar::<f32>()
    });
    let grid = Patching::new(&model, &corrupted(), &cache, metric)
        .progress(false)
        .pos_labels(["BOS", "a", "b", "c", "a", "b"].map(String::from).to_vec())
        .attn_out_by_pos()
        .unwrap();
    // Six layer-0 cells and one unpatched run for layer 1's cells, which cannot reach it.
    assert_eq!(calls.get(), 7);
    assert_eq!(grid.axis("pos").unwrap().labels[2], "b");
    let source = cache.get("blocks.0.hook_attn_out").unwrap();
    for pos in [2usize, 5] {
        let hooks = Hooks::new().add("blocks.0.hook_attn_out", |x, _| {
            copy_position(x, source, pos)
        });
        let (_, c) = model
            .run_with_hooks(hooks, |m| {
                m.run_with_cache("blocks.1.hook_resid_pre", |m| m.forward(&corrupted(), None))
            })
            .unwrap();
        let want: f32 = c
            .get("blocks.1.hook_resid_pre")
            .unwrap()
            .narrow(1, 5, 1)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!((grid.value(&[0, pos]).unwrap() - want).abs() < 1e-3 * want.abs().max(1.0));
    }
    let (_, c) = model
        .run_with_cache("blocks.1.hook_resid_pre", |m| m.forward(&corrupted(), None))
        .unwrap();
    let baseline: f32 = c
        .get("blocks.1.hook_resid_pre")
        .unwrap()
        .narrow(1, 5, 1)
        .unwrap()
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    for pos in 0..6 {
        assert_eq!(grid.value(&[1, pos]).unwrap(), baseline);
    }
}

#[test]
fn a_clean_cache_of_another_length_is_a_clear_error() {
    let model = model();
    let short = Tensor::new(&[[0u32, 5, 9], [0, 33, 2]], &Device::Cpu).unwrap();
    let (_, cache) = model
        .run_with_cache(CacheOptions::all(), |m| m.forward(&short, None))
        .unwrap();
    let err = Patching::new(&model, &corrupted(), &cache, Metric::logits(mean_diff))
        .progress(false)
        .mlp_out_by_pos()
        .unwrap_err()
        .to_string();
    assert!(err.contains("same batch and length"), "{err}");
}
