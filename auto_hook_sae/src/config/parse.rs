//! Reading `cfg.json`: SAELens v6 configs, and pre-v6 ones (`hook_point`,
//! `activation_fn: topk` with `activation_fn_kwargs.k`, metadata keys at the top level).

use super::{Architecture, Metadata, Normalization, SaeConfig, V6_MARKER};
use crate::error::{config_err, Result};
use candle_core::DType;
use serde_json::{json, Map, Value};

impl Normalization {
    fn parse(value: Option<&Value>) -> Result<Self> {
        match value {
            None | Some(Value::Null) => Ok(Normalization::None),
            Some(Value::String(s)) => match s.as_str() {
                "none" => Ok(Normalization::None),
                "expected_average_only_in" => Ok(Normalization::ExpectedAverageOnlyIn),
                "constant_norm_rescale" => Ok(Normalization::ConstantNormRescale),
                "layer_norm" => Ok(Normalization::LayerNorm),
                other => Err(config_err(
                    "normalize_activations",
                    format!("unknown value {other:?} (expected none, expected_average_only_in, constant_norm_rescale or layer_norm)"),
                )),
            },
            Some(other) => Err(config_err(
                "normalize_activations",
                format!("expected a string, got {other}"),
            )),
        }
    }
}

impl Metadata {
    fn from_map(mut map: Map<String, Value>) -> Result<Self> {
        if map.get("sae_lens_version") == Some(&json!(V6_MARKER)) {
            map.remove("sae_lens_version");
        }
        let mut take_str = |key: &str| -> Result<Option<String>> {
            match map.remove(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s)),
                Some(other) => Err(config_err(key, format!("expected a string, got {other}"))),
            }
        };
        let hook_name = match take_str("hook_name")? {
            Some(name) => Some(name),
            None => take_str("hook_point")?,
        };
        let model_name = take_str("model_name")?;
        let hook_head_index = opt_usize(map.remove("hook_head_index"), "hook_head_index")?;
        let context_size = opt_usize(map.remove("context_size"), "context_size")?;
        let prepend_bos = match map.remove("prepend_bos") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(b),
            Some(other) => {
                return Err(config_err(
                    "prepend_bos",
                    format!("expected a bool, got {other}"),
                ))
            }
        };
        Ok(Self {
            hook_name,
            model_name,
            hook_head_index,
            context_size,
            prepend_bos,
            extra: map,
        })
    }
}

