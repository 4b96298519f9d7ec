//! The `&mut self` forms of the hooked-root API (`run_with_hooks_mut`,
//! `run_with_cache_mut`, `run_with_cache_stop_at_mut`, `check_auto_hook_mut`), and the
//! error for a run in which hooks were given but no hook point of the model fired.

mod common;

use auto_hook::prelude::*;
use auto_hook::{
    check_auto_hook_mut, check_auto_hook_mut_strict, Error, Schema, Walker, WalkerMut,
};
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder, VarMap};
use common::models::CountingLinear;

/// A hand-written hooked model whose forward keeps state (a running sum of its inputs,
/// standing in for a KV cache) and so takes `&mut self`.
#[derive(Clone)]
struct Stateful {
    hook_in: HookPoint,
    hook_sum: HookPoint,
    hook_out: HookPoint,
    sum: Option<Tensor>,
}

impl HookedModule for Stateful {
    const SCHEMA: Schema = Schema::Struct(&[
        ("hook_in", &Schema::Point),
        ("hook_sum", &Schema::Point),
        ("hook_out", &Schema::Point),
    ]);
    fn visit_hooks<'s>(&'s self, w: &mut Walker<'_, 's>) {
        w.child("hook_in", &self.hook_in);
        w.child("hook_sum", &self.hook_sum);
        w.child("hook_out", &self.hook_out);
    }
    fn visit_hooks_mut(&mut self, w: &mut WalkerMut<'_>) {
        w.child("hook_in", &mut self.hook_in);
        w.child("hook_sum", &mut self.hook_sum);
        w.child("hook_out", &mut self.hook_out);
    }
}

impl Stateful {
    fn new() -> Self {
        Self {
            hook_in: HookPoint::new(),
            hook_sum: HookPoint::new(),
            hook_out: HookPoint::new(),
            sum: None,
        }
    }

    fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let x = self.hook_in.fire(x.clone())?;
        let sum = match &self.sum {
            Some(s) => (s + &x)?,
            None => x.clone(),
        };
        let sum = self.hook_sum.fire(sum)?;
        self.sum = Some(sum.clone());
        self.hook_out.fire((sum * 2.0)?)
    }
}

/// An annotated model with a `&mut self` method (not called `forward`) that runs its
/// sub-modules and counts its steps.
#[auto_hook]
#[derive(Clone)]
struct Decoder {
    fc1: Linear,
    fc2: Linear,
    steps: usize,
}

#[auto_hook]
impl Decoder {
    fn new(vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            fc1: candle_nn::linear(4, 8, vb.pp("fc1"))?,
            fc2: candle_nn::linear(8, 4, vb.pp("fc2"))?,
            steps: 0,
        })
    }

    fn step(&mut self, x: &Tensor) -> Result<Tensor> {
        self.steps += 1;
        self.fc2.forward(&self.fc1.forward(x)?.relu()?)
    }
}

fn ones(n: usize) -> Tensor {
    Tensor::ones(n, DType::F32, &Device::Cpu).unwrap()
}

fn decoder() -> (Decoder, Tensor) {
    let map = VarMap::new();
    let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
    let x = Tensor::new(&[[0.5f32, -1.0, 2.0, 0.25]], &Device::Cpu).unwrap();
    (Decoder::new(vb).unwrap(), x)
}

#[test]
fn run_with_hooks_mut_edits_a_stateful_forward_with_hooks_borrowing_locals() {
    let mut model = Stateful::new();
    let mut seen = Vec::new();
    let hooks = Hooks::new()
        .add("hook_in", |x, _| x * 10.0)
        .add("hook_sum", |x, h| {
            seen.push((h.name().to_owned(), x.to_vec1::<f32>()))
        });
    let y = model
        .run_with_hooks_mut(hooks, |m| m.forward(&ones(2)))
        .unwrap();
    assert_eq!(y.to_vec1::<f32>().unwrap(), [20.0, 20.0]);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, "hook_sum");
    assert_eq!(seen[0].1.as_ref().unwrap(), &[10.0, 10.0]);
    // The edit reached the state; the next plain call builds on it, with no hooks left.
    let y = model.forward(&ones(2)).unwrap();
    assert_eq!(y.to_vec1::<f32>().unwrap(), [22.0, 22.0]);
}

