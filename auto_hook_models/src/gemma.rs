//! Gemma (v1) and Gemma 2: the Llama recipe plus `(1 + w)` RMSNorm, embeddings scaled by
//! `sqrt(d_model)`, GeGLU, and for Gemma 2 norms after each sublayer (`ln1_post`,
//! `ln2_post`), tanh soft-caps on attention scores and logits, `query_pre_attn_scalar`,
//! and alternating sliding-window / global layers.

use crate::config::{activation, parse, ArchConfig, HiddenAct, NormKind};
use crate::error::{Error, Result};
use crate::norm::Norm;
use candle_core::{DType, Tensor};
use candle_nn::{Init, VarBuilder};
use serde::Deserialize;
use serde_json::Value;

/// What Gemma and Gemma 2 add to the Llama recipe (in [`ArchConfig::gemma`]).
///
/// ```
/// let cfg = auto_hook_models::ArchConfig::from_json(r#"{"model_type":"gemma2",
///     "vocab_size":10,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":3,
///     "num_attention_heads":2,"num_key_value_heads":1,"head_dim":6,
///     "query_pre_attn_scalar":5,"sliding_window":4,
///     "layer_types":["full_attention","sliding_attention","full_attention"]}"#)?;
/// let gemma = cfg.gemma.as_ref().unwrap();
/// assert_eq!(gemma.sliding_layers, [false, true, false]);
/// assert_eq!((gemma.attn_softcap, gemma.final_softcap), (Some(50.0), Some(30.0)));
/// assert_eq!((cfg.d_head, gemma.query_pre_attn_scalar, cfg.sliding_window), (6, 5.0, Some(4)));
/// # Ok::<(), auto_hook_models::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct GemmaConfig {
    /// Attention scores are `q·k / sqrt(query_pre_attn_scalar)` (`head_dim` for Gemma v1).
    pub query_pre_attn_scalar: f64,
    /// `c · tanh(s / c)` on the attention scores, before the mask (Gemma 2's
    /// `attn_logit_softcapping`); `hook_attn_scores` sees the capped scores.
    pub attn_softcap: Option<f64>,
    /// `c · tanh(l / c)` on the logits (`final_logit_softcapping`): the forward's output
    /// is capped, `unembed.hook_point` holds the logits before the cap.
    pub final_softcap: Option<f64>,
    /// Per layer, whether it attends through [`ArchConfig::sliding_window`] (Gemma 2's
    /// `layer_types`; by default layers 0, 2, 4, ... slide, as transformers has it).
    pub sliding_layers: Vec<bool>,
    /// Gemma 2's norms after attention and after the MLP (`blocks.{l}.ln1_post`,
    /// `ln2_post`), applied before `hook_attn_out` / `hook_mlp_out` as in TransformerLens.
    pub post_norms: bool,
}

impl GemmaConfig {
    /// `sqrt(d_model)`, by which token embeddings are multiplied (in the model's dtype,
    /// as transformers does): `hook_embed` is the scaled embedding.
    pub fn embed_scale(d_model: usize) -> f64 {
        (d_model as f64).sqrt()
    }
}

#[derive(Deserialize)]
struct GemmaJson {
    num_hidden_layers: usize,
    #[serde(default = "default_head_dim")]
    head_dim: usize,
    hidden_activation: Option<String>,
    hidden_act: Option<String>,
    #[serde(default = "default_true")]
    tie_word_embeddings: bool,
    query_pre_attn_scalar: Option<f64>,
    layer_types: Option<Vec<String>>,
    #[serde(default)]
    use_bidirectional_attention: Option<bool>,
}

fn default_head_dim() -> usize {
    256
}
fn default_true() -> bool {
    true
}

/// A key that is absent (→ `default`), `null` (→ `None`) or a number.
fn nullable(value: &Value, key: &str, default: Option<f64>) -> Result<Option<f64>> {
    match value.get(key) {
        None => Ok(default),
        Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| Error::Config(format!("`{key}` is {v}, expected a number or null"))),
    }
}

