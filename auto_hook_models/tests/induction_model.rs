//! The embedded demo model (`models/induction-2l`, made by
//! `examples/train_induction.rs`) loads through the Hugging Face loader and has the
//! induction circuit the quickstart shows: a previous-token head in layer 0, induction
//! heads in layer 1, and zeroing them through `hook_z` destroys the repeat's loss.

use auto_hook::prelude::*;
use auto_hook_models::induction::{induction_scores, previous_token_scores, repeated_tokens};
use auto_hook_models::{next_token_log_probs, HookedTransformer};
use candle_core::{DType, Device, Tensor};
use std::path::Path;

const HALF: usize = 10;

fn model() -> HookedTransformer {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/induction-2l");
    auto_hook_models::load(dir, DType::F32, &Device::Cpu).unwrap()
}

fn loss(logits: &Tensor, tokens: &Tensor, from: usize, len: usize) -> f32 {
    let lp = next_token_log_probs(logits, tokens).unwrap();
    -lp.narrow(1, from, len)
        .unwrap()
        .mean_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn the_demo_model_has_an_induction_circuit() {
    let model = model();
    let cfg = model.config().clone();
    assert_eq!((cfg.n_layers, cfg.vocab_size), (2, 64));
    let tokens = repeated_tokens(32, HALF, cfg.vocab_size, 11).unwrap();
    let (logits, cache) = model
        .run_with_cache(CacheOptions::names("blocks.*.attn.hook_pattern"), |m| {
            m.forward(&tokens, None)
        })
        .unwrap();
    let prev = previous_token_scores(cache.get("blocks.0.attn.hook_pattern").unwrap()).unwrap();
    let induction =
        induction_scores(cache.get("blocks.1.attn.hook_pattern").unwrap(), HALF).unwrap();
    let layer0_induction =
        induction_scores(cache.get("blocks.0.attn.hook_pattern").unwrap(), HALF).unwrap();
    let max = |v: &[f32]| v.iter().cloned().fold(f32::MIN, f32::max);
    assert!(
        max(&prev) > 0.25,
        "no previous-token head in layer 0: {prev:?}"
    );
    assert!(
        max(&induction) > 0.5,
        "no induction head in layer 1: {induction:?}"
    );
    // One layer cannot do induction: layer 0 does not attend to the answer.
    assert!(max(&layer0_induction) < 0.2, "{layer0_induction:?}");

    // The first copy is unpredictable, the repeat nearly certain.
    let first = loss(&logits, &tokens, 0, HALF);
    let repeat = loss(&logits, &tokens, HALF + 1, HALF - 1);
    assert!(first > 3.5, "first copy loss {first}");
    assert!(repeat < 0.5, "repeat loss {repeat}");

    // Zeroing every layer-1 head with a high induction score through a hook brings the
    // repeat's loss back near the first copy's.
    let keep: Vec<f32> = induction.iter().map(|&s| f32::from(s <= 0.3)).collect();
    let keep = Tensor::from_vec(keep, (1, 1, cfg.n_heads, 1), &Device::Cpu).unwrap();
    let hooks = Hooks::new().add("blocks.1.attn.hook_z", move |z, _| z.broadcast_mul(&keep));
    let ablated = model
        .run_with_hooks(hooks, |m| m.forward(&tokens, None))
        .unwrap();
    let repeat_ablated = loss(&ablated, &tokens, HALF + 1, HALF - 1);
    assert!(
        repeat_ablated > repeat + 2.0,
        "ablation raised the repeat loss only from {repeat} to {repeat_ablated}"
    );
    // The hook is gone afterwards: the clean run is unchanged.
    let again = model.forward(&tokens, None).unwrap();
    assert!(auto_hook::bit_identical(&again, &logits).unwrap());
}

#[test]
fn induction_helpers_reject_bad_input() {
    assert!(repeated_tokens(1, 0, 64, 1).is_err());
    assert!(repeated_tokens(1, 64, 64, 1).is_err());
    let a = repeated_tokens(3, 5, 64, 42).unwrap();
    let b = repeated_tokens(3, 5, 64, 42).unwrap();
    let (a, b) = (a.to_vec2::<u32>().unwrap(), b.to_vec2::<u32>().unwrap());
    assert_eq!(a, b, "same seed, same tokens");
    for row in &a {
        assert_eq!(row[0], 0);
        assert_eq!(row[1..6], row[6..11]);
        let mut half = row[1..6].to_vec();
        half.sort();
        half.dedup();
        assert_eq!(half.len(), 5, "tokens of a copy are distinct: {row:?}");
    }
    let square = Tensor::zeros((1, 2, 9, 9), DType::F32, &Device::Cpu).unwrap();
    assert!(
        induction_scores(&square, 5).is_err(),
        "9 positions are not 1 + 2 x 5"
    );
    let cached_step = Tensor::zeros((1, 2, 1, 9), DType::F32, &Device::Cpu).unwrap();
    assert!(previous_token_scores(&cached_step).is_err());
}
