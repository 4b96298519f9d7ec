//! Mixtral's two dispatches (`MoeDispatch`): `Gather` runs each expert on its routed
//! tokens, `Dense` on every token with zero weights for the others. Same outputs, same
//! routing edits, different expert hook shapes.

mod common;

use auto_hook::prelude::*;
use auto_hook_models::{compare_with_reference, load, HookedTransformer, MoeDispatch};
use candle_core::{DType, Device, IndexOp, Tensor};
use common::{max_diff, reference_ids as ids};

const TOKENS: usize = 14;
const EXPERTS: usize = 4;
const LAYERS: usize = 2;

fn model(dispatch: MoeDispatch) -> HookedTransformer {
    let mut model = load(common::fixture_folder("mixtral"), DType::F32, &Device::Cpu).unwrap();
    model.set_moe_dispatch(dispatch);
    model
}

fn input() -> Tensor {
    ids(&common::reference(&common::fixture_folder("mixtral")))
}

#[test]
fn auto_is_gather_on_the_cpu_and_dense_gives_the_same_outputs_within_1e_6() {
    let ids = input();
    let run = |d: MoeDispatch| {
        model(d)
            .run_with_cache("blocks.*.hook_mlp_out", |m| m.forward(&ids, None))
            .unwrap()
    };
    let (auto, _) = run(MoeDispatch::Auto);
    let (gather, gather_cache) = run(MoeDispatch::Gather);
    let (dense, dense_cache) = run(MoeDispatch::Dense);
    assert_eq!(max_diff(&auto, &gather), 0.0, "Auto is Gather on the CPU");
    let diff = max_diff(&gather, &dense);
    assert!(diff <= 1e-5, "logits differ by {diff}");
    for i in 0..LAYERS {
        let name = format!("blocks.{i}.hook_mlp_out");
        let d = max_diff(
            gather_cache.get(&name).unwrap(),
            dense_cache.get(&name).unwrap(),
        );
        assert!(d <= 1e-5, "{name} differs by {d}");
    }
}

#[test]
fn dense_matches_hugging_face_within_1e_4() {
    let reference = common::reference(&common::fixture_folder("mixtral"));
    let comparison = compare_with_reference(&model(MoeDispatch::Dense), &reference).unwrap();
    assert!(comparison.diffs.len() > 10, "{:?}", comparison.diffs);
    for (key, hook, diff) in &comparison.diffs {
        assert!(*diff <= 1e-4, "{key} (hook {hook}) differs by {diff}");
    }
}

/// The tokens routed to expert `e`, in increasing order, from `hook_expert_indices`.
fn routed(indices: &Tensor, e: u32) -> Vec<u32> {
    let rows = indices.to_vec2::<u32>().unwrap();
    (0..rows.len() as u32)
        .filter(|&t| rows[t as usize].contains(&e))
        .collect()
}

#[test]
fn dense_experts_see_every_token_and_their_routed_rows_equal_gather() {
    let ids = input();
    let (_, gather) = model(MoeDispatch::Gather)
        .run_with_cache("blocks.*.mlp.**", |m| m.forward(&ids, None))
        .unwrap();
    let (_, dense) = model(MoeDispatch::Dense)
        .run_with_cache("blocks.*.mlp.**", |m| m.forward(&ids, None))
        .unwrap();
    let mut compared = 0;
    for i in 0..LAYERS {
        let p = format!("blocks.{i}.mlp");
        let indices = gather.get(&format!("{p}.hook_expert_indices")).unwrap();
        for e in 0..EXPERTS {
            let tokens = routed(indices, e as u32);
            for point in ["hook_gate", "hook_pre", "hook_post", "w_out.hook_point"] {
                let name = format!("{p}.experts.{e}.{point}");
                let all = dense.get(&name).unwrap();
                assert_eq!(all.dim(0).unwrap(), TOKENS, "{name}: every token");
                if tokens.is_empty() {
                    assert!(gather.get(&name).is_err(), "{name} fired with no tokens");
                    continue;
                }
                let picked = Tensor::new(tokens.as_slice(), &Device::Cpu).unwrap();
                let rows = all.index_select(&picked, 0).unwrap();
                let d = max_diff(&rows, gather.get(&name).unwrap());
                assert!(d <= 1e-5, "{name}: routed rows differ by {d}");
                compared += 1;
            }
        }
    }
    assert!(compared >= 4 * 6, "only {compared} expert points compared");
}

fn ablate_expert_3() -> Hooks<'static> {
    common::ablate_expert(3, 4)
}

#[test]
fn routing_edits_act_the_same_in_both_dispatches() {
    let ids = input();
    let clean = model(MoeDispatch::Dense).forward(&ids, None).unwrap();
    let ablated = |d: MoeDispatch| {
        model(d)
            .run_with_hooks(ablate_expert_3(), |m| m.forward(&ids, None))
            .unwrap()
    };
    let (gather, dense) = (ablated(MoeDispatch::Gather), ablated(MoeDispatch::Dense));
    assert!(
        max_diff(&clean, &dense) > 1e-3,
        "the ablation changed nothing"
    );
    let diff = max_diff(&gather, &dense);
    assert!(diff <= 1e-5, "ablated logits differ by {diff}");
    // Dense: expert 3's combine weight is zero for every token, so its `w_out` output
    // is computed but does not reach the block output.
    let hooks = ablate_expert_3().add("blocks.0.mlp.experts.3.w_out.hook_point", |y, _| {
        y.affine(0.0, 1e6)
    });
    let poisoned = model(MoeDispatch::Dense)
        .run_with_hooks(hooks, |m| m.forward(&ids, None))
        .unwrap();
    assert_eq!(max_diff(&poisoned, &dense), 0.0);
}

#[test]
fn an_out_of_range_index_is_refused_in_both_dispatches() {
    let ids = input();
    for d in [MoeDispatch::Gather, MoeDispatch::Dense] {
        let hooks = Hooks::new().add("blocks.1.mlp.hook_expert_indices", |idx, _| {
            let t = idx.dim(0)?;
            // Only the last token's second slot is out of range.
            let mut v = idx.to_vec2::<u32>()?;
            v[t - 1][1] = 9;
            Tensor::new(v, idx.device())
        });
        let err = model(d)
            .run_with_hooks(hooks, |m| m.forward(&ids, None))
            .unwrap_err()
            .to_string();
        assert!(err.contains("outside 0..4"), "{d:?}: {err}");
    }
}

#[test]
fn an_in_range_index_edit_routes_alike_in_both_dispatches() {
    let ids = input();
    let send_to_0_and_2 = || {
        Hooks::new().add("blocks.*.mlp.hook_expert_indices", |idx, _| {
            let (t, k) = idx.dims2()?;
            Tensor::from_vec(vec![[0u32, 2]; t].concat(), (t, k), idx.device())
        })
    };
    let run = |d: MoeDispatch| {
        model(d)
            .run_with_hooks(send_to_0_and_2(), |m| m.forward(&ids, None))
            .unwrap()
    };
    let (gather, dense) = (run(MoeDispatch::Gather), run(MoeDispatch::Dense));
    let clean = model(MoeDispatch::Gather).forward(&ids, None).unwrap();
    assert!(max_diff(&clean, &gather) > 1e-3, "the edit changed nothing");
    let diff = max_diff(&gather.i(0).unwrap(), &dense.i(0).unwrap());
    assert!(diff <= 1e-5, "edited routing differs by {diff}");
}
