//! Per-call hooks: selection forms, edits, and every kind of bad input.

mod common;

use auto_hook::prelude::*;
use auto_hook::Error;
use candle_core::{DType, Device, Tensor};
use common::conformance::same_bits;
use common::models::*;
use std::cell::Cell;

fn block() -> (Block, Tensor, Tensor) {
    let (_map, vb) = random_vb();
    (
        Block::new(16, 4, vb).unwrap(),
        randn(&[1, 5, 16]),
        causal_mask(5),
    )
}

#[test]
fn hooks_select_by_exact_name_list_glob_and_predicate() {
    let (model, x, mask) = block();
    let fired = |filter: Filter| {
        let mut names = Vec::new();
        let hooks = Hooks::new().add(filter, |_, h| names.push(h.name().to_owned()));
        model
            .run_with_hooks(hooks, |m| m.forward(&x, &mask))
            .unwrap();
        names
    };
    assert_eq!(fired("attn.q.hook_point".into()), ["attn.q.hook_point"]);
    assert_eq!(
        fired(vec!["mlp.fc1.hook_point", "ln1.hook_point"].into()),
        ["ln1.hook_point", "mlp.fc1.hook_point"]
    );
    assert_eq!(
        fired("attn.*.hook_point".into()),
        [
            "attn.q.hook_point",
            "attn.k.hook_point",
            "attn.v.hook_point",
            "attn.o.hook_point"
        ]
    );
    assert_eq!(
        fired(Filter::pred(
            |n| n.starts_with("mlp.") && n.ends_with("hook_point")
        )),
        ["mlp.fc1.hook_point", "mlp.fc2.hook_point", "mlp.hook_point"]
    );
    assert_eq!(fired("**".into()).len(), Block::hook_names().len());
}

#[test]
fn replacing_hook_edits_the_output_and_read_only_hook_does_not() {
    let (model, x, mask) = block();
    let clean = model.forward(&x, &mask).unwrap();
    let read = model
        .run_with_hooks(
            Hooks::new().add("mlp.hook_point", |a, _| assert_eq!(a.dims(), [1, 5, 16])),
            |m| m.forward(&x, &mask),
        )
        .unwrap();
    assert!(same_bits(&clean, &read));
    let zeroed = model
        .run_with_hooks(Hooks::new().add("hook_point", |a, _| a.zeros_like()), |m| {
            m.forward(&x, &mask)
        })
        .unwrap();
    assert_eq!(
        zeroed
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap(),
        0.0
    );
}

#[test]
fn hooks_capture_and_mutate_local_state_and_run_in_order() {
    let (model, x, mask) = block();
    let calls = Cell::new(0);
    let mut order = Vec::new();
    let hooks = Hooks::new()
        .add("mlp.fc1.hook_point", |a, _| {
            calls.set(calls.get() + 1);
            a * 2.0
        })
        .add("mlp.fc1.hook_point", |a, _| order.push(a.clone()));
    model
        .run_with_hooks(hooks, |m| m.forward(&x, &mask))
        .unwrap();
    assert_eq!(calls.get(), 1);
    // The second hook saw the first hook's replacement.
    let (_, cache) = model
        .run_with_cache("mlp.fc1.hook_point", |m| m.forward(&x, &mask))
        .unwrap();
    let doubled = (cache.get("mlp.fc1.hook_point").unwrap() * 2.0).unwrap();
    assert!(same_bits(&order[0], &doubled));
}

#[test]
fn unknown_name_is_an_error_listing_the_nearest_names() {
    let (model, x, mask) = block();
    let err = model
        .run_with_hooks(Hooks::new().add("attn.q.hok_point", |_, _| ()), |m| {
            m.forward(&x, &mask)
        })
        .unwrap_err();
    match &err {
        Error::UnknownHook { name, nearest } => {
            assert_eq!(name, "attn.q.hok_point");
            assert_eq!(nearest[0], "attn.q.hook_point");
        }
        other => panic!("expected UnknownHook, got {other}"),
    }
    assert!(err.to_string().contains("did you mean"), "{err}");
    // One bad name in a list is enough to refuse the whole call.
    let list = vec!["attn.q.hook_point", "attn.z.hook_point"];
    let err = model
        .run_with_hooks(Hooks::new().add(list, |_, _| ()), |m| m.forward(&x, &mask))
        .unwrap_err();
    assert!(
        matches!(err, Error::UnknownHook { ref name, .. } if name == "attn.z.hook_point"),
        "{err}"
    );
}

#[test]
fn glob_or_predicate_that_matches_nothing_is_an_error() {
    let (model, x, mask) = block();
    let err = model
        .run_with_hooks(Hooks::new().add("blocks.*.hook_point", |_, _| ()), |m| {
            m.forward(&x, &mask)
        })
        .unwrap_err();
    assert!(matches!(err, Error::NoMatch { .. }), "{err}");
    let err = model
        .run_with_hooks(
            Hooks::new().add(Filter::pred(|n| n.contains("resid")), |_, _| ()),
            |m| m.forward(&x, &mask),
        )
        .unwrap_err();
    assert!(err.to_string().contains("matches no hook point"), "{err}");
}

