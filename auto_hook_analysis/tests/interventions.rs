//! Knockout, ablation and steering on the demo model, checked by hand.

use auto_hook::prelude::*;
use auto_hook_analysis::{
    ablate_heads, ablate_neurons, steer, steering_vector, Ablation, Knockout, Point,
};
use auto_hook_models::HookedTransformer;
use candle_core::{DType, Device, Tensor};

fn model() -> HookedTransformer {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/induction-2l");
    auto_hook_models::load(dir, DType::F32, &Device::Cpu).unwrap()
}

fn tokens() -> Tensor {
    Tensor::new(
        &[[0u32, 5, 9, 17, 5, 9], [0, 33, 2, 40, 33, 2]],
        &Device::Cpu,
    )
    .unwrap()
}

fn vec1(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn knockout_renormalises_the_remaining_keys_of_the_chosen_head_only() {
    let model = model();
    let (_, clean) = model
        .run_with_cache("blocks.1.attn.hook_pattern", |m| m.forward(&tokens(), None))
        .unwrap();
    let hooks = Knockout::new()
        .block(1, Some(2), 5, 3)
        .hooks(&model)
        .unwrap();
    let (_, cache) = model
        .run_with_hooks(hooks, |m| {
            m.run_with_cache("blocks.1.attn.hook_pattern", |m| m.forward(&tokens(), None))
        })
        .unwrap();
    let before = clean.get("blocks.1.attn.hook_pattern").unwrap();
    let after = cache.get("blocks.1.attn.hook_pattern").unwrap();
    for b in 0..2 {
        let row = |t: &Tensor, h: usize| vec1(&t.get(b).unwrap().get(h).unwrap().get(5).unwrap());
        let (p, q) = (row(before, 2), row(after, 2));
        assert_eq!(q[3], 0.0);
        for k in [0usize, 1, 2, 4, 5] {
            let want = p[k] / (1.0 - p[3]);
            assert!((q[k] - want).abs() < 1e-5, "key {k}: {} vs {want}", q[k]);
        }
        assert_eq!(row(before, 1), row(after, 1), "another head changed");
    }
    let err = Knockout::new()
        .block_all(0, None, 0..1, 0..1)
        .hooks(&model)
        .unwrap();
    let err = model
        .run_with_hooks(err, |m| m.forward(&tokens(), None))
        .unwrap_err()
        .to_string();
    assert!(err.contains("blocks every key some query sees"), "{err}");
    assert!(Knockout::new().block(2, None, 1, 0).hooks(&model).is_err());
}

#[test]
fn mean_ablation_sets_the_head_to_its_mean_over_batch_and_positions() {
    let model = model();
    let (_, reference) = model
        .run_with_cache("blocks.*.attn.hook_z", |m| m.forward(&tokens(), None))
        .unwrap();
    let z = reference.get("blocks.0.attn.hook_z").unwrap(); // [2, 6, 4, 16]
    let mut mean = vec![0f32; 16];
    for b in 0..2 {
        for p in 0..6 {
            for (m, v) in mean
                .iter_mut()
                .zip(vec1(&z.get(b).unwrap().get(p).unwrap().get(3).unwrap()))
            {
                *m += v / 12.0;
            }
        }
    }
    let hooks = ablate_heads(&model, &[(0, 3)], Ablation::Mean(&reference)).unwrap();
    let other = Tensor::new(&[[0u32, 60, 61, 62]], &Device::Cpu).unwrap();
    let (_, cache) = model
        .run_with_hooks(hooks, |m| {
            m.run_with_cache("blocks.0.attn.hook_z", |m| m.forward(&other, None))
        })
        .unwrap();
    let got = cache.get("blocks.0.attn.hook_z").unwrap();
    for p in 0..4 {
        let v = vec1(&got.get(0).unwrap().get(p).unwrap().get(3).unwrap());
        for (a, b) in v.iter().zip(&mean) {
            assert!((a - b).abs() < 1e-5);
        }
    }
    let err = ablate_heads(&model, &[(0, 4)], Ablation::Zero)
        .err()
        .unwrap()
        .to_string();
    assert_eq!(err, "head 4 is out of range 0..4");
    let err = ablate_neurons(&model, &[(1, 4)], Ablation::Zero)
        .err()
        .unwrap()
        .to_string();
    assert_eq!(err, "neuron 4 is out of range 0..4");
}

#[test]
fn the_steering_vector_is_the_mean_last_token_difference_and_steer_adds_it() {
    let model = model();
    let ids = |v: &[u32]| Tensor::new(v, &Device::Cpu).unwrap().unsqueeze(0).unwrap();
    let positive = [ids(&[0, 5, 9]), ids(&[0, 7, 9, 11])];
    let negative = [ids(&[0, 5, 20])];
    let point = Point::ResidPost(0);
    let vector = steering_vector(&model, point, &positive, &negative).unwrap();
    let last = |t: &Tensor| {
        let (_, c) = model
            .run_with_cache("blocks.0.hook_resid_post", |m| m.forward(t, None))
            .unwrap();
        let a = c.get("blocks.0.hook_resid_post").unwrap().clone();
        vec1(&a.narrow(1, a.dim(1).unwrap() - 1, 1).unwrap())
    };
    let (p0, p1, n0) = (last(&positive[0]), last(&positive[1]), last(&negative[0]));
    let got = vec1(&vector);
    for j in 0..64 {
        let want = (p0[j] + p1[j]) / 2.0 - n0[j];
        assert!((got[j] - want).abs() < 1e-5);
    }
    let hooks = steer(&model, point, &vector, 2.0).unwrap();
    let x = ids(&[0, 1, 2]);
    let (_, c) = model
        .run_with_hooks(hooks, |m| {
            m.run_with_cache("blocks.0.hook_resid_post", |m| m.forward(&x, None))
        })
        .unwrap();
    let steered = vec1(c.get("blocks.0.hook_resid_post").unwrap());
    let (_, c) = model
        .run_with_cache("blocks.0.hook_resid_post", |m| m.forward(&x, None))
        .unwrap();
    let plain = vec1(c.get("blocks.0.hook_resid_post").unwrap());
    for (i, (s, p)) in steered.iter().zip(&plain).enumerate() {
        assert!((s - p - 2.0 * got[i % 64]).abs() < 1e-4);
    }
    assert!(steering_vector(&model, point, &[], &negative).is_err());
}