#[test]
fn run_with_cache_mut_caches_every_point_of_a_stateful_forward() {
    let mut model = Stateful::new();
    model.forward(&ones(2)).unwrap();
    let (out, cache) = model
        .run_with_cache_mut(CacheOptions::all(), |m| m.forward(&ones(2)))
        .unwrap();
    assert_eq!(
        cache.names().collect::<Vec<_>>(),
        ["hook_in", "hook_sum", "hook_out"]
    );
    assert_eq!(
        cache.get("hook_sum").unwrap().to_vec1::<f32>().unwrap(),
        [2.0, 2.0]
    );
    assert_eq!(out.to_vec1::<f32>().unwrap(), [4.0, 4.0]);
}

#[test]
fn run_with_cache_stop_at_mut_stops_before_the_rest_of_the_forward() {
    let mut model = Stateful::new();
    let cache = model
        .run_with_cache_stop_at_mut("hook_in", |m| m.forward(&ones(2)))
        .unwrap();
    assert_eq!(cache.names().collect::<Vec<_>>(), ["hook_in"]);
    assert!(
        model.sum.is_none(),
        "the forward stopped before it updated its state"
    );
}

#[test]
fn mut_forms_work_on_an_annotated_struct_with_a_mut_method() {
    let (mut model, x) = decoder();
    let clean = model.step(&x).unwrap();
    let zeroed = model
        .run_with_hooks_mut(
            Hooks::new().add("fc2.hook_point", |a, _| a.zeros_like()),
            |m| m.step(&x),
        )
        .unwrap();
    assert_eq!(zeroed.to_vec2::<f32>().unwrap(), [[0.0; 4]]);
    let (out, cache) = model
        .run_with_cache_mut("fc*.hook_point", |m| m.step(&x))
        .unwrap();
    assert_eq!(
        cache.names().collect::<Vec<_>>(),
        ["fc1.hook_point", "fc2.hook_point"]
    );
    assert_eq!(
        out.to_vec2::<f32>().unwrap(),
        clean.to_vec2::<f32>().unwrap()
    );
    assert_eq!(model.steps, 3);
}

#[test]
fn check_auto_hook_mut_passes_on_a_mut_forward_that_resets_its_state() {
    let mut model = Stateful::new();
    let report = check_auto_hook_mut_strict(&mut model, |m| {
        m.sum = None; // the check needs the same output on every call
        m.forward(&ones(3))
    })
    .unwrap();
    assert_eq!(report.fire_counts.len(), 3);
    assert_eq!(report.editable.len(), 3);
}

#[test]
fn check_auto_hook_mut_reports_a_forward_whose_output_changes_between_calls() {
    let mut model = Stateful::new();
    let report = check_auto_hook_mut(&mut model, |m| m.forward(&ones(3))).unwrap();
    assert!(
        report
            .failures
            .iter()
            .any(|f| f.contains("identity hooks on every point changed the output")),
        "{report}"
    );
}

#[test]
fn a_forward_on_a_clone_is_an_error_naming_the_clone() {
    let (model, x) = decoder();
    let mut fired = 0;
    let err = model
        .run_with_hooks(Hooks::new().add("fc1.hook_point", |_, _| fired += 1), |m| {
            m.clone().step(&x)
        })
        .unwrap_err();
    assert!(matches!(&err, Error::NoHookFired { hooks } if hooks == &["`fc1.hook_point`"]));
    assert!(err.to_string().contains("clone"), "{err}");
    assert_eq!(fired, 0);
}

