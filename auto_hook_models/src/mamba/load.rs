//! Loading Hugging Face Mamba checkpoints (`MambaForCausalLM`, `backbone.*` names).

use super::block::{MambaBlock, MixerWeights};
use super::config::MambaConfig;
use super::HookedMamba;
use crate::config::NormKind;
use crate::error::Result;
use crate::init::{linear, ONES, WEIGHT, ZEROS};
use crate::norm::Norm;
use candle_core::{DType, Device};
use candle_nn::{Embedding, Linear, VarBuilder};
use std::path::Path;

/// Loads a Mamba checkpoint saved by Hugging Face `save_pretrained` (`config.json` with
/// `model_type: mamba` and safetensors, single or sharded) in `dtype`. Transformer
/// checkpoints go through [`load`](crate::load), which refuses a Mamba folder with a
/// pointer here. Takes a Hugging Face repo id as [`load`](crate::load) does, and a
/// llama.cpp Mamba GGUF file (dequantised to `dtype`).
///
/// ```no_run
/// let model = auto_hook_models::load_mamba("path/to/mamba-130m", candle_core::DType::F32, &candle_core::Device::Cpu)?;
/// # Ok::<(), auto_hook_models::Error>(())
/// ```
pub fn load_mamba(folder: impl AsRef<Path>, dtype: DType, device: &Device) -> Result<HookedMamba> {
    let folder = crate::hub::local(folder.as_ref())?;
    let folder = folder.as_ref();
    if crate::gguf::is_gguf(folder) {
        return crate::gguf::mamba::load_mamba(folder, dtype, device);
    }
    let cfg = MambaConfig::from_json(&crate::load::read_config(folder)?)?;
    mamba_from_var_builder(cfg, crate::load::open_weights(folder, dtype, device)?)
}

/// Builds the hooked model from Hugging Face names: `backbone.embeddings`,
/// `backbone.layers.{i}.norm`, `backbone.layers.{i}.mixer.{in_proj, conv1d, x_proj,
/// dt_proj, A_log, D, out_proj}`, `backbone.norm_f`, and `lm_head` unless the embeddings
/// are tied. A missing or mis-shaped tensor is an error naming it.
pub fn mamba_from_var_builder(cfg: MambaConfig, root: VarBuilder) -> Result<HookedMamba> {
    let vb = root.pp("backbone");
    let (d, e, n, r, k) = (
        cfg.d_model,
        cfg.d_inner,
        cfg.d_state,
        cfg.dt_rank,
        cfg.d_conv,
    );
    let rms = |vb: VarBuilder| -> Result<Norm> {
        let w = vb.get_with_hints(d, "weight", ONES)?;
        Ok(Norm::new(NormKind::RmsNorm, w, None, cfg.norm_eps))
    };
    let mut blocks = Vec::with_capacity(cfg.n_layers);
    for i in 0..cfg.n_layers {
        let layer = vb.pp(format!("layers.{i}"));
        let m = layer.pp("mixer");
        let projections = (
            linear(&m.pp("in_proj"), d, 2 * e, cfg.proj_bias)?,
            linear(&m.pp("x_proj"), e, r + 2 * n, false)?,
            linear(&m.pp("dt_proj"), r, e, true)?,
            linear(&m.pp("out_proj"), e, d, cfg.proj_bias)?,
        );
        let conv = m.pp("conv1d");
        let weights = MixerWeights {
            conv_w: conv
                .get_with_hints((e, 1, k), "weight", WEIGHT)?
                .reshape((e, k))?,
            conv_b: if cfg.conv_bias {
                Some(conv.get_with_hints(e, "bias", ZEROS)?)
            } else {
                None
            },
            a_log: m.get_with_hints((e, n), "A_log", ZEROS)?,
            d: m.get_with_hints(e, "D", ONES)?,
        };
        let norm_w = layer.pp("norm").get_with_hints(d, "weight", ONES)?;
        blocks.push(MambaBlock::new(norm_w, projections, weights, &cfg)?);
    }
    let wte = vb.get_with_hints((cfg.vocab_size, d), "embeddings.weight", WEIGHT)?;
    let lm_head = if cfg.tie_embeddings {
        wte.clone()
    } else {
        root.get_with_hints((cfg.vocab_size, d), "lm_head.weight", WEIGHT)?
    };
    let ln_final = rms(vb.pp("norm_f"))?;
    Ok(HookedMamba::new(
        cfg,
        Embedding::new(wte, d),
        blocks,
        ln_final,
        Linear::new(lm_head, None),
    ))
}
