//! Backward hooks and gradient caching.

mod common;

use auto_hook::prelude::*;
use candle_core::{DType, Device, Module, Tensor, Var};
use common::conformance::same_bits;
use common::models::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn loss(out: &Tensor) -> Tensor {
    out.sqr().unwrap().sum_all().unwrap()
}

fn var_autoencoder() -> (AutoEncoder, Vec<Var>) {
    let vars: Vec<Var> = [[4usize, 6], [6, 4], [1, 6], [1, 4]]
        .iter()
        .map(|s| Var::from_tensor(&randn(s).squeeze(0).unwrap()).unwrap())
        .collect();
    let t = |i: usize| vars[i].as_tensor().clone();
    (AutoEncoder::from_tensors(t(0), t(1), t(2), t(3)), vars)
}

fn param_grads(model_out: &Tensor, vars: &[Var]) -> Vec<Tensor> {
    let grads = loss(model_out).backward().unwrap();
    vars.iter()
        .map(|v| {
            grads
                .get(v.as_tensor())
                .expect("every parameter has a gradient")
                .clone()
        })
        .collect()
}

#[test]
fn doubling_every_gradient_changes_every_parameter_gradient_of_the_autoencoder() {
    let (model, vars) = var_autoencoder();
    let x = randn(&[3, 4]);
    let clean = param_grads(&model.forward(&x).unwrap(), &vars);
    let doubled_out = model
        .run_with_hooks(Hooks::new().backward("**", |g, _| g * 2.0), |m| {
            m.forward(&x)
        })
        .unwrap();
    let doubled = param_grads(&doubled_out, &vars);
    for (i, (c, d)) in clean.iter().zip(&doubled).enumerate() {
        assert!(!same_bits(c, d), "parameter {i} gradient unchanged");
    }
}

#[test]
fn doubling_every_gradient_changes_every_weight_gradient_of_the_transformer_block() {
    let (map, vb) = random_vb();
    let block = Block::new(16, 4, vb).unwrap();
    let (x, mask) = (randn(&[1, 4, 16]), causal_mask(4));
    let vars = map.all_vars();
    let clean = param_grads(&block.forward(&x, &mask).unwrap(), &vars);
    let out = block
        .run_with_hooks(Hooks::new().backward("**", |g, _| g * 2.0), |m| {
            m.forward(&x, &mask)
        })
        .unwrap();
    let doubled = param_grads(&out, &vars);
    assert_eq!(
        vars.len(),
        16,
        "q k v o, two MLP linears and two layer norms: weights and biases"
    );
    for (i, (c, d)) in clean.iter().zip(&doubled).enumerate() {
        assert!(
            !same_bits(c, d),
            "weight {i} gradient unchanged: gradients reach through attention and norms"
        );
    }
}

/// Central finite differences through a forward hook that nudges one coordinate.
fn numeric_grad(model: &AutoEncoder, x: &Tensor, name: &str, shape: &[usize], i: usize) -> f64 {
    let eps = 1e-6;
    let n: usize = shape.iter().product();
    let nudged = |sign: f64| {
        let mut bump = vec![0f64; n];
        bump[i] = sign * eps;
        let bump = Tensor::from_vec(bump, shape, &Device::Cpu).unwrap();
        let out = model
            .run_with_hooks(Hooks::new().add(name, move |a, _| a + &bump), |m| {
                m.forward(x)
            })
            .unwrap();
        loss(&out).to_scalar::<f64>().unwrap()
    };
    (nudged(1.0) - nudged(-1.0)) / (2.0 * eps)
}

#[test]
fn cached_gradients_match_finite_differences_with_plain_tensor_weights() {
    let t = |s: &[usize]| randn(s).to_dtype(DType::F64).unwrap();
    // Plain tensors, not Vars: the library makes the activations trackable itself.
    let model = AutoEncoder::from_tensors(t(&[3, 5]), t(&[5, 3]), t(&[5]), t(&[3]));
    let x = t(&[2, 3]);
    let (out, cache) = model
        .run_with_cache(CacheOptions::all().with_grads(), |m| m.forward(&x))
        .unwrap();
    assert!(
        cache.grad("hook_point").is_err(),
        "no gradient before backward"
    );
    loss(&out).backward().unwrap();
    for name in ["hook_point", "W_enc.hook_point", "b_enc.hook_point"] {
        let grad = cache.grad(name).unwrap();
        let shape = grad.dims().to_vec();
        let analytic = grad.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        for (i, a) in analytic.iter().enumerate() {
            let numeric = numeric_grad(&model, &x, name, &shape, i);
            let rel = (numeric - a).abs() / a.abs().max(1e-6);
            assert!(rel < 1e-3, "{name}[{i}]: analytic {a} numeric {numeric}");
        }
    }
    let grads = cache.gradients().unwrap();
    assert!(grads.contains("W_enc.hook_point_grad"));
    assert!(same_bits(
        &cache
            .grad("b_enc.hook_point_grad")
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap(),
        &cache
            .grad("b_enc.hook_point")
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
    ));
}

