//! The checks every hooked model must pass, asserted one by one (the behaviour the
//! original library's tests protect).

use auto_hook::prelude::*;
use auto_hook::HookedRoot;
use candle_core::{Result, Tensor};
use std::collections::HashMap;

/// Same shape, dtype and bits (the runtime's [`auto_hook::bit_identical`]).
pub fn same_bits(a: &Tensor, b: &Tensor) -> bool {
    auto_hook::bit_identical(a, b).unwrap()
}

/// The library's own checks ([`check_auto_hook`]) must pass on `model`, plus what only
/// a test knows: `fires` gives the expected count of points that fire more than once per
/// forward (parameters used several times; every other point fires once), every pattern
/// of the type's listing names a point of this instance, and the cache holds every point.
/// `known` lists substrings of failures the model is known to have (a module without
/// backward); any other failure fails the test.
pub fn assert_conformance<M: HookedRoot>(
    model: &M,
    run: impl Fn(&M) -> Result<Tensor>,
    fires: &[(&str, usize)],
    known: &[&str],
) {
    let report = check_auto_hook(model, &run).unwrap();
    let unexpected: Vec<&String> = report
        .failures
        .iter()
        .filter(|f| !known.iter().any(|k| f.contains(k)))
        .collect();
    assert!(unexpected.is_empty(), "{report}");
    assert!(report.no_effect.is_empty(), "{report}");
    let names = model.hook_point_names();
    assert!(!names.is_empty());
    for pattern in M::hook_names() {
        let glob = Filter::from(pattern.as_str());
        assert!(
            names.iter().any(|n| glob.matches(n)),
            "pattern `{pattern}` matches no instance name in {names:?}"
        );
    }
    let expected: HashMap<&str, usize> = fires.iter().copied().collect();
    for (name, count) in &report.fire_counts {
        let want = expected.get(name.as_str()).copied().unwrap_or(1);
        assert_eq!(*count, want, "fire count of `{name}`");
    }
    let (out, cache) = model.run_with_cache(CacheOptions::all(), &run).unwrap();
    assert!(
        same_bits(&run(model).unwrap(), &out),
        "caching changed the output"
    );
    assert_eq!(cache.len(), names.len());
}