#[test]
fn replacement_of_wrong_shape_or_dtype_names_the_hook_expected_and_got() {
    let (model, x, mask) = block();
    let err = model
        .run_with_hooks(
            Hooks::new().add("mlp.fc1.hook_point", |a, _| a.narrow(2, 0, 3)),
            |m| m.forward(&x, &mask),
        )
        .unwrap_err();
    match &err {
        Error::ReplacementMismatch {
            hook,
            expected,
            got,
        } => {
            assert_eq!(hook, "mlp.fc1.hook_point");
            assert!(expected.contains("[1, 5, 64]"), "{expected}");
            assert!(got.contains("[1, 5, 3]"), "{got}");
        }
        other => panic!("expected ReplacementMismatch, got {other}"),
    }
    let err = model
        .run_with_hooks(
            Hooks::new().add("ln1.hook_point", |a, _| a.to_dtype(DType::F64)),
            |m| m.forward(&x, &mask),
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::ReplacementMismatch { ref got, .. } if got.contains("F64")),
        "{err}"
    );
}

#[test]
fn failing_hook_is_reported_with_its_name_and_leaves_no_hook_behind() {
    let (model, x, mask) = block();
    let clean = model.forward(&x, &mask).unwrap();
    let err = model
        .run_with_hooks(
            Hooks::new().add("attn.v.hook_point", |_, _| {
                Err::<(), _>(candle_core::Error::Msg("boom".into()))
            }),
            |m| m.forward(&x, &mask),
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::HookFailed { ref hook, .. } if hook == "attn.v.hook_point"),
        "{err}"
    );
    assert!(err.to_string().contains("boom"));
    assert!(same_bits(&clean, &model.forward(&x, &mask).unwrap()));
}

#[test]
fn panicking_hook_leaves_no_hook_behind() {
    let (model, x, mask) = block();
    let clean = model.forward(&x, &mask).unwrap();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        model.run_with_hooks(
            Hooks::new().add("attn.hook_pattern", |_, _| -> () {
                panic!("hook panicked")
            }),
            |m| m.forward(&x, &mask),
        )
    }));
    assert!(result.is_err());
    let fired = Cell::new(0);
    let after = model.forward(&x, &mask).unwrap();
    assert!(same_bits(&clean, &after));
    model
        .run_with_hooks(
            Hooks::new().add("ln2.hook_point", |_, _| fired.set(fired.get() + 1)),
            |m| m.forward(&x, &mask),
        )
        .unwrap();
    assert_eq!(fired.get(), 1, "a new call works normally after the panic");
}

#[test]
fn nested_runs_combine_an_edit_with_a_cache() {
    let (model, x, mask) = block();
    let edit = Hooks::new().add("attn.hook_point", |a, _| a.zeros_like());
    let (_, cache) = model
        .run_with_hooks(edit, |m| {
            m.run_with_cache("attn.hook_point", |m| m.forward(&x, &mask))
        })
        .unwrap();
    let cached = cache.get("attn.hook_point").unwrap();
    assert_eq!(
        cached
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap(),
        0.0,
        "the cache sees the edited value"
    );
}

#[test]
fn any_forward_signature_runs_through_the_closure() {
    let (_map, vb) = random_vb();
    let model = Stack::new(2, vb).unwrap();
    let tokens = Tensor::new(&[[1u32, 2, 3]], &Device::Cpu).unwrap();
    let (out, n) = model
        .run_with_hooks(
            Hooks::new().add("layers.1.hook_point", |a, _| a * 0.5),
            |m| m.forward(&tokens),
        )
        .unwrap();
    assert_eq!((out.dims(), n), (&[1usize, 3, 16][..], 2));
}

#[test]
fn compile_checked_hook_names_are_plain_strings() {
    let name: &str = hook_name!(Block, "attn.q.hook_point");
    assert_eq!(name, "attn.q.hook_point");
    assert_eq!(
        hook_name!(Stack, "layers.3.mlp.hook_relu"),
        "layers.3.mlp.hook_relu"
    );
    assert_eq!(
        hook_name!(Stack, "layers.*.hook_point"),
        "layers.*.hook_point"
    );
}

#[test]
fn hook_dict_and_mod_dict_describe_the_instance() {
    let (model, _, _) = block();
    let dict = model.hook_dict();
    assert_eq!(dict.len(), Block::hook_names().len());
    assert!(dict.get("attn.k.hook_point").is_ok());
    assert!(matches!(
        dict.get("attn.kk.hook_point"),
        Err(Error::UnknownHook { .. })
    ));
    let modules = model.mod_dict();
    assert_eq!(modules[0].0, "");
    assert!(modules[0].1.ends_with("Block"));
    assert!(modules
        .iter()
        .any(|(n, t)| n == "attn.q" && t.ends_with("Linear")));
    assert!(modules
        .iter()
        .any(|(n, t)| n == "ln1" && t.ends_with("LayerNorm")));
}
