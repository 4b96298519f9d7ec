//! Small things a newcomer meets first (issue 9, part 3).

mod common;

use auto_hook::prelude::*;
use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use common::models::TwoLinear;
use std::sync::{Arc, Mutex};

fn model() -> (VarMap, TwoLinear) {
    let map = VarMap::new();
    let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
    let model = TwoLinear::new(vb).unwrap();
    (map, model)
}

fn input() -> Tensor {
    Tensor::new(&[[0.5f32, -1.0, 2.0, 0.25]], &Device::Cpu).unwrap()
}

#[test]
fn hook_dict_names_collect_in_one_expression() {
    let (_map, model) = model();
    let names = model.hook_dict().names().collect::<Vec<_>>();
    assert_eq!(names, ["hook_point", "fc1.hook_point", "fc2.hook_point"]);
    let pairs = model.hook_dict().iter().map(|(n, _)| n).collect::<Vec<_>>();
    assert_eq!(pairs, names);
}

#[test]
#[should_panic(expected = "not yet implemented")]
fn a_hook_whose_body_is_todo_needs_no_return_type() {
    let (_map, model) = model();
    let hooks = Hooks::new().add("fc1.hook_point", |_, _| todo!());
    let _ = model.run_with_hooks(hooks, |m| m.forward(&input()));
}

#[test]
#[should_panic(expected = "this hook only panics")]
fn a_hook_whose_body_only_panics_needs_no_return_type() {
    let (_map, model) = model();
    let hooks = Hooks::new().add("fc1.hook_point", |_, _| panic!("this hook only panics"));
    let _ = model.run_with_hooks(hooks, |m| m.forward(&input()));
}

#[test]
fn a_backward_hook_hands_gradients_out_through_an_arc_mutex() {
    let (_map, model) = model();
    let x = Var::from_tensor(&input()).unwrap();
    let norms: Arc<Mutex<Vec<(String, f32)>>> = Arc::default();
    let sink = norms.clone();
    let hooks = Hooks::new().backward("**", move |grad, h| {
        let norm = grad.sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()?;
        sink.lock().unwrap().push((h.name().to_owned(), norm));
        Ok::<(), candle_core::Error>(())
    });
    let out = model
        .run_with_hooks(hooks, |m| m.forward(x.as_tensor()))
        .unwrap();
    assert!(
        norms.lock().unwrap().is_empty(),
        "backward hooks wait for backward()"
    );
    out.sum_all().unwrap().backward().unwrap();
    let names: Vec<String> = norms
        .lock()
        .unwrap()
        .iter()
        .map(|(n, _)| n.clone())
        .collect();
    assert_eq!(names, ["hook_point", "fc2.hook_point", "fc1.hook_point"]);
    // d(sum)/d(output) is all ones: its norm is sqrt(4).
    assert_eq!(norms.lock().unwrap()[0].1, 2.0);
}