/// Reads a `gemma` or `gemma2` `config.json` (already parsed to JSON).
pub(crate) fn config(value: Value, model_type: String) -> Result<ArchConfig> {
    let v2 = model_type == "gemma2";
    let mut cfg = crate::config::llama(value.clone(), model_type.clone())?;
    let sliding_window = if v2 {
        nullable(&value, "sliding_window", Some(4096.0))?.map(|w| w as usize)
    } else {
        None
    };
    let (attn_softcap, final_softcap) = if v2 {
        (
            nullable(&value, "attn_logit_softcapping", Some(50.0))?,
            nullable(&value, "final_logit_softcapping", Some(30.0))?,
        )
    } else {
        (None, None)
    };
    let g: GemmaJson = parse(value, &model_type)?;
    if g.use_bidirectional_attention == Some(true) {
        return Err(Error::Unsupported(
            "Gemma with use_bidirectional_attention".into(),
        ));
    }
    // Gemma 2 reads `hidden_activation`; Gemma v1 `hidden_act`, where transformers turns
    // the legacy "gelu" of the official configs into the tanh approximation.
    let act = match (v2, g.hidden_activation.or(g.hidden_act).as_deref()) {
        (_, None) => HiddenAct::GeluTanh,
        (false, Some("gelu")) => HiddenAct::GeluTanh,
        (_, Some(name)) => activation(name)?,
    };
    let sliding_layers = match (v2, g.layer_types) {
        (false, _) => vec![false; g.num_hidden_layers],
        (true, None) => (0..g.num_hidden_layers).map(|i| i % 2 == 0).collect(),
        (true, Some(types)) => layer_types(&types, g.num_hidden_layers)?,
    };
    if g.head_dim == 0 {
        return Err(Error::Config("head_dim is 0".into()));
    }
    cfg.act = act;
    cfg.d_head = g.head_dim;
    cfg.tie_embeddings = g.tie_word_embeddings;
    cfg.sliding_window = sliding_window;
    cfg.gemma = Some(GemmaConfig {
        query_pre_attn_scalar: match (v2, g.query_pre_attn_scalar) {
            (true, Some(s)) => s,
            (true, None) => 256.0,
            (false, _) => g.head_dim as f64,
        },
        attn_softcap,
        final_softcap,
        sliding_layers,
        post_norms: v2,
    });
    Ok(cfg)
}

fn layer_types(types: &[String], n_layers: usize) -> Result<Vec<bool>> {
    if types.len() != n_layers {
        return Err(Error::Config(format!(
            "layer_types has {} entries for {n_layers} layers",
            types.len()
        )));
    }
    types
        .iter()
        .map(|t| match t.as_str() {
            "sliding_attention" => Ok(true),
            "full_attention" => Ok(false),
            other => Err(Error::Config(format!(
                "layer type `{other}` (expected sliding_attention or full_attention)"
            ))),
        })
        .collect()
}

/// Gemma's RMSNorm `x / rms(x) · (1 + w)`, with `1 + w` folded into the weight (in f32,
/// as transformers computes it) as TransformerLens does.
pub(crate) fn norm(vb: VarBuilder, cfg: &ArchConfig) -> Result<Norm> {
    let dtype = vb.dtype();
    let w: Tensor = vb.get_with_hints_dtype(cfg.d_model, "weight", Init::Const(0.0), DType::F32)?;
    let w = (w + 1.0)?.to_dtype(dtype)?;
    Ok(Norm::new(NormKind::RmsNorm, w, None, cfg.norm_eps))
}

/// The Hugging Face names of a Gemma block's norms: `(ln2, Some((ln1_post, ln2_post)))`
/// for Gemma 2, `(ln2, None)` for Gemma v1.
pub(crate) fn norm_names(
    gemma: &GemmaConfig,
) -> (&'static str, Option<(&'static str, &'static str)>) {
    if gemma.post_norms {
        (
            "pre_feedforward_layernorm",
            Some(("post_attention_layernorm", "post_feedforward_layernorm")),
        )
    } else {
        ("post_attention_layernorm", None)
    }
}

/// `c · tanh(x / c)`.
pub(crate) fn softcap(x: &Tensor, cap: Option<f64>) -> candle_core::Result<Tensor> {
    match cap {
        Some(c) => (x / c)?.tanh()? * c,
        None => Ok(x.clone()),
    }
}
