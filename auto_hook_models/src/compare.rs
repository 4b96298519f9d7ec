//! Parity with Hugging Face: map reference activations recorded in PyTorch to hook
//! names, run the same input, and measure the largest difference per key.
//!
//! A reference file is a safetensors file with `input_ids` (int64 `[batch, seq]`), and
//! any of: `logits`; `hidden_states.{i}` (Hugging Face's `output_hidden_states`: 0 = the
//! embeddings, i = the output of layer i-1, the last = after the final norm); and keys
//! named by PyTorch module path (`transformer.h.1.attn`, `model.layers.0.mlp`,
//! `model.norm`, ...) holding that module's forward output (first element of a tuple).

use crate::causal_lm::CausalLm;
use crate::config::ArchConfig;
use crate::error::{Error, Result};
use crate::transformer::HookedTransformer;
use auto_hook::prelude::*;
use candle_core::{DType, Tensor};
use std::collections::{BTreeMap, HashMap};

/// The hook name whose activation equals the reference key, if any.
///
/// ```
/// let cfg = auto_hook_models::ArchConfig::from_json(
///     r#"{"model_type":"gpt2","vocab_size":10,"n_positions":8,"n_embd":8,"n_layer":2,"n_head":2}"#)?;
/// use auto_hook_models::hook_for_reference_key as map;
/// assert_eq!(map(&cfg, "transformer.h.1.attn").as_deref(), Some("blocks.1.hook_attn_out"));
/// assert_eq!(map(&cfg, "hidden_states.2").as_deref(), Some("ln_final.hook_point"));
/// assert_eq!(map(&cfg, "logits").as_deref(), Some("unembed.hook_point"));
/// assert_eq!(map(&cfg, "transformer.h.0.attn.attn_dropout"), None);
/// # Ok::<(), auto_hook_models::Error>(())
/// ```
pub fn hook_for_reference_key(cfg: &ArchConfig, key: &str) -> Option<String> {
    if let Some(i) = key.strip_prefix("hidden_states.") {
        let i: usize = i.parse().ok()?;
        return match i {
            0 => Some("blocks.0.hook_resid_pre".into()),
            i if i < cfg.n_layers => Some(format!("blocks.{}.hook_resid_post", i - 1)),
            i if i == cfg.n_layers => Some("ln_final.hook_point".into()),
            _ => None,
        };
    }
    if let Some(i) = key.strip_prefix("attentions.") {
        let i: usize = i.parse().ok().filter(|&i| i < cfg.n_layers)?;
        return Some(format!("blocks.{i}.attn.hook_pattern"));
    }
    if key == "logits" || key == "lm_head" {
        return Some("unembed.hook_point".into());
    }
    let gemma2 = cfg.gemma.as_ref().is_some_and(|g| g.post_norms);
    let (prefix, layers, table): (&str, &str, &[(&str, &str)]) = match cfg.model_type.as_str() {
        "gpt2" => ("transformer.", "h.", GPT2_KEYS),
        _ if gemma2 => ("model.", "layers.", GEMMA2_KEYS),
        _ => ("model.", "layers.", LLAMA_KEYS),
    };
    let key = key.strip_prefix(prefix).unwrap_or(key);
    if let Some(rest) = key.strip_prefix(layers) {
        let (layer, sub) = rest.split_once('.').unwrap_or((rest, ""));
        let layer: usize = layer.parse().ok().filter(|&l| l < cfg.n_layers)?;
        let moe: &[(&str, &str)] = if cfg.moe.is_some() { MOE_KEYS } else { &[] };
        let hook = table.iter().chain(moe).find(|(k, _)| *k == sub)?.1;
        return Some(format!("blocks.{layer}.{hook}"));
    }
    let top: &[(&str, &str)] = if cfg.model_type == "gpt2" {
        &[
            ("wte", "embed.hook_point"),
            ("wpe", "pos_embed.hook_point"),
            ("ln_f", "ln_final.hook_point"),
        ]
    } else {
        &[
            // Gemma's `embed_tokens` scales by sqrt(d_model): `hook_embed`.
            (
                "embed_tokens",
                if cfg.gemma.is_some() {
                    "hook_embed"
                } else {
                    "embed.hook_point"
                },
            ),
            ("norm", "ln_final.hook_point"),
        ]
    };
    top.iter()
        .find(|(k, _)| *k == key)
        .map(|(_, h)| (*h).to_owned())
}

const GPT2_KEYS: &[(&str, &str)] = &[
    ("", "hook_resid_post"),
    ("ln_1", "ln1.hook_point"),
    ("attn", "hook_attn_out"),
    ("attn.c_proj", "attn.w_o.hook_point"),
    ("ln_2", "ln2.hook_point"),
    ("mlp", "hook_mlp_out"),
    ("mlp.c_fc", "mlp.w_in.hook_point"),
    ("mlp.act", "mlp.hook_post"),
    ("mlp.c_proj", "mlp.w_out.hook_point"),
];

const LLAMA_KEYS: &[(&str, &str)] = &[
    ("", "hook_resid_post"),
    ("input_layernorm", "ln1.hook_point"),
    ("self_attn", "hook_attn_out"),
    ("self_attn.q_proj", "attn.w_q.hook_point"),
    ("self_attn.k_proj", "attn.w_k.hook_point"),
    ("self_attn.v_proj", "attn.w_v.hook_point"),
    ("self_attn.o_proj", "attn.w_o.hook_point"),
    ("post_attention_layernorm", "ln2.hook_point"),
    ("mlp", "hook_mlp_out"),
    ("mlp.gate_proj", "mlp.w_gate.hook_point"),
    ("mlp.up_proj", "mlp.w_in.hook_point"),
    ("mlp.down_proj", "mlp.w_out.hook_point"),
];

