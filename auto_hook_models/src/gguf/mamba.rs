//! Mamba GGUF files (llama.cpp's `mamba` architecture): the `mamba.*` metadata into a
//! [`MambaConfig`] and every tensor dequantised under its Hugging Face name, undoing
//! llama.cpp's conversion (it stores `A = -exp(A_log)` and the convolution squeezed to
//! `[d_inner, d_conv]`).

use super::{tensors::read_tensor, Gguf};
use crate::config::HiddenAct;
use crate::error::{Error, Result};
use crate::mamba::{mamba_from_var_builder, HookedMamba, MambaConfig};
use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use std::collections::HashMap;
use std::path::Path;

/// Loads a Mamba GGUF file, dequantised to `dtype`.
pub(crate) fn load_mamba(path: &Path, dtype: DType, device: &Device) -> Result<HookedMamba> {
    let mut file = Gguf::open(path)?;
    let arch = file.string("general.architecture")?.to_owned();
    if arch != "mamba" {
        return Err(Error::Unsupported(format!(
            "{} is a `{arch}` GGUF, not a Mamba one (transformers load with `load` or \
             `load_quantized`)",
            path.display()
        )));
    }
    let cfg = config(&file)?;
    let mut tensors = HashMap::new();
    let mut names: Vec<String> = file.content.tensor_infos.keys().cloned().collect();
    names.sort();
    for name in names {
        let hf = hf_name(&name).ok_or_else(|| {
            Error::Unsupported(format!(
                "{} holds tensor `{name}`, which the Mamba port has no place for",
                path.display()
            ))
        })?;
        let t = read_tensor(&mut file, &name, device)?.dequantize(device)?;
        let t = match hf.rsplit_once('.').map(|(_, last)| last) {
            // A = -exp(A_log) back to A_log.
            Some("A_log") => t.neg()?.log()?,
            // [d_inner, d_conv] back to Conv1d's [d_inner, 1, d_conv].
            Some("weight") if hf.ends_with("conv1d.weight") => t.unsqueeze(1)?,
            _ => t,
        };
        tensors.insert(hf, t.to_dtype(dtype)?);
    }
    mamba_from_var_builder(cfg, VarBuilder::from_tensors(tensors, dtype, device))
}

/// The model's shape from the `mamba.*` keys.
fn config(file: &Gguf) -> Result<MambaConfig> {
    let key = |k: &str| format!("mamba.{k}");
    let vocab_size = match file.opt_usize(&key("vocab_size"))? {
        Some(v) => v,
        None => file
            .content
            .tensor_infos
            .get("token_embd.weight")
            .map(|t| t.shape.dims()[0])
            .ok_or_else(|| file.missing(&key("vocab_size")))?,
    };
    let eps_key = key("attention.layer_norm_rms_epsilon");
    Ok(MambaConfig {
        vocab_size,
        d_model: file.usize(&key("embedding_length"))?,
        n_layers: file.usize(&key("block_count"))?,
        d_inner: file.usize(&key("ssm.inner_size"))?,
        d_state: file.usize(&key("ssm.state_size"))?,
        dt_rank: file.usize(&key("ssm.time_step_rank"))?,
        d_conv: file.usize(&key("ssm.conv_kernel"))?,
        conv_bias: file.has_tensor("blk.0.ssm_conv1d.bias"),
        proj_bias: file.has_tensor("blk.0.ssm_in.bias"),
        norm_eps: file
            .opt_f64(&eps_key)?
            .ok_or_else(|| file.missing(&eps_key))?,
        act: HiddenAct::Silu,
        tie_embeddings: !file.has_tensor("output.weight"),
        eos_token_id: file
            .opt_usize("tokenizer.ggml.eos_token_id")?
            .map(|id| id as u32),
    })
}

/// The Hugging Face name (`MambaForCausalLM`) of a llama.cpp Mamba tensor.
fn hf_name(name: &str) -> Option<String> {
    let top = match name {
        "token_embd.weight" => Some("backbone.embeddings.weight"),
        "output_norm.weight" => Some("backbone.norm_f.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(top) = top {
        return Some(top.to_owned());
    }
    let rest = name.strip_prefix("blk.")?;
    let (layer, part) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let hf = match part {
        "attn_norm.weight" => "norm.weight",
        "ssm_in.weight" => "mixer.in_proj.weight",
        "ssm_in.bias" => "mixer.in_proj.bias",
        "ssm_conv1d.weight" => "mixer.conv1d.weight",
        "ssm_conv1d.bias" => "mixer.conv1d.bias",
        "ssm_x.weight" => "mixer.x_proj.weight",
        "ssm_dt.weight" => "mixer.dt_proj.weight",
        "ssm_dt.bias" => "mixer.dt_proj.bias",
        "ssm_a" => "mixer.A_log",
        "ssm_d" => "mixer.D",
        "ssm_out.weight" => "mixer.out_proj.weight",
        "ssm_out.bias" => "mixer.out_proj.bias",
        _ => return None,
    };
    Some(format!("backbone.layers.{layer}.{hf}"))
}
