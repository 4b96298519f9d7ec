//! Loading Hugging Face checkpoints from a local folder.

use crate::attention::Attention;
use crate::config::{ArchConfig, NormKind, Positions};
use crate::error::{Error, Result};
use crate::mlp::Mlp;
use crate::moe::FeedForward;
use crate::norm::Norm;
use crate::transformer::{HookedTransformer, TransformerBlock};
use candle_core::{DType, Device, Tensor};
use candle_nn::{Embedding, Init, Linear, VarBuilder};
use std::path::{Path, PathBuf};

/// Loads a checkpoint saved by Hugging Face `save_pretrained`: `config.json` and
/// `model.safetensors` or a sharded `model.safetensors.index.json`, in `dtype`.
///
/// ```no_run
/// let model = auto_hook_models::load("models/gpt2", candle_core::DType::F32, &candle_core::Device::Cpu)?;
/// # Ok::<(), auto_hook_models::Error>(())
/// ```
pub fn load(folder: impl AsRef<Path>, dtype: DType, device: &Device) -> Result<HookedTransformer> {
    let folder = folder.as_ref();
    let cfg = ArchConfig::from_json(&read_config(folder)?)?;
    from_var_builder(cfg, open_weights(folder, dtype, device)?)
}

/// The text of a checkpoint folder's `config.json`.
pub(crate) fn read_config(folder: &Path) -> Result<String> {
    let config_path = folder.join("config.json");
    std::fs::read_to_string(&config_path)
        .map_err(|e| Error::Config(format!("cannot read {}: {e}", config_path.display())))
}

/// A `VarBuilder` over a checkpoint folder's safetensors, single-file or sharded.
pub(crate) fn open_weights(
    folder: &Path,
    dtype: DType,
    device: &Device,
) -> Result<VarBuilder<'static>> {
    let files = weight_files(folder)?;
    // SAFETY: the files are memory-mapped read-only; like every candle loader, this
    // assumes nobody modifies them while the model is being built.
    Ok(unsafe { VarBuilder::from_mmaped_safetensors(&files, dtype, device)? })
}

/// The safetensors files of a checkpoint folder, single-file or sharded.
pub fn weight_files(folder: &Path) -> Result<Vec<PathBuf>> {
    let single = folder.join("model.safetensors");
    if single.exists() {
        return Ok(vec![single]);
    }
    let index = folder.join("model.safetensors.index.json");
    let text = std::fs::read_to_string(&index).map_err(|_| {
        Error::Io(format!(
            "{} has neither model.safetensors nor model.safetensors.index.json",
            folder.display()
        ))
    })?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::Io(format!("{}: {e}", index.display())))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| Error::Io(format!("{} has no weight_map", index.display())))?;
    let mut files: Vec<String> = map
        .values()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    files.sort();
    files.dedup();
    Ok(files.into_iter().map(|f| folder.join(f)).collect())
}

/// Builds the hooked model from Hugging Face weight names.
pub fn from_var_builder(cfg: ArchConfig, vb: VarBuilder) -> Result<HookedTransformer> {
    match cfg.model_type.as_str() {
        "gpt2" => gpt2(cfg, vb),
        _ => llama(cfg, vb),
    }
}

// Initialisations used when the VarBuilder creates the weights (a fresh `VarMap`, to train
// from scratch): GPT-2's and Llama's own. A checkpoint's tensors ignore them.
const WEIGHT: Init = Init::Randn {
    mean: 0.0,
    stdev: 0.02,
};
const ONES: Init = Init::Const(1.0);
const ZEROS: Init = Init::Const(0.0);

/// GPT-2's Conv1D stores `[in, out]`; `Linear` wants `[out, in]`.
fn conv1d(vb: &VarBuilder, d_in: usize, d_out: usize) -> Result<Linear> {
    let w = vb
        .get_with_hints((d_in, d_out), "weight", WEIGHT)?
        .t()?
        .contiguous()?;
    Ok(Linear::new(
        w,
        Some(vb.get_with_hints(d_out, "bias", ZEROS)?),
    ))
}

fn layer_norm(vb: &VarBuilder, cfg: &ArchConfig) -> Result<Norm> {
    let w = vb.get_with_hints(cfg.d_model, "weight", ONES)?;
    let b = vb.get_with_hints(cfg.d_model, "bias", ZEROS)?;
    Ok(Norm::new(NormKind::LayerNorm, w, Some(b), cfg.norm_eps))
}