impl SaeConfig {
    /// Parses a `cfg.json` text (v6, or pre-v6 with `hook_point` / `activation_fn`).
    pub fn from_json_str(text: &str) -> Result<Self> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| config_err("(file)", format!("not valid JSON: {e}")))?;
        Self::from_json(&value)
    }

    /// Parses a `cfg.json` object.
    pub fn from_json(value: &Value) -> Result<Self> {
        let obj = value
            .as_object()
            .ok_or_else(|| config_err("(file)", "expected a JSON object"))?;
        let d_in = req_usize(obj, "d_in")?;
        let d_sae = req_usize(obj, "d_sae")?;
        let architecture = parse_architecture(obj)?;
        let dtype = match obj.get("dtype") {
            None | Some(Value::Null) => DType::F32,
            Some(Value::String(s)) => parse_dtype(s)?,
            Some(other) => {
                return Err(config_err(
                    "dtype",
                    format!("expected a string, got {other}"),
                ))
            }
        };
        let device = match obj.get("device") {
            Some(Value::String(s)) => s.clone(),
            _ => "cpu".to_owned(),
        };
        let apply_b_dec_to_input = opt_bool(obj, "apply_b_dec_to_input")?.unwrap_or(true);
        let normalize_activations = Normalization::parse(obj.get("normalize_activations"))?;
        let reshape_hook_z = match obj.get("reshape_activations") {
            None | Some(Value::Null) => false,
            Some(Value::String(s)) if s == "none" => false,
            Some(Value::String(s)) if s == "hook_z" => true,
            Some(other) => {
                return Err(config_err(
                    "reshape_activations",
                    format!("unknown value {other} (expected \"none\" or \"hook_z\")"),
                ))
            }
        };
        let rescale = opt_bool(obj, "rescale_acts_by_decoder_norm")?.unwrap_or(false);
        let metadata = parse_metadata(obj)?;
        let d_out = opt_usize(obj.get("d_out").cloned(), "d_out")?;
        let cfg = Self {
            d_in,
            d_out,
            d_sae,
            architecture,
            dtype,
            device,
            apply_b_dec_to_input,
            normalize_activations,
            reshape_hook_z,
            rescale_acts_by_decoder_norm: rescale,
            metadata,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

/// v6 configs have a `metadata` object; pre-v6 ones keep its keys at the top level.
fn parse_metadata(obj: &Map<String, Value>) -> Result<Metadata> {
    match obj.get("metadata") {
        Some(Value::Object(m)) => Metadata::from_map(m.clone()),
        Some(Value::Null) | None => {
            let keys = [
                "hook_name",
                "hook_point",
                "model_name",
                "hook_head_index",
                "context_size",
                "prepend_bos",
            ];
            let map = keys
                .iter()
                .filter_map(|k| obj.get(*k).map(|v| ((*k).to_owned(), v.clone())))
                .collect();
            Metadata::from_map(map)
        }
        Some(other) => Err(config_err(
            "metadata",
            format!("expected an object, got {other}"),
        )),
    }
}

fn parse_architecture(obj: &Map<String, Value>) -> Result<Architecture> {
    let activation = obj
        .get("activation_fn")
        .or_else(|| obj.get("activation_fn_str"))
        .and_then(Value::as_str);
    let name = match obj.get("architecture") {
        None | Some(Value::Null) => "standard",
        Some(Value::String(s)) => s.as_str(),
        Some(other) => {
            return Err(config_err(
                "architecture",
                format!("expected a string, got {other}"),
            ))
        }
    };
    // Pre-v6: `architecture: standard` with `activation_fn: topk` and `activation_fn_kwargs.k`.
    let name = match (name, activation) {
        ("standard", Some("topk")) => "topk",
        ("standard", Some("relu") | None) => "standard",
        ("standard", Some(other)) => {
            return Err(config_err(
                "activation_fn",
                format!("unsupported activation {other:?} (supported: relu, topk)"),
            ))
        }
        (name, _) => name,
    };
    match name {
        "standard" => Ok(Architecture::Standard),
        "jumprelu" => Ok(Architecture::JumpRelu),
        "gated" => Ok(Architecture::Gated),
        "transcoder" => Ok(Architecture::Transcoder { jumprelu: false, skip: false }),
        "skip_transcoder" => Ok(Architecture::Transcoder { jumprelu: false, skip: true }),
        "jumprelu_transcoder" => Ok(Architecture::Transcoder { jumprelu: true, skip: false }),
        "jumprelu_skip_transcoder" => Ok(Architecture::Transcoder { jumprelu: true, skip: true }),
        "topk" => Ok(Architecture::TopK { k: topk_k(obj)? }),
        "batchtopk" => Ok(Architecture::BatchTopK { k: float_k(obj, name)? }),
        "matryoshka_batchtopk" => Ok(Architecture::MatryoshkaBatchTopK { k: float_k(obj, name)? }),
        other => Err(config_err(
            "architecture",
            format!("unknown or unsupported value {other:?} (supported: standard, topk, batchtopk, matryoshka_batchtopk, jumprelu, gated, transcoder, skip_transcoder, jumprelu_transcoder, jumprelu_skip_transcoder)"),
        )),
    }
}

/// batchtopk's `k` (a number: the mean per token).
fn float_k(obj: &Map<String, Value>, arch: &str) -> Result<f64> {
    match obj.get("k") {
        Some(v) => v
            .as_f64()
            .ok_or_else(|| config_err("k", format!("expected a number, got {v}"))),
        None => Err(config_err("k", format!("missing ({arch} needs k)"))),
    }
}

fn topk_k(obj: &Map<String, Value>) -> Result<usize> {
    if obj.contains_key("k") {
        return req_usize(obj, "k");
    }
    match obj.get("activation_fn_kwargs").and_then(|kw| kw.get("k")) {
        Some(v) => v.as_u64().map(|k| k as usize).ok_or_else(|| {
            config_err(
                "activation_fn_kwargs.k",
                format!("expected a non-negative integer, got {v}"),
            )
        }),
        None => Err(config_err("k", "missing (topk needs k)")),
    }
}

fn req_usize(obj: &Map<String, Value>, key: &str) -> Result<usize> {
    match obj.get(key) {
        None => Err(config_err(key, "missing")),
        Some(v) => v
            .as_u64()
            .map(|n| n as usize)
            .ok_or_else(|| config_err(key, format!("expected a non-negative integer, got {v}"))),
    }
}

fn opt_usize(value: Option<Value>, key: &str) -> Result<Option<usize>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(|n| Some(n as usize))
            .ok_or_else(|| config_err(key, format!("expected a non-negative integer, got {v}"))),
    }
}

fn opt_bool(obj: &Map<String, Value>, key: &str) -> Result<Option<bool>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(config_err(
            key,
            format!("expected true or false, got {other}"),
        )),
    }
}

/// `float32`, `torch.float32`, `float16`, `bfloat16`, `float64` → candle dtype.
fn parse_dtype(s: &str) -> Result<DType> {
    match s.strip_prefix("torch.").unwrap_or(s) {
        "float32" | "float" => Ok(DType::F32),
        "float16" | "half" => Ok(DType::F16),
        "bfloat16" => Ok(DType::BF16),
        "float64" | "double" => Ok(DType::F64),
        other => Err(config_err(
            "dtype",
            format!("unknown value {other:?} (expected float32, float16, bfloat16 or float64)"),
        )),
    }
}
