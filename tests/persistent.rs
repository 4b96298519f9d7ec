//! Persistent hooks, permanent hooks and scopes; auto_hook(instance); custom roots;
//! check_auto_hook.

mod common;

use auto_hook::prelude::*;
use auto_hook::Error;
use candle_core::{Module, ModuleT, Tensor};
use common::conformance::same_bits;
use common::models::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn counter() -> (
    Arc<AtomicUsize>,
    impl Fn(&Tensor, &HookInfo) + Send + Sync + 'static,
) {
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    (count, move |_: &Tensor, _: &HookInfo| {
        c.fetch_add(1, Ordering::SeqCst);
    })
}

#[test]
fn persistent_hook_runs_in_plain_forward_until_reset() {
    let (_map, vb) = random_vb();
    let mut model = Mlp::new(4, 8, vb).unwrap();
    let x = randn(&[2, 4]);
    let clean = model.forward(&x).unwrap();
    model.add_hook("fc1.hook_point", |a, _| a * 0.0).unwrap();
    let (count, hook) = counter();
    model.add_perma_hook("hook_point", hook).unwrap();
    let edited = model.forward(&x).unwrap();
    assert!(!same_bits(&clean, &edited));
    assert_eq!(count.load(Ordering::SeqCst), 1);
    model.reset_hooks();
    assert!(
        same_bits(&clean, &model.forward(&x).unwrap()),
        "reset_hooks removed the edit"
    );
    assert_eq!(
        count.load(Ordering::SeqCst),
        2,
        "the permanent hook survived reset_hooks"
    );
    model.reset_all_hooks();
    model.forward(&x).unwrap();
    assert_eq!(
        count.load(Ordering::SeqCst),
        2,
        "reset_all_hooks removed the permanent hook"
    );
}

#[test]
fn bad_persistent_hook_name_leaves_the_model_unchanged() {
    let (_map, vb) = random_vb();
    let mut model = Mlp::new(4, 8, vb).unwrap();
    let err = model
        .add_hook(vec!["fc1.hook_point", "fc3.hook_point"], |a, _| a * 0.0)
        .unwrap_err();
    assert!(matches!(err, Error::UnknownHook { ref name, .. } if name == "fc3.hook_point"));
    let attached: usize = model
        .hook_dict()
        .iter()
        .map(|(_, p)| p.persistent_hook_count())
        .sum();
    assert_eq!(attached, 0);
}

#[test]
fn nested_scopes_remove_only_their_own_hooks_even_on_panic() {
    let (_map, vb) = random_vb();
    let mut model = Mlp::new(4, 8, vb).unwrap();
    let x = randn(&[1, 4]);
    let (outer_count, outer_hook) = counter();
    let (inner_count, inner_hook) = counter();
    {
        let mut outer = model.hook_scope();
        outer.add_hook("fc1.hook_point", outer_hook).unwrap();
        {
            let mut inner = outer.hook_scope();
            inner.add_hook("fc2.hook_point", inner_hook).unwrap();
            inner.forward(&x).unwrap();
        }
        outer.forward(&x).unwrap();
        assert_eq!(
            inner_count.load(Ordering::SeqCst),
            1,
            "inner hook gone with the inner scope"
        );
        assert_eq!(outer_count.load(Ordering::SeqCst), 2, "outer hook kept");
    }
    model.forward(&x).unwrap();
    assert_eq!(
        outer_count.load(Ordering::SeqCst),
        2,
        "outer hook gone with the outer scope"
    );

    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut scope = model.hook_scope();
        scope
            .add_hook("hook_relu", |_, _| -> () { panic!("inside a scoped hook") })
            .unwrap();
        scope.forward(&x)
    }));
    assert!(result.is_err());
    assert!(
        model.forward(&x).is_ok(),
        "the panicking scoped hook was removed during unwinding"
    );
}

#[test]
fn auto_hook_wraps_a_built_module_and_unwraps_it() {
    let linear = candle_nn::Linear::new(randn(&[3, 4]), None);
    let x = randn(&[2, 4]);
    let clean = linear.forward(&x).unwrap();
    let hooked = auto_hook(linear);
    assert_eq!(hooked.hook_point_names(), ["hook_point"]);
    let doubled = hooked
        .run_with_hooks(Hooks::new().add("hook_point", |a, _| a * 2.0), |m| {
            m.forward(&x)
        })
        .unwrap();
    assert!(same_bits(&(clean.clone() * 2.0).unwrap(), &doubled));
    let back: candle_nn::Linear = hooked.unwrap();
    assert!(same_bits(&clean, &back.forward(&x).unwrap()));
}

#[derive(HookedRoot)]
struct Pipeline {
    encoder: AutoEncoder,
    #[auto_hook(rename = "head")]
    classifier: OneLinear,
    n_classes: usize,
    #[auto_hook(skip)]
    _notes: Vec<String>,
}

#[test]
fn derived_root_lists_its_models_points_and_runs_hooks() {
    let (_map, vb) = random_vb();
    let root = Pipeline {
        encoder: AutoEncoder::new(4, 6).unwrap(),
        classifier: OneLinear::new(vb).unwrap(),
        n_classes: 3,
        _notes: Vec::new(),
    };
    assert_eq!(Pipeline::hook_names()[0], "encoder.hook_point");
    assert_eq!(
        root.hook_point_names().last().map(String::as_str),
        Some("head.fc1.hook_point")
    );
    let x = randn(&[2, 4]);
    let run = |r: &Pipeline| r.classifier.forward(&r.encoder.forward(&x)?);
    let (out, cache) = root.run_with_cache(CacheOptions::all(), run).unwrap();
    assert_eq!(out.dims(), [2, root.n_classes]);
    assert_eq!(cache.len(), root.hook_point_names().len());
}

#[test]
fn check_auto_hook_passes_on_a_sound_model_and_strict_mode_reports_failures() {
    let (_map, vb) = random_vb();
    let block = Block::new(16, 4, vb.pp("block")).unwrap();
    let x = randn(&[1, 4, 16]);
    let mask = causal_mask(4);
    let report = check_auto_hook(&block, |m| m.forward(&x, &mask)).unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.fire_counts.len(), Block::hook_names().len());

    let corners = Corners::new(OneLinear::new(vb.pp("inner")).unwrap(), vb).unwrap();
    let x = randn(&[2, 4]);
    let err = check_auto_hook_strict(&corners, |m| m.forward_t(&x, false)).unwrap_err();
    match err {
        Error::CheckFailed { failures } => {
            assert_eq!(failures, ["hook point `spare.hook_point` never fired"])
        }
        other => panic!("expected CheckFailed, got {other}"),
    }
}