fn gpt2(cfg: ArchConfig, root: VarBuilder) -> Result<HookedTransformer> {
    // `GPT2LMHeadModel` checkpoints prefix `transformer.`; `GPT2Model` ones do not. A
    // fresh `VarMap` (training from scratch) has neither and gets the HF layout.
    let bare =
        root.contains_tensor("wte.weight") && !root.contains_tensor("transformer.wte.weight");
    let vb = if bare {
        root.clone()
    } else {
        root.pp("transformer")
    };
    let (d, n_ctx) = match cfg.positions {
        Positions::Learned { n_ctx } => (cfg.d_model, n_ctx),
        Positions::Rotary { .. } => {
            return Err(Error::Config("GPT-2 with rotary positions".into()))
        }
    };
    let wte = vb.get_with_hints((cfg.vocab_size, d), "wte.weight", WEIGHT)?;
    let wpe = Embedding::new(
        vb.get_with_hints(
            (n_ctx, d),
            "wpe.weight",
            Init::Randn {
                mean: 0.0,
                stdev: 0.01,
            },
        )?,
        d,
    );
    let mut blocks = Vec::with_capacity(cfg.n_layers);
    for i in 0..cfg.n_layers {
        let vb = vb.pp(format!("h.{i}"));
        let c_attn = vb.pp("attn.c_attn");
        let (w, b) = (
            c_attn.get_with_hints((d, 3 * d), "weight", WEIGHT)?,
            c_attn.get_with_hints(3 * d, "bias", ZEROS)?,
        );
        let split = |k: usize| -> Result<Linear> {
            let w = w.narrow(1, k * d, d)?.t()?.contiguous()?;
            Ok(Linear::new(w, Some(b.narrow(0, k * d, d)?)))
        };
        let heads = (cfg.n_heads, cfg.n_kv_heads, cfg.d_head);
        let attn = Attention::new(
            split(0)?,
            split(1)?,
            split(2)?,
            conv1d(&vb.pp("attn.c_proj"), d, d)?,
            heads,
            false,
        );
        let mlp = Mlp::new(
            None::<Linear>,
            conv1d(&vb.pp("mlp.c_fc"), d, cfg.d_mlp)?,
            conv1d(&vb.pp("mlp.c_proj"), cfg.d_mlp, d)?,
            cfg.act,
        );
        blocks.push(TransformerBlock::new(
            layer_norm(&vb.pp("ln_1"), &cfg)?,
            attn,
            layer_norm(&vb.pp("ln_2"), &cfg)?,
            mlp,
        ));
    }
    let ln_final = layer_norm(&vb.pp("ln_f"), &cfg)?;
    let lm_head = if root.contains_tensor("lm_head.weight") {
        root.get_with_hints((cfg.vocab_size, d), "lm_head.weight", WEIGHT)?
    } else {
        wte.clone()
    };
    let embed = Embedding::new(wte, d);
    Ok(HookedTransformer::new(
        cfg,
        embed,
        Some(wpe),
        blocks,
        ln_final,
        Linear::new(lm_head, None),
    ))
}

fn linear(vb: VarBuilder, d_in: usize, d_out: usize, bias: bool) -> Result<Linear> {
    let w = vb.get_with_hints((d_out, d_in), "weight", WEIGHT)?;
    let b = if bias {
        Some(vb.get_with_hints(d_out, "bias", ZEROS)?)
    } else {
        None
    };
    Ok(Linear::new(w, b))
}

fn llama(cfg: ArchConfig, root: VarBuilder) -> Result<HookedTransformer> {
    let vb = root.pp("model");
    let (d, dh) = (cfg.d_model, cfg.d_head);
    let rms = |vb: VarBuilder| -> Result<Norm> {
        Ok(Norm::new(
            NormKind::RmsNorm,
            vb.get_with_hints(d, "weight", ONES)?,
            None,
            cfg.norm_eps,
        ))
    };
    let mut blocks = Vec::with_capacity(cfg.n_layers);
    for i in 0..cfg.n_layers {
        let vb = vb.pp(format!("layers.{i}"));
        let a = vb.pp("self_attn");
        let attn = Attention::new(
            linear(a.pp("q_proj"), d, cfg.n_heads * dh, cfg.qkv_bias)?,
            linear(a.pp("k_proj"), d, cfg.n_kv_heads * dh, cfg.qkv_bias)?,
            linear(a.pp("v_proj"), d, cfg.n_kv_heads * dh, cfg.qkv_bias)?,
            linear(a.pp("o_proj"), cfg.n_heads * dh, d, cfg.o_bias)?,
            (cfg.n_heads, cfg.n_kv_heads, dh),
            true,
        );
        let mlp = if let Some(moe) = &cfg.moe {
            crate::moe_load::sparse_moe(&vb, &cfg, moe)?
        } else {
            let m = vb.pp("mlp");
            FeedForward::Dense(Mlp::new(
                Some(linear(m.pp("gate_proj"), d, cfg.d_mlp, cfg.mlp_bias)?),
                linear(m.pp("up_proj"), d, cfg.d_mlp, cfg.mlp_bias)?,
                linear(m.pp("down_proj"), cfg.d_mlp, d, cfg.mlp_bias)?,
                cfg.act,
            ))
        };
        blocks.push(TransformerBlock::with_feed_forward(
            rms(vb.pp("input_layernorm"))?,
            attn,
            rms(vb.pp("post_attention_layernorm"))?,
            mlp,
        ));
    }
    let wte: Tensor = vb.get_with_hints((cfg.vocab_size, d), "embed_tokens.weight", WEIGHT)?;
    let lm_head = if cfg.tie_embeddings {
        wte.clone()
    } else {
        root.get_with_hints((cfg.vocab_size, d), "lm_head.weight", WEIGHT)?
    };
    let ln_final = rms(vb.pp("norm"))?;
    Ok(HookedTransformer::new(
        cfg,
        Embedding::new(wte, d),
        None,
        blocks,
        ln_final,
        Linear::new(lm_head, None),
    ))
}

/// The tokenizer of a checkpoint folder (`tokenizer.json`), when there is one.
pub fn load_tokenizer(folder: impl AsRef<Path>) -> Result<Option<tokenizers::Tokenizer>> {
    let path = folder.as_ref().join("tokenizer.json");
    if !path.exists() {
        return Ok(None);
    }
    tokenizers::Tokenizer::from_file(&path)
        .map(Some)
        .map_err(|e| Error::Io(format!("{}: {e}", path.display())))
}
