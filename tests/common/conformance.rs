//! The checks every hooked model must pass, asserted one by one (the behaviour the
//! original library's tests protect).

use auto_hook::prelude::*;
use auto_hook::HookedRoot;
use candle_core::{Result, Tensor};
use std::collections::{HashMap, HashSet};

/// Bitwise equality of two f32 tensors.
pub fn same_bits(a: &Tensor, b: &Tensor) -> bool {
    let a: Vec<u32> = a
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|x| x.to_bits())
        .collect();
    let b: Vec<u32> = b
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|x| x.to_bits())
        .collect();
    a == b
}

/// Runs every conformance check on `model`; `fires` gives the expected count of points
/// that fire more than once per forward (parameters used several times).
pub fn assert_conformance<M: HookedRoot>(
    model: &M,
    run: impl Fn(&M) -> Result<Tensor>,
    fires: &[(&str, usize)],
) {
    let names: Vec<String> = model.hook_dict().names().map(str::to_owned).collect();
    assert!(!names.is_empty());

    // Names: unique, each in the type's listing, and every pattern of the listing used.
    let unique: HashSet<&String> = names.iter().collect();
    assert_eq!(
        unique.len(),
        names.len(),
        "duplicate hook names in {names:?}"
    );
    for name in &names {
        assert!(
            M::SCHEMA.matches(name),
            "`{name}` is not in the type listing {:?}",
            M::hook_names()
        );
    }
    for pattern in M::hook_names() {
        let glob = Filter::from(pattern.as_str());
        assert!(
            names.iter().any(|n| glob.matches(n)),
            "pattern `{pattern}` matches no instance name in {names:?}"
        );
    }

    // Every listed point fires: modules once, parameters once per arithmetic use.
    let baseline = run(model).unwrap();
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut shapes: HashMap<String, Vec<usize>> = HashMap::new();
    let hooks = Hooks::new().add("**", |x, h| {
        *counts.entry(h.name().to_owned()).or_default() += 1;
        shapes.insert(h.name().to_owned(), x.dims().to_vec());
    });
    let hooked = model.run_with_hooks(hooks, &run).unwrap();
    assert!(
        same_bits(&baseline, &hooked),
        "read-only hooks changed the output"
    );
    let expected: HashMap<&str, usize> = fires.iter().copied().collect();
    for name in &names {
        let want = expected.get(name.as_str()).copied().unwrap_or(1);
        assert_eq!(
            counts.get(name).copied().unwrap_or(0),
            want,
            "fire count of `{name}`"
        );
    }

    // Identity hooks (returning the activation) leave the output bit-identical.
    let identity = model
        .run_with_hooks(Hooks::new().add("**", |x, _| x.clone()), &run)
        .unwrap();
    assert!(
        same_bits(&baseline, &identity),
        "identity hooks changed the output"
    );

    // Adding 1 at any single point changes the output.
    for name in &names {
        let edited = model
            .run_with_hooks(Hooks::new().add(name.as_str(), |x, _| x + 1.0), &run)
            .unwrap();
        assert!(
            !same_bits(&baseline, &edited),
            "adding 1 at `{name}` did not change the output"
        );
    }

    // The cache holds every fired point with the shape the hook saw, in firing order.
    let (out, cache) = model.run_with_cache(CacheOptions::all(), &run).unwrap();
    assert!(same_bits(&baseline, &out), "caching changed the output");
    assert_eq!(cache.len(), names.len());
    for name in &names {
        assert_eq!(
            cache.get(name).unwrap().dims(),
            shapes[name].as_slice(),
            "cached shape of `{name}`"
        );
    }
}
