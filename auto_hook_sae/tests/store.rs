//! The activation store: stops at the hook, handles every activation layout, shuffles
//! deterministically, and refuses bad input with a clear error.

use auto_hook::prelude::*;
use auto_hook_models::induction::repeated_tokens;
use auto_hook_models::HookedTransformer;
use auto_hook_sae::{ActivationStore, HookSpec, Layout, StoreConfig, TokenSource};
use candle_core::{DType, Device, Tensor};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn model() -> HookedTransformer {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/induction-2l");
    auto_hook_models::load(dir, DType::F32, &Device::Cpu).unwrap()
}

fn tokens(n: usize, seed: u64) -> TokenSource {
    TokenSource::from_tensor(&repeated_tokens(n, 10, 64, seed).unwrap(), 21, None).unwrap()
}

fn small() -> StoreConfig {
    StoreConfig {
        store_batch_size_prompts: 4,
        n_batches_in_buffer: 2,
        train_batch_size_tokens: 32,
        ..Default::default()
    }
}

fn forward(m: &HookedTransformer, ids: &Tensor) -> candle_core::Result<Tensor> {
    m.forward(ids, None)
}

#[test]
fn later_layers_never_run_while_the_store_reads_block_0() {
    let mut model = model();
    let later = Arc::new(AtomicUsize::new(0));
    let counter = later.clone();
    model
        .add_hook("blocks.1.hook_resid_post", move |_, _| {
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    let ids = repeated_tokens(2, 10, 64, 1).unwrap();
    model.forward(&ids, None).unwrap();
    assert_eq!(
        later.load(Ordering::SeqCst),
        1,
        "the counter works on a full forward"
    );
    let mut store = ActivationStore::new(
        &model,
        forward,
        tokens(16, 2),
        vec![HookSpec::new("blocks.0.hook_resid_post")],
        small(),
    )
    .unwrap();
    for _ in 0..5 {
        assert_eq!(store.next_batch().unwrap()[0].dims(), [32, 64]);
    }
    assert!(store.tokens_seen() > 0);
    assert_eq!(
        later.load(Ordering::SeqCst),
        1,
        "block 1 ran during activation collection"
    );
}

#[test]
fn attention_heads_are_flattened_like_hook_z_or_taken_one_at_a_time() {
    let model = model();
    let specs = vec![
        HookSpec::new("blocks.0.attn.hook_z").layout(Layout::HookZ),
        HookSpec::new("blocks.0.attn.hook_z").layout(Layout::Head(3)),
        HookSpec::new("blocks.0.hook_resid_pre"),
    ];
    let store = ActivationStore::new(&model, forward, tokens(4, 3), specs, small()).unwrap();
    let ids = store.tokens().batch(0, 2).unwrap();
    let rows = store.activations(&ids).unwrap();
    assert_eq!(rows[0].dims(), [42, 64]);
    assert_eq!(rows[1].dims(), [42, 16]);
    // Head 3 is the last 16 columns of the hook_z flattening.
    let tail = rows[0].narrow(1, 48, 16).unwrap();
    assert!(auto_hook::bit_identical(&tail, &rows[1]).unwrap());
    assert_eq!(rows[2].dims(), [42, 64]);
}

#[test]
fn batches_are_seeded_shuffled_and_row_aligned_across_hooks() {
    let model = model();
    let specs = || {
        vec![
            HookSpec::new("hook_embed"),
            HookSpec::new("embed.hook_point"),
        ]
    };
    let run = |seed: u64| {
        let cfg = StoreConfig { seed, ..small() };
        let mut store = ActivationStore::new(&model, forward, tokens(16, 4), specs(), cfg).unwrap();
        (0..4)
            .map(|_| store.next_batch().unwrap())
            .collect::<Vec<_>>()
    };
    let (a, b, c) = (run(1), run(1), run(2));
    let same = |x: &Tensor, y: &Tensor| auto_hook::bit_identical(x, y).unwrap();
    for i in 0..4 {
        assert!(same(&a[i][0], &b[i][0]), "same seed, same batch {i}");
        assert!(
            same(&a[i][0], &a[i][1]),
            "rows of both hooks come from the same tokens"
        );
    }
    assert!(
        !same(&a[0][0], &c[0][0]),
        "another seed shuffles differently"
    );
}

#[test]
fn rank_2_activations_are_rows_already() {
    #[auto_hook]
    struct Pool {
        proj: candle_nn::Linear,
    }
    #[auto_hook]
    impl Pool {
        fn new(vb: candle_nn::VarBuilder) -> candle_core::Result<Self> {
            Ok(Self {
                proj: candle_nn::linear(1, 6, vb.pp("proj"))?,
            })
        }
        fn forward(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
            let x = ids.to_dtype(DType::F32)?.mean_keepdim(1)?; // [batch, 1]
            candle_core::Module::forward(&self.proj, &x)
        }
    }
    let map = candle_nn::VarMap::new();
    let pool = Pool::new(candle_nn::VarBuilder::from_varmap(
        &map,
        DType::F32,
        &Device::Cpu,
    ))
    .unwrap();
    let store = |exclude: Vec<u32>| {
        let cfg = StoreConfig {
            train_batch_size_tokens: 3,
            exclude_special_tokens: exclude,
            ..small()
        };
        ActivationStore::new(
            &pool,
            |m: &Pool, ids: &Tensor| m.forward(ids),
            tokens(8, 5),
            vec![HookSpec::new("proj.hook_point")],
            cfg,
        )
        .unwrap()
    };
    assert_eq!(store(vec![]).next_batch().unwrap()[0].dims(), [3, 6]);
    // One row per sequence has no token to exclude by: an error naming the hook.
    let err = store(vec![0]).next_batch().unwrap_err().to_string();
    assert!(
        err.contains("`proj.hook_point`") && err.contains("one row per token"),
        "{err}"
    );
}

#[test]
fn bad_hooks_and_bad_activations_are_clear_errors() {
    let model = model();
    let err = ActivationStore::new(
        &model,
        forward,
        tokens(4, 6),
        vec![HookSpec::new("blocks.0.hook_resid_pots")],
        small(),
    )
    .err()
    .unwrap();
    assert!(
        err.to_string()
            .contains("did you mean one of `blocks.0.hook_resid_post`"),
        "{err}"
    );

    let store = ActivationStore::new(
        &model,
        forward,
        tokens(4, 6),
        vec![HookSpec::new("blocks.0.attn.hook_z")],
        small(),
    )
    .unwrap();
    let err = store
        .activations(&store.tokens().batch(0, 2).unwrap())
        .unwrap_err()
        .to_string();
    assert!(err.contains("use Layout::HookZ or Layout::Head"), "{err}");

    let rank5 = Tensor::zeros((1, 2, 3, 4, 5), DType::F32, &Device::Cpu).unwrap();
    let err = HookSpec::new("x")
        .rows(&rank5, false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unsupported rank 5"), "{err}");

    let nan = (Tensor::ones((2, 3, 4), DType::F32, &Device::Cpu).unwrap() * f64::NAN).unwrap();
    let err = HookSpec::new("blocks.0.hook_resid_post")
        .rows(&nan, false)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "the activation at `blocks.0.hook_resid_post` contains NaN or infinite values"
    );
}

/// `exclude_special_tokens` drops exactly the rows at those token ids (with and without
/// `skip_first_position`), and a list that excludes every token is an error, not a hang.
#[test]
fn excluded_tokens_leave_exactly_their_rows_out() {
    let model = model();
    let hooks = || vec![HookSpec::new("blocks.0.hook_resid_post")];
    for skip in [false, true] {
        let cfg = |exclude: Vec<u32>| StoreConfig {
            skip_first_position: skip,
            exclude_special_tokens: exclude,
            ..small()
        };
        let all =
            ActivationStore::new(&model, forward, tokens(8, 5), hooks(), cfg(vec![])).unwrap();
        let ids = all.tokens().batch(0, 3).unwrap();
        let flat: Vec<u32> = match skip {
            true => ids.narrow(1, 1, 20).unwrap(),
            false => ids.clone(),
        }
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
        let excluded = vec![flat[0], flat[7]];
        let keep: Vec<u32> = (0..flat.len() as u32)
            .filter(|&i| !excluded.contains(&flat[i as usize]))
            .collect();
        assert!(keep.len() < flat.len() - 1, "the test excludes something");
        let some =
            ActivationStore::new(&model, forward, tokens(8, 5), hooks(), cfg(excluded)).unwrap();
        let want = all.activations(&ids).unwrap()[0]
            .index_select(&Tensor::new(keep.as_slice(), &Device::Cpu).unwrap(), 0)
            .unwrap();
        let got = some.activations(&ids).unwrap().remove(0);
        assert_eq!(got.dims(), want.dims(), "skip={skip}");
        assert_eq!(auto_hook::max_abs_diff(&got, &want).unwrap(), 0.0);
    }
    let every: Vec<u32> = (0..64).collect();
    let cfg = StoreConfig {
        exclude_special_tokens: every,
        ..small()
    };
    let mut store = ActivationStore::new(&model, forward, tokens(8, 5), hooks(), cfg).unwrap();
    let err = store.next_batch().unwrap_err().to_string();
    assert!(err.contains("excludes every token"), "{err}");
}
