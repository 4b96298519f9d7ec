//! Loading Mixtral's sparse MoE blocks from either checkpoint layout.

use crate::config::ArchConfig;
use crate::error::{Error, Result};
use crate::moe::{Expert, FeedForward, MoeConfig, SparseMoe};
use candle_core::Tensor;
use candle_nn::{Linear, VarBuilder};

/// The MoE block of layer `vb` (`model.layers.{i}`): the legacy layout that
/// `save_pretrained` writes (`block_sparse_moe.gate.weight` `[E, H]`,
/// `block_sparse_moe.experts.{e}.w1/w3.weight` `[I, H]`, `w2.weight` `[H, I]`) or the
/// fused transformers-5 one (`mlp.gate.weight`, `mlp.experts.gate_up_proj`
/// `[E, 2I, H]` = cat(w1, w3), `mlp.experts.down_proj` `[E, H, I]`). A fresh `VarMap`
/// gets the legacy layout.
pub(crate) fn sparse_moe(
    vb: &VarBuilder,
    cfg: &ArchConfig,
    moe: &MoeConfig,
) -> Result<FeedForward> {
    let (h, i, e) = (cfg.d_model, cfg.d_mlp, moe.n_experts);
    let fused = vb.pp("mlp");
    let experts = if fused.contains_tensor("experts.gate_up_proj") {
        fused_experts(&fused, cfg, e)?
    } else if fused.contains_tensor("gate.weight") {
        return Err(Error::Io(format!(
            "{}.mlp has a router (gate.weight) but no experts.gate_up_proj",
            vb.prefix()
        )));
    } else {
        let m = vb.pp("block_sparse_moe");
        (0..e)
            .map(|x| {
                let x = m.pp(format!("experts.{x}"));
                Ok(Expert::new(
                    linear(&x.pp("w1"), (i, h))?,
                    linear(&x.pp("w3"), (i, h))?,
                    linear(&x.pp("w2"), (h, i))?,
                    cfg.act,
                )?)
            })
            .collect::<Result<Vec<_>>>()?
    };
    let router_vb = if fused.contains_tensor("experts.gate_up_proj") {
        fused.pp("gate")
    } else {
        vb.pp("block_sparse_moe.gate")
    };
    let router = linear(&router_vb, (e, h))?;
    Ok(FeedForward::Sparse(SparseMoe::new(
        router, experts, moe.top_k,
    )?))
}

/// A bias-free projection of shape `(d_out, d_in)`.
fn linear(vb: &VarBuilder, (d_out, d_in): (usize, usize)) -> Result<Linear> {
    crate::init::linear(vb, d_in, d_out, false)
}

fn fused_experts(vb: &VarBuilder, cfg: &ArchConfig, e: usize) -> Result<Vec<Expert>> {
    let (h, i) = (cfg.d_model, cfg.d_mlp);
    let gate_up: Tensor = vb.get((e, 2 * i, h), "experts.gate_up_proj")?;
    let down: Tensor = vb.get((e, h, i), "experts.down_proj")?;
    (0..e)
        .map(|x| {
            let w_out = Linear::new(down.get(x)?, None);
            Ok(Expert::from_gate_up(gate_up.get(x)?, w_out, cfg.act)?)
        })
        .collect()
}
