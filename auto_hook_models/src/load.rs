//! Loading Hugging Face checkpoints from a local folder.

use crate::attention::Attention;
use crate::config::{ArchConfig, NormKind, Positions};
use crate::error::{Error, Result};
use crate::init::{self, ONES, WEIGHT, ZEROS};
use crate::mlp::Mlp;
use crate::moe::FeedForward;
use crate::norm::Norm;
use crate::proj::Proj;
use crate::transformer::{HookedTransformer, TransformerBlock};
use candle_core::quantized::QTensor;
use candle_core::{DType, Device, Tensor};
use candle_nn::{Embedding, Init, Linear, VarBuilder};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Loads a checkpoint: a folder saved by Hugging Face `save_pretrained` (`config.json`
/// and `model.safetensors` or a sharded `model.safetensors.index.json`), or a GGUF file
/// (llama.cpp's format: Llama and Qwen2 architectures), dequantised to `dtype`. The
/// tokenizer comes along when the checkpoint has one (`tokenizer.json`, or the GGUF
/// metadata): see [`HookedTransformer::to_tokens`]. [`load_quantized`] keeps a GGUF
/// file's weights quantized. A Hugging Face repo id (`owner/name`, or `owner/name:FILE`
/// for one file such as a GGUF) is read from the local Hugging Face cache, or downloaded
/// with the `hub` feature: see [`crate::hub`].
///
/// ```no_run
/// let model = auto_hook_models::load("models/gpt2", candle_core::DType::F32, &candle_core::Device::Cpu)?;
/// let smol = auto_hook_models::load("SmolLM2-135M-Instruct.Q4_1.gguf", candle_core::DType::F32, &candle_core::Device::Cpu)?;
/// # Ok::<(), auto_hook_models::Error>(())
/// ```
pub fn load(path: impl AsRef<Path>, dtype: DType, device: &Device) -> Result<HookedTransformer> {
    let path = crate::hub::local(path.as_ref())?;
    let path = path.as_ref();
    if crate::gguf::is_gguf(path) {
        return crate::gguf::load_dequantized(path, dtype, device);
    }
    let cfg = ArchConfig::from_json(&read_config(path)?)?;
    let mut model = from_var_builder(cfg, open_weights(path, dtype, device)?)?;
    if let Some(tokenizer) = load_tokenizer(path)? {
        model.set_text(crate::text::Text::new(tokenizer).with_chat_template(chat_template(path)));
    }
    Ok(model)
}

/// Loads a GGUF file with its projections kept quantized (candle's `QMatMul`; the
/// activations are f32), under the same hook names as [`load`]. Norms and the token
/// embedding are dequantised to f32; a tied unembedding stays quantized. Takes a repo
/// id `owner/name:FILE.gguf` as [`load`] does.
///
/// ```no_run
/// let model = auto_hook_models::load_quantized("SmolLM2-135M-Instruct.Q4_1.gguf", &candle_core::Device::Cpu)?;
/// assert!(model.unembed().is_quantized());
/// # Ok::<(), auto_hook_models::Error>(())
/// ```
pub fn load_quantized(path: impl AsRef<Path>, device: &Device) -> Result<HookedTransformer> {
    let path = crate::hub::local(path.as_ref())?;
    let path = path.as_ref();
    if !crate::gguf::is_gguf(path) {
        return Err(Error::Input(format!(
            "{} is not a GGUF file: only GGUF checkpoints load quantized",
            path.display()
        )));
    }
    crate::gguf::load_quantized(path, device)
}

/// `chat_template` of a folder's `tokenizer_config.json`, if any.
fn chat_template(folder: &Path) -> Option<String> {
    let text = std::fs::read_to_string(folder.join("tokenizer_config.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json.get("chat_template")?.as_str().map(str::to_owned)
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
    build(cfg, Weights::dense(vb))
}

/// Where the weights come from: a `VarBuilder` of Hugging Face names, and (for a
/// quantized GGUF) the projections that stay quantized, under the same names.
pub(crate) struct Weights<'a> {
    vb: VarBuilder<'a>,
    quantized: HashMap<String, Arc<QTensor>>,
}

impl<'a> Weights<'a> {
    pub(crate) fn dense(vb: VarBuilder<'a>) -> Self {
        Self {
            vb,
            quantized: HashMap::new(),
        }
    }

    pub(crate) fn with_quantized(mut self, q: crate::gguf::Quantized) -> Self {
        self.quantized = q.0;
        self
    }

    /// The projection `{vb's prefix}.weight` `[d_out, d_in]` (+ bias): quantized when
    /// the quantized store has it, dense otherwise.
    fn linear(&self, vb: VarBuilder, d_in: usize, d_out: usize, bias: bool) -> Result<Proj> {
        let Some(q) = self.quantized_weight(&vb, d_in, d_out)? else {
            return Ok(Proj::Dense(init::linear(&vb, d_in, d_out, bias)?));
        };
        let b = if bias {
            Some(vb.get_with_hints(d_out, "bias", ZEROS)?)
        } else {
            None
        };
        Ok(Proj::quantized(q, b)?)
    }

    /// `{vb's prefix}.weight` from the quantized store, checked to be `[d_out, d_in]`.
    fn quantized_weight(
        &self,
        vb: &VarBuilder,
        d_in: usize,
        d_out: usize,
    ) -> Result<Option<Arc<QTensor>>> {
        let name = format!("{}.weight", vb.prefix());
        let Some(q) = self.quantized.get(&name) else {
            return Ok(None);
        };
        if q.shape().dims() != [d_out, d_in] {
            return Err(Error::Gguf(format!(
                "tensor `{name}` has shape {:?}, expected [{d_out}, {d_in}]",
                q.shape().dims()
            )));
        }
        Ok(Some(q.clone()))
    }
}

/// Builds the model from its weights.
pub(crate) fn build(cfg: ArchConfig, weights: Weights) -> Result<HookedTransformer> {
    match cfg.model_type.as_str() {
        "gpt2" => gpt2(cfg, &weights),
        _ => llama(cfg, &weights),
    }
}

/// A GPT-2 projection `{vb's prefix}` (with its bias): a Hugging Face `Conv1D` weight
/// `[in, out]`, turned into `Linear`'s `[out, in]`, or a GGUF's quantized `[out, in]`.
fn conv1d(weights: &Weights, vb: &VarBuilder, d_in: usize, d_out: usize) -> Result<Proj> {
    let b = Some(vb.get_with_hints(d_out, "bias", ZEROS)?);
    if let Some(q) = weights.quantized_weight(vb, d_in, d_out)? {
        return Ok(Proj::quantized(q, b)?);
    }
    let w = vb
        .get_with_hints((d_in, d_out), "weight", WEIGHT)?
        .t()?
        .contiguous()?;
    Ok(Proj::Dense(Linear::new(w, b)))
}

/// GPT-2's fused `c_attn` split into the query, key and value projections.
fn c_attn(weights: &Weights, vb: &VarBuilder, d: usize) -> Result<[Proj; 3]> {
    let b = vb.get_with_hints(3 * d, "bias", ZEROS)?;
    let bias = |k: usize| b.narrow(0, k * d, d);
    if let Some(q) = weights.quantized_weight(vb, d, 3 * d)? {
        // Quantized blocks run along a row: the rows of each projection move whole.
        let rows = |k: usize| -> Result<Proj> {
            let order: Vec<usize> = (k * d..(k + 1) * d).collect();
            let part = crate::gguf::take_rows(&q, &order)?;
            Ok(Proj::quantized(Arc::new(part), Some(bias(k)?))?)
        };
        return Ok([rows(0)?, rows(1)?, rows(2)?]);
    }
    let w = vb.get_with_hints((d, 3 * d), "weight", WEIGHT)?;
    let dense = |k: usize| -> Result<Proj> {
        let w = w.narrow(1, k * d, d)?.t()?.contiguous()?;
        Ok(Proj::Dense(Linear::new(w, Some(bias(k)?))))
    };
    Ok([dense(0)?, dense(1)?, dense(2)?])
}

fn layer_norm(vb: &VarBuilder, cfg: &ArchConfig) -> Result<Norm> {
    let w = vb.get_with_hints(cfg.d_model, "weight", ONES)?;
    let b = vb.get_with_hints(cfg.d_model, "bias", ZEROS)?;
    Ok(Norm::new(NormKind::LayerNorm, w, Some(b), cfg.norm_eps))
}

fn gpt2(cfg: ArchConfig, weights: &Weights) -> Result<HookedTransformer> {
    let root = &weights.vb;
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
        let [q, k, v] = c_attn(weights, &vb.pp("attn.c_attn"), d)?;
        let heads = (cfg.n_heads, cfg.n_kv_heads, cfg.d_head);
        let o = conv1d(weights, &vb.pp("attn.c_proj"), d, d)?;
        let attn = Attention::new(q, k, v, o, heads, false);
        let mlp = Mlp::new(
            None::<Proj>,
            conv1d(weights, &vb.pp("mlp.c_fc"), d, cfg.d_mlp)?,
            conv1d(weights, &vb.pp("mlp.c_proj"), cfg.d_mlp, d)?,
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
    let lm_head = match weights.quantized_weight(&root.pp("lm_head"), d, cfg.vocab_size)? {
        Some(q) => Proj::quantized(q, None)?,
        None if root.contains_tensor("lm_head.weight") => Proj::Dense(Linear::new(
            root.get_with_hints((cfg.vocab_size, d), "lm_head.weight", WEIGHT)?,
            None,
        )),
        // Tied: the embedding, quantized when the GGUF's is.
        None => match weights.quantized.get("transformer.wte.weight") {
            Some(q) => Proj::quantized(q.clone(), None)?,
            None => Proj::Dense(Linear::new(wte.clone(), None)),
        },
    };
    let embed = Embedding::new(wte, d);
    Ok(HookedTransformer::new(
        cfg,
        embed,
        Some(wpe),
        blocks,
        ln_final,
        lm_head,
    ))
}

fn llama(cfg: ArchConfig, weights: &Weights) -> Result<HookedTransformer> {
    let root = &weights.vb;
    let linear = |vb, d_in, d_out, bias| weights.linear(vb, d_in, d_out, bias);
    let vb = root.pp("model");
    let (d, dh) = (cfg.d_model, cfg.d_head);
    let rms = |vb: VarBuilder| -> Result<Norm> {
        if cfg.gemma.is_some() {
            return crate::gemma::norm(vb, &cfg);
        }
        Ok(Norm::new(
            NormKind::RmsNorm,
            vb.get_with_hints(d, "weight", ONES)?,
            None,
            cfg.norm_eps,
        ))
    };
    let (ln2_name, post_names) = match &cfg.gemma {
        Some(g) => crate::gemma::norm_names(g),
        None => ("post_attention_layernorm", None),
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
        let attn = match &cfg.gemma {
            Some(g) => attn.with_scores(
                g.query_pre_attn_scalar.powf(-0.5),
                g.attn_softcap,
                g.sliding_layers[i],
            ),
            None => attn,
        };
        let mlp = if let Some(moe) = &cfg.moe {
            crate::moe::load::sparse_moe(&vb, &cfg, moe)?
        } else {
            let m = vb.pp("mlp");
            FeedForward::Dense(Mlp::new(
                Some(linear(m.pp("gate_proj"), d, cfg.d_mlp, cfg.mlp_bias)?),
                linear(m.pp("up_proj"), d, cfg.d_mlp, cfg.mlp_bias)?,
                linear(m.pp("down_proj"), cfg.d_mlp, d, cfg.mlp_bias)?,
                cfg.act,
            ))
        };
        let block = TransformerBlock::with_feed_forward(
            rms(vb.pp("input_layernorm"))?,
            attn,
            rms(vb.pp(ln2_name))?,
            mlp,
        );
        blocks.push(match post_names {
            Some((ln1_post, ln2_post)) => {
                block.with_post_norms(rms(vb.pp(ln1_post))?, rms(vb.pp(ln2_post))?)
            }
            None => block,
        });
    }
    let wte: Tensor = vb.get_with_hints((cfg.vocab_size, d), "embed_tokens.weight", WEIGHT)?;
    let unembed = if cfg.tie_embeddings {
        match weights.quantized.get("model.embed_tokens.weight") {
            Some(q) => Proj::quantized(q.clone(), None)?,
            None => Proj::Dense(Linear::new(wte.clone(), None)),
        }
    } else {
        weights.linear(root.pp("lm_head"), d, cfg.vocab_size, false)?
    };
    let ln_final = rms(vb.pp("norm"))?;
    Ok(HookedTransformer::new(
        cfg,
        Embedding::new(wte, d),
        None,
        blocks,
        ln_final,
        unembed,
    ))
}

/// The tokenizer of a checkpoint: a folder's `tokenizer.json` (`None` when there is
/// none), or the one a GGUF file's metadata describes (built as transformers builds it,
/// so the ids match).
pub fn load_tokenizer(path: impl AsRef<Path>) -> Result<Option<tokenizers::Tokenizer>> {
    let path = path.as_ref();
    if crate::gguf::is_gguf(path) {
        let text = crate::gguf::tokenizer::text_from_gguf(&crate::gguf::Gguf::open(path)?)?;
        return Ok(Some(text.tokenizer().clone()));
    }
    let file = path.join("tokenizer.json");
    if !file.exists() {
        return Ok(None);
    }
    tokenizers::Tokenizer::from_file(&file)
        .map(Some)
        .map_err(|e| Error::Tokenizer(format!("{}: {e}", file.display())))
}
