//! One model shared by threads: each call sees only its own hooks.

mod common;

use auto_hook::prelude::*;
use common::conformance::same_bits;
use common::models::*;
use std::sync::Arc;

#[test]
fn eight_threads_two_hundred_runs_each_see_only_their_own_hooks() {
    let (_map, vb) = random_vb();
    let model = Arc::new(Block::new(16, 4, vb).unwrap());
    let x = randn(&[1, 3, 16]);
    let mask = causal_mask(3);
    // Reference outputs computed on one thread: thread i scales the MLP output by i.
    let expected: Vec<_> = (0..8)
        .map(|i| {
            model
                .run_with_hooks(
                    Hooks::new().add("mlp.hook_point", move |a, _| a * i as f64),
                    |m| m.forward(&x, &mask),
                )
                .unwrap()
        })
        .collect();
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let (model, x, mask, expected) =
                (model.clone(), x.clone(), mask.clone(), expected[i].clone());
            std::thread::spawn(move || {
                for run in 0..200 {
                    let mut seen = 0;
                    let hooks = Hooks::new().add("mlp.hook_point", |a, _| {
                        seen += 1;
                        a * i as f64
                    });
                    let out = model
                        .run_with_hooks(hooks, |m| m.forward(&x, &mask))
                        .unwrap();
                    assert_eq!(seen, 1, "thread {i} run {run}: own hook fired once");
                    assert!(
                        same_bits(&out, &expected),
                        "thread {i} run {run} saw another thread's hook"
                    );
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}
