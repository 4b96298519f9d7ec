//! run_with_cache, stop_at and ActivationCache.

mod common;

use auto_hook::prelude::*;
use auto_hook::Error;
use candle_core::{DType, Device, ModuleT, Tensor};
use common::conformance::same_bits;
use common::models::*;
use std::cell::Cell;

fn stack() -> (Stack, Tensor) {
    let (_map, vb) = random_vb();
    (
        Stack::new(3, vb).unwrap(),
        Tensor::new(&[[4u32, 8, 15, 16, 23, 9]], &Device::Cpu).unwrap(),
    )
}

#[test]
fn cache_filter_keeps_only_selected_points_in_firing_order() {
    let (model, tokens) = stack();
    let (_, cache) = model
        .run_with_cache("layers.*.hook_point", |m| m.forward(&tokens))
        .unwrap();
    assert_eq!(
        cache.names().collect::<Vec<_>>(),
        [
            "layers.0.hook_point",
            "layers.1.hook_point",
            "layers.2.hook_point"
        ]
    );
    let stacked = cache.stack("layers.*.hook_point").unwrap();
    assert_eq!(stacked.dims(), [3, 1, 6, 16]);
    assert!(same_bits(
        &stacked.get(1).unwrap(),
        cache.get("layers.1.hook_point").unwrap()
    ));
}

#[test]
fn cache_get_of_a_missing_name_lists_the_nearest_names() {
    let (model, tokens) = stack();
    let (_, cache) = model
        .run_with_cache(CacheOptions::all(), |m| m.forward(&tokens))
        .unwrap();
    let err = cache.get("layers.1.attn.hook_patern").unwrap_err();
    assert!(
        matches!(err, Error::UnknownHook { ref nearest, .. } if nearest[0] == "layers.1.attn.hook_pattern"),
        "{err}"
    );
    assert!(matches!(
        cache.stack("blocks.*.hook_point"),
        Err(Error::NoMatch { .. })
    ));
}

#[test]
fn cache_options_remove_batch_dim_and_convert_dtype() {
    let (model, tokens) = stack();
    let opts = CacheOptions::names("embed.hook_point")
        .remove_batch_dim()
        .to_dtype(DType::F16)
        .to_device(&Device::Cpu);
    let (_, cache) = model.run_with_cache(opts, |m| m.forward(&tokens)).unwrap();
    let embed = cache.get("embed.hook_point").unwrap();
    assert_eq!(
        (embed.dims(), embed.dtype()),
        (&[6usize, 16][..], DType::F16)
    );
    let batch2 = Tensor::new(&[[1u32, 2], [3, 4]], &Device::Cpu).unwrap();
    let err = model
        .run_with_cache(CacheOptions::all().remove_batch_dim(), |m| {
            m.forward(&batch2)
        })
        .unwrap_err();
    assert!(err.to_string().contains("not a batch of 1"), "{err}");
}

#[test]
fn cache_round_trips_through_safetensors_with_its_order() {
    let (model, tokens) = stack();
    let (_, cache) = model
        .run_with_cache("layers.0.**", |m| m.forward(&tokens))
        .unwrap();
    let path = std::env::temp_dir().join(format!(
        "auto_hook_cache_{}.safetensors",
        std::process::id()
    ));
    cache.save(&path).unwrap();
    let loaded = ActivationCache::load(&path, &Device::Cpu).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(
        loaded.names().collect::<Vec<_>>(),
        cache.names().collect::<Vec<_>>()
    );
    for (name, t) in cache.iter() {
        assert!(same_bits(t, loaded.get(name).unwrap()), "{name}");
    }
    let missing =
        ActivationCache::load("/nonexistent/cache.safetensors", &Device::Cpu).unwrap_err();
    assert!(missing.to_string().contains("cannot read"), "{missing}");
}

#[test]
fn stop_at_skips_everything_after_the_requested_points() {
    let (model, tokens) = stack();
    let later = Cell::new(0);
    let counter = Hooks::new().add(
        vec![
            "layers.1.**",
            "layers.2.**",
            "ln_final.hook_point",
            "hook_point",
        ],
        |_, _| later.set(later.get() + 1),
    );
    let cache = model
        .run_with_hooks(counter, |m| {
            m.run_with_cache_stop_at("layers.0.**", |m| m.forward(&tokens))
        })
        .unwrap();
    assert_eq!(
        later.get(),
        0,
        "no hook after the stop point fired: the rest of the forward did not run"
    );
    assert_eq!(cache.len(), 13, "every point of layer 0 was captured");
    assert!(cache.contains("layers.0.hook_point"));
    let (_, full) = model
        .run_with_cache("layers.0.**", |m| m.forward(&tokens))
        .unwrap();
    for (name, t) in full.iter() {
        assert!(same_bits(t, cache.get(name).unwrap()), "{name}");
    }
}

#[test]
fn stop_at_a_point_that_never_fires_is_an_error() {
    let (_map, vb) = random_vb();
    let model = Corners::new(OneLinear::new(vb.pp("inner")).unwrap(), vb).unwrap();
    let x = randn(&[2, 4]);
    let err = model
        .run_with_cache_stop_at("spare.hook_point", |m| m.forward_t(&x, false))
        .unwrap_err();
    assert!(
        matches!(err, Error::StopAtNeverFired { ref names } if names == &["spare.hook_point"]),
        "{err}"
    );
}

#[test]
fn cache_of_unknown_name_is_an_error() {
    let (model, tokens) = stack();
    let err = model
        .run_with_cache("layers.0.attn.hook_z", |m| m.forward(&tokens))
        .unwrap_err();
    assert!(matches!(err, Error::UnknownHook { .. }), "{err}");
}