/// Gemma 2's block: the attention and MLP outputs pass through a norm before the residual.
const GEMMA2_KEYS: &[(&str, &str)] = &[
    ("", "hook_resid_post"),
    ("input_layernorm", "ln1.hook_point"),
    ("self_attn", "attn.hook_point"),
    ("self_attn.q_proj", "attn.w_q.hook_point"),
    ("self_attn.k_proj", "attn.w_k.hook_point"),
    ("self_attn.v_proj", "attn.w_v.hook_point"),
    ("self_attn.o_proj", "attn.w_o.hook_point"),
    ("post_attention_layernorm", "hook_attn_out"),
    ("pre_feedforward_layernorm", "ln2.hook_point"),
    ("mlp", "mlp.hook_point"),
    ("mlp.gate_proj", "mlp.w_gate.hook_point"),
    ("mlp.up_proj", "mlp.w_in.hook_point"),
    ("mlp.down_proj", "mlp.w_out.hook_point"),
    ("post_feedforward_layernorm", "hook_mlp_out"),
];

/// Mixtral's sparse MoE block (`mlp` in transformers 5, `block_sparse_moe` before) and
/// its router (`gate`, whose first output is the router logits).
const MOE_KEYS: &[(&str, &str)] = &[
    ("mlp.gate", "mlp.router.hook_point"),
    ("block_sparse_moe", "hook_mlp_out"),
    ("block_sparse_moe.gate", "mlp.router.hook_point"),
];

/// A model [`compare_with_reference`] can check: how reference keys map to its hook
/// names (its forward is [`CausalLm::forward`]).
pub trait ReferenceModel: CausalLm {
    /// The hook name whose activation equals the reference key, if any.
    fn reference_hook(&self, key: &str) -> Option<String>;
}

impl ReferenceModel for HookedTransformer {
    fn reference_hook(&self, key: &str) -> Option<String> {
        hook_for_reference_key(self.config(), key)
    }
}

/// The outcome of [`compare_with_reference`].
#[derive(Debug, Clone)]
pub struct Comparison {
    /// `(reference key, hook name, max |difference|)`, in key order.
    pub diffs: Vec<(String, String, f32)>,
    /// Reference keys no hook point maps to.
    pub skipped: Vec<String>,
}

impl Comparison {
    /// The largest difference over all compared keys.
    pub fn max_abs_diff(&self) -> f32 {
        self.diffs.iter().map(|d| d.2).fold(0.0, f32::max)
    }
}

/// Runs the reference's `input_ids` (and `attention_mask`, when present) through `model`
/// and compares every key that maps to a hook point (see [`hook_for_reference_key`]).
/// A key whose shape differs from its hook point's activation is an error.
pub fn compare_with_reference<M: ReferenceModel>(
    model: &M,
    reference: &HashMap<String, Tensor>,
) -> Result<Comparison> {
    let ids = reference
        .get("input_ids")
        .ok_or_else(|| Error::Input("the reference has no `input_ids`".into()))?
        .to_dtype(DType::U32)?;
    let mask = reference
        .get("attention_mask")
        .map(|m| m.to_dtype(DType::U32))
        .transpose()?;
    let keys: BTreeMap<&str, &Tensor> = reference
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "input_ids" | "attention_mask"))
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    let mut mapped = Vec::new();
    let mut skipped = Vec::new();
    for key in keys.keys() {
        match model.reference_hook(key) {
            Some(hook) => mapped.push((key.to_string(), hook)),
            None => skipped.push(key.to_string()),
        }
    }
    let names: Vec<String> = mapped.iter().map(|(_, h)| h.clone()).collect();
    let (output, cache) = if names.is_empty() {
        (None, auto_hook::ActivationCache::new())
    } else {
        let (output, cache) = model
            .run_with_cache(CacheOptions::names(names), |m| {
                CausalLm::forward(m, &ids, mask.as_ref())
            })
            .map_err(|e| Error::Input(e.to_string()))?;
        (Some(output), cache)
    };
    let mut diffs = Vec::with_capacity(mapped.len());
    for (key, mut hook) in mapped {
        // `logits` is the forward's output: after Gemma 2's final soft-cap, which
        // `unembed.hook_point` (the lm_head's output) comes before.
        let ours = match (key.as_str(), &output) {
            ("logits", Some(output)) => {
                hook = "output".into();
                output
            }
            _ => cache.get(&hook).map_err(|e| Error::Input(e.to_string()))?,
        };
        // A reference may hold a broadcast form (GPT-2's position embedding is `[1, seq, d]`).
        let theirs = keys[key.as_str()].broadcast_as(ours.shape()).map_err(|_| {
            Error::Input(format!(
                "`{key}` has shape {:?} but `{hook}` has {:?}",
                keys[key.as_str()].dims(),
                ours.dims()
            ))
        })?;
        let diff = (ours.to_dtype(DType::F32)? - theirs.to_dtype(DType::F32)?)?
            .abs()?
            .flatten_all()?
            .max(0)?
            .to_scalar::<f32>()?;
        diffs.push((key, hook, diff));
    }
    Ok(Comparison { diffs, skipped })
}