#[test]
fn a_forward_outside_the_run_closure_is_an_error_for_every_run_form() {
    let mut model = Stateful::new();
    let x = ones(2);
    let outside = model.forward(&x).unwrap();
    let nothing = |_: &mut Stateful| Ok::<_, candle_core::Error>(outside.clone());
    let hooks = Hooks::new().add("hook_out", |_, _| ());
    let err = model.run_with_hooks_mut(hooks, nothing).unwrap_err();
    assert!(matches!(err, Error::NoHookFired { .. }), "{err}");
    let err = model
        .run_with_cache_mut(CacheOptions::all(), nothing)
        .unwrap_err();
    assert!(matches!(err, Error::NoHookFired { .. }), "{err}");
    let shared = Stateful::new();
    let err = shared
        .run_with_cache("hook_in", |_| Ok::<_, candle_core::Error>(()))
        .unwrap_err();
    assert!(err.to_string().contains("outside the run closure"), "{err}");
}

#[test]
fn a_forward_on_another_thread_is_an_error() {
    let (mut model, x) = decoder();
    let err = model
        .run_with_hooks_mut(Hooks::new().add("fc1.hook_point", |_, _| ()), |m| {
            std::thread::scope(|s| s.spawn(|| m.step(&x)).join().unwrap())
        })
        .unwrap_err();
    assert!(matches!(err, Error::NoHookFired { .. }), "{err}");
}

/// A hook on a point that did not run this time, while the model's other points did, is
/// legitimate (a branch not taken): no error, the hook simply did not run.
#[test]
fn a_hook_on_a_point_that_did_not_run_this_time_is_not_an_error() {
    let mut model = Stateful::new();
    let mut fired = 0;
    let out = model
        .run_with_hooks_mut(Hooks::new().add("hook_out", |_, _| fired += 1), |m| {
            // Only the first part of the forward runs, by the user's choice.
            m.hook_in.fire(ones(2))
        })
        .unwrap();
    assert_eq!(out.to_vec1::<f32>().unwrap(), [1.0, 1.0]);
    assert_eq!(fired, 0);
}

#[test]
fn a_run_without_hooks_may_skip_the_forward() {
    let model = Stateful::new();
    let out = model
        .run_with_hooks(Hooks::new(), |_| Ok::<_, candle_core::Error>(7))
        .unwrap();
    assert_eq!(out, 7);
}

#[test]
fn a_failing_forward_keeps_its_own_error_even_when_nothing_fired() {
    let model = Stateful::new();
    let err = model
        .run_with_hooks(Hooks::new().add("hook_in", |_, _| ()), |_| {
            Err::<(), _>(candle_core::Error::Msg("the forward's own failure".into()))
        })
        .unwrap_err();
    assert!(
        err.to_string().contains("the forward's own failure"),
        "{err}"
    );
}

#[test]
fn an_annotated_mut_forward_fires_its_own_point_in_every_mut_form() {
    let map = VarMap::new();
    let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
    let mut model = CountingLinear::new(vb).unwrap();
    let x = Tensor::new(&[[0.5f32, -1.0, 2.0, 0.25]], &Device::Cpu).unwrap();
    let (_, cache) = model
        .run_with_cache_mut(CacheOptions::all(), |m| m.forward(&x))
        .unwrap();
    assert_eq!(
        cache.names().collect::<Vec<_>>(),
        ["fc.hook_point", "hook_point"]
    );
    let out = model
        .run_with_hooks_mut(Hooks::new().add("hook_point", |a, _| a.ones_like()), |m| {
            m.forward(&x)
        })
        .unwrap();
    assert_eq!(out.to_vec2::<f32>().unwrap(), [[1.0; 4]]);
    let early = model
        .run_with_cache_stop_at_mut("fc.hook_point", |m| m.forward(&x))
        .unwrap();
    assert_eq!(early.len(), 1);
    let report = check_auto_hook_mut(&mut model, |m| m.forward(&x)).unwrap();
    assert_eq!(report.fire_counts.len(), 2);
    assert!(report.fire_counts.iter().all(|(_, n)| *n == 1), "{report}");
    assert_eq!(model.calls, 3 + report_runs(&report));
}

/// `check_auto_hook` runs the forward once per point plus six times (see its docs).
fn report_runs(report: &auto_hook::CheckReport) -> usize {
    report.fire_counts.len() + 6
}
