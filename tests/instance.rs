//! `auto_hook(instance)`: a plain module gets one root point; an annotated model keeps
//! every point it has; an annotated model that is also a `Module` must name the kind
//! (a compile error otherwise, see `auto_hook_dev/tests/instance_ui`).

mod common;

use auto_hook::prelude::*;
use auto_hook::RootOnly;
use candle_core::{Device, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};
use common::models::{random_vb, CountingLinear, TwoLinear};

/// Annotated, with a two-argument forward: not a candle `Module`.
#[auto_hook]
struct Gated {
    up: Linear,
    gate: Linear,
}

#[auto_hook]
impl Gated {
    fn new(vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            up: candle_nn::linear(4, 4, vb.pp("up"))?,
            gate: candle_nn::linear(4, 4, vb.pp("gate"))?,
        })
    }

    fn forward(&self, x: &Tensor, scale: f64) -> Result<Tensor> {
        (self.up.forward(x)? * self.gate.forward(x)?)? * scale
    }
}

fn input() -> Tensor {
    Tensor::new(&[[0.5f32, -1.0, 2.0, 0.25]], &Device::Cpu).unwrap()
}

#[test]
fn a_plain_candle_module_gets_one_root_point() {
    let (_map, vb) = random_vb();
    let linear = candle_nn::linear(4, 4, vb).unwrap();
    let wrapped: auto_hook::AutoHooked<Linear, RootOnly> = auto_hook(linear.clone());
    assert!(!wrapped.has_inner_points());
    assert_eq!(wrapped.hook_point_names(), ["hook_point"]);
    let doubled = wrapped
        .run_with_hooks(Hooks::new().add("hook_point", |a, _| a * 2.0), |m| {
            m.forward(&input())
        })
        .unwrap();
    let plain = (linear.forward(&input()).unwrap() * 2.0).unwrap();
    assert_eq!(
        doubled.to_vec2::<f32>().unwrap(),
        plain.to_vec2::<f32>().unwrap()
    );
}

#[test]
fn an_annotated_module_keeps_its_inner_points_with_no_annotation() {
    let (_map, vb) = random_vb();
    let model = TwoLinear::new(vb).unwrap();
    let clean = model.forward(&input()).unwrap();
    // exactly as the Python README writes it: no kind named
    let wrapped = auto_hook(model);
    assert!(wrapped.has_inner_points());
    assert_eq!(
        wrapped.hook_point_names(),
        ["hook_point", "fc1.hook_point", "fc2.hook_point"]
    );
    // the run-time layout is the model's, so the conformance check holds
    auto_hook::check_auto_hook_strict(&wrapped, |m| m.forward(&input())).unwrap();
    let mut fired = Vec::new();
    let zeroed = wrapped
        .run_with_hooks(
            Hooks::new()
                .add("fc2.hook_point", |a, _| a.zeros_like())
                .add("**", |_, h| fired.push(h.name().to_owned())),
            |m| m.forward(&input()),
        )
        .unwrap();
    assert_eq!(zeroed.to_vec2::<f32>().unwrap(), [[0.0; 4]]);
    assert_eq!(fired, ["fc1.hook_point", "fc2.hook_point", "hook_point"]);
    let (out, cache) = wrapped
        .run_with_cache(CacheOptions::all(), |m| m.forward(&input()))
        .unwrap();
    assert_eq!(cache.len(), 3);
    assert_eq!(
        out.to_vec2::<f32>().unwrap(),
        clean.to_vec2::<f32>().unwrap()
    );
    let back: TwoLinear = wrapped.unwrap();
    assert_eq!(back.hook_point_names().len(), 3);
}

#[test]
fn an_annotated_model_that_is_not_a_module_keeps_its_points_without_naming_the_kind() {
    let (_map, vb) = random_vb();
    let wrapped = auto_hook(Gated::new(vb).unwrap());
    assert_eq!(
        wrapped.hook_point_names(),
        ["hook_point", "up.hook_point", "gate.hook_point"]
    );
    let (_, cache) = wrapped
        .run_with_cache("*.hook_point", |m| m.forward(&input(), 0.5))
        .unwrap();
    assert_eq!(
        cache.names().collect::<Vec<_>>(),
        ["up.hook_point", "gate.hook_point"]
    );
}

#[test]
fn a_wrapped_annotated_model_with_a_mut_forward_runs_through_the_mut_forms() {
    let (_map, vb) = random_vb();
    let mut wrapped = auto_hook(CountingLinear::new(vb).unwrap());
    let (_, cache) = wrapped
        .run_with_cache_mut(CacheOptions::all(), |m| m.forward(&input()))
        .unwrap();
    assert_eq!(
        cache.names().collect::<Vec<_>>(),
        ["fc.hook_point", "hook_point"]
    );
    assert_eq!(wrapped.unwrap().calls, 1);
}