#[test]
fn backward_hook_returning_the_wrong_shape_is_an_error_naming_the_hook() {
    let (model, _vars) = var_autoencoder();
    let x = randn(&[3, 4]);
    let out = model
        .run_with_hooks(
            Hooks::new().backward("b_enc.hook_point", |g, _| g.narrow(1, 0, 2)),
            |m| m.forward(&x),
        )
        .unwrap();
    let err = loss(&out).backward().unwrap_err().to_string();
    assert!(
        err.contains("b_enc.hook_point") && err.contains("[3, 6]") && err.contains("[3, 2]"),
        "{err}"
    );
}

#[test]
fn backward_hooks_are_bound_to_their_run_and_never_fire_in_another() {
    let (model, _vars) = var_autoencoder();
    let x = randn(&[3, 4]);
    let fired = Arc::new(AtomicUsize::new(0));
    let f = fired.clone();
    let hooks = Hooks::new().backward("**", move |_, _| {
        f.fetch_add(1, Ordering::SeqCst);
    });
    let run1 = model.run_with_hooks(hooks, |m| m.forward(&x)).unwrap();
    let run2 = model.forward(&x).unwrap();
    loss(&run2).backward().unwrap();
    assert_eq!(
        fired.load(Ordering::SeqCst),
        0,
        "run 2 has no backward hooks"
    );
    loss(&run1).backward().unwrap();
    assert_eq!(
        fired.load(Ordering::SeqCst),
        6,
        "run 1's hooks fire at its backward, once per use"
    );
}

#[test]
fn without_backward_hooks_the_graph_is_unchanged() {
    let (model, _vars) = var_autoencoder();
    let x = randn(&[3, 4]);
    let plain = model.forward(&x).unwrap();
    let forward_hooked = model
        .run_with_hooks(Hooks::new().add("**", |_, _| ()), |m| m.forward(&x))
        .unwrap();
    let (cached, _) = model
        .run_with_cache(CacheOptions::all(), |m| m.forward(&x))
        .unwrap();
    let backward_hooked = model
        .run_with_hooks(Hooks::new().backward("**", |_, _| ()), |m| m.forward(&x))
        .unwrap();
    let nodes = |t: &Tensor| t.sorted_nodes().len();
    assert_eq!(nodes(&forward_hooked), nodes(&plain));
    assert_eq!(nodes(&cached), nodes(&plain));
    assert_eq!(
        nodes(&backward_hooked),
        nodes(&plain) + 6,
        "one op per backward-hooked firing"
    );
}

#[test]
fn two_threads_backpropagating_at_once_see_only_their_own_backward_hooks() {
    let (map, vb) = random_vb();
    let model = Arc::new(Block::new(16, 4, vb).unwrap());
    let _keep = map;
    let (x, mask) = (randn(&[1, 3, 16]), causal_mask(3));
    let grad_at_ln1 = |scale: f64| {
        let (out, cache) = model
            .run_with_cache(CacheOptions::names("ln1.hook_point").with_grads(), |m| {
                m.run_with_hooks(
                    Hooks::new().backward("hook_point", move |g, _| g * scale),
                    |m| m.forward(&x, &mask),
                )
            })
            .unwrap();
        loss(&out).backward().unwrap();
        cache.grad("ln1.hook_point").unwrap()
    };
    let reference: Vec<Tensor> = [2.0, 3.0].iter().map(|&s| grad_at_ln1(s)).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = [2.0, 3.0]
            .into_iter()
            .map(|s| scope.spawn(move || (0..20).map(|_| grad_at_ln1(s)).collect::<Vec<_>>()))
            .collect();
        for (h, expected) in handles.into_iter().zip(&reference) {
            for grad in h.join().unwrap() {
                assert!(
                    same_bits(&grad, expected),
                    "a thread saw the other thread's backward hook"
                );
            }
        }
    });
}

#[test]
fn tuple_output_hooks_the_first_tensors_gradient_and_fused_norms_are_reported() {
    let (_map, vb) = random_vb();
    let model = Stack::new(1, vb).unwrap();
    let tokens = Tensor::new(&[[1u32, 2, 3]], &Device::Cpu).unwrap();
    let (out, cache) = model
        .run_with_cache(
            CacheOptions::names(["hook_point", "ln_final.hook_point"]).with_grads(),
            |m| m.forward(&tokens),
        )
        .unwrap();
    loss(&out.0).backward().unwrap();
    assert_eq!(cache.grad("hook_point").unwrap().dims(), [1, 3, 16]);
    // candle-nn's fused LayerNorm (ln_final) has no backward: check_auto_hook says so.
    let report = check_auto_hook(&model, |m| m.forward(&tokens).map(|(x, _)| x)).unwrap();
    assert!(
        report.failures.iter().any(|f| f.contains("auto_hook::nn")),
        "{report}"
    );
}

#[test]
fn persistent_backward_hook_fires_in_every_run_until_reset() {
    let (mut model, _vars) = var_autoencoder();
    let x = randn(&[3, 4]);
    let fired = Arc::new(AtomicUsize::new(0));
    let f = fired.clone();
    model
        .add_backward_hook("hook_point", move |_, _| {
            f.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    loss(&model.forward(&x).unwrap()).backward().unwrap();
    loss(&model.forward(&x).unwrap()).backward().unwrap();
    assert_eq!(fired.load(Ordering::SeqCst), 2);
    model.reset_hooks();
    loss(&model.forward(&x).unwrap()).backward().unwrap();
    assert_eq!(fired.load(Ordering::SeqCst), 2);
}
