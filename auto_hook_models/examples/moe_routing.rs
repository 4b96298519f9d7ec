//! Mixture-of-experts routing: which experts each token uses, and what happens when one
//! expert is ablated through a hook on `blocks.{i}.mlp.hook_expert_weights`.
//!
//! cargo run --release -p auto_hook_models --example moe_routing [-- MIXTRAL_FOLDER]
//!
//! By default the tiny random Mixtral test fixture (4 experts, top-2): its tokens mean
//! nothing; what it shows is the mechanism.

use auto_hook::prelude::*;
use auto_hook_models::{load, MoeDispatch};
use candle_core::{DType, Device, Tensor, D};
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mixtral");
    let folder = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or(fixture);
    let model = load(&folder, DType::F32, &Device::Cpu)?;
    let moe = model
        .config()
        .moe
        .clone()
        .ok_or("not a mixture-of-experts checkpoint")?;
    let prompt: Vec<u32> = vec![5, 17, 3, 42, 9, 23, 5, 17];
    let ids = Tensor::new(prompt.as_slice(), &Device::Cpu)?.unsqueeze(0)?;

    let names = [
        "blocks.*.mlp.hook_expert_indices",
        "blocks.*.mlp.router.hook_point",
    ];
    let (clean, cache) = model.run_with_cache(names, |m| m.forward(&ids, None))?;
    println!(
        "{} experts, top-{}; experts used per token (best first):",
        moe.n_experts, moe.top_k
    );
    for layer in 0..model.config().n_layers {
        let idx = cache.get(&format!("blocks.{layer}.mlp.hook_expert_indices"))?;
        let rows: Vec<String> = idx
            .to_vec2::<u32>()?
            .iter()
            .map(|r| format!("{r:?}"))
            .collect();
        println!("  layer {layer}: {}", rows.join(" "));
    }
    let aux = model.router_aux_loss(&cache, None)?.to_scalar::<f32>()?;
    println!("load-balancing loss {aux:.4} (1.0 is perfectly balanced)");

    // Ablate expert 3 everywhere: zero its routing weight, so top-k never picks it.
    let ablated_expert = moe.n_experts - 1;
    let mut keep = vec![1f32; moe.n_experts];
    keep[ablated_expert] = 0.0;
    let keep = Tensor::new(keep.as_slice(), &Device::Cpu)?;
    let mut fired = 0;
    let hooks = Hooks::new()
        .add("blocks.*.mlp.hook_expert_weights", |w, _| {
            w.broadcast_mul(&keep)
        })
        .add(
            format!("blocks.*.mlp.experts.{ablated_expert}.hook_post"),
            |_, _| fired += 1,
        );
    let ablated = model.run_with_hooks(hooks, |m| m.forward(&ids, None))?;
    let shift = (&ablated - &clean)?
        .abs()?
        .max(D::Minus1)?
        .squeeze(0)?
        .to_vec1::<f32>()?;
    println!("expert {ablated_expert} ablated: its hooks fired {fired} times; max |logit change| per token:");
    println!(
        "  {:?}",
        shift.iter().map(|s| format!("{s:.3}")).collect::<Vec<_>>()
    );

    // The same ablation with the dispatch a GPU uses by default: every expert runs on
    // every token, weighted, and nothing is read back to the host.
    let mut dense = model.clone();
    dense.set_moe_dispatch(MoeDispatch::Dense);
    let zero_3 = Hooks::new().add("blocks.*.mlp.hook_expert_weights", |w, _| {
        w.broadcast_mul(&keep)
    });
    let dense_ablated = dense.run_with_hooks(zero_3, |m| m.forward(&ids, None))?;
    let diff = (dense_ablated - &ablated)?
        .abs()?
        .max_all()?
        .to_scalar::<f32>()?;
    println!("MoeDispatch::Dense (no host reads): the same ablated logits within {diff:.1e}");
    Ok(())
}
