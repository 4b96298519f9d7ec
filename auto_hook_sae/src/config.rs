//! `cfg.json`: SAELens v6 configs (and pre-v6 ones on load).

use crate::error::{config_err, Result};
use candle_core::DType;
use serde_json::{json, Map, Value};

/// How latents are computed from the pre-activation `h = (x - b_dec) W_enc + b_enc`.
///
/// ```
/// use auto_hook_sae::Architecture;
/// assert_eq!(Architecture::TopK { k: 8 }.name(), "topk");
/// assert_eq!(Architecture::BatchTopK { k: 8.0 }.saved_name(), "jumprelu");
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Architecture {
    /// `f = relu(h)`.
    Standard,
    /// Keep the `k` largest entries of `h` per token (then relu).
    TopK { k: usize },
    /// Keep the `k * tokens` largest entries of `relu(h)` over the whole batch; saved as
    /// `jumprelu` with the learned threshold.
    BatchTopK { k: f64 },
    /// `f = relu(h) * 1[h > threshold]`.
    JumpRelu,
}

impl Architecture {
    /// SAELens's name for the architecture.
    pub fn name(&self) -> &'static str {
        match self {
            Architecture::Standard => "standard",
            Architecture::TopK { .. } => "topk",
            Architecture::BatchTopK { .. } => "batchtopk",
            Architecture::JumpRelu => "jumprelu",
        }
    }

    /// The architecture written to `cfg.json` (batchtopk SAEs are saved as jumprelu).
    pub fn saved_name(&self) -> &'static str {
        match self {
            Architecture::BatchTopK { .. } => "jumprelu",
            other => other.name(),
        }
    }
}

/// SAELens's `normalize_activations`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalization {
    /// Inputs are used as they are.
    None,
    /// Training scales inputs by `sqrt(d_in) / E‖x‖`; the factor is folded into the
    /// weights when saving, so a saved SAE has `none`.
    ExpectedAverageOnlyIn,
    /// Each input is scaled to norm `sqrt(d_in)`, and the output scaled back.
    ConstantNormRescale,
    /// Each input is layer-normalised (no affine), and the output de-normalised.
    LayerNorm,
}

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

    /// SAELens's name.
    pub fn name(&self) -> &'static str {
        match self {
            Normalization::None => "none",
            Normalization::ExpectedAverageOnlyIn => "expected_average_only_in",
            Normalization::ConstantNormRescale => "constant_norm_rescale",
            Normalization::LayerNorm => "layer_norm",
        }
    }
}

/// The `metadata.sae_lens_version` written when the metadata has none: SAELens treats
/// configs without a 6.x version as pre-v6.
const V6_MARKER: &str = "6.0.0";

/// What the SAE's recorded provenance says: the hook it was trained on and how.
///
/// ```
/// use auto_hook_sae::Metadata;
/// let m = Metadata { hook_name: Some("blocks.0.hook_resid_post".into()), ..Metadata::default() };
/// assert_eq!(m.to_json()["hook_name"], "blocks.0.hook_resid_post");
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata {
    /// The hook point the SAE reads (`metadata.hook_name`).
    pub hook_name: Option<String>,
    /// The model it was trained on.
    pub model_name: Option<String>,
    /// For `[batch, pos, heads, d_head]` hooks: the one head used, if any.
    pub hook_head_index: Option<usize>,
    /// Tokens per training sequence.
    pub context_size: Option<usize>,
    /// Whether sequences started with BOS.
    pub prepend_bos: Option<bool>,
    /// Every other metadata key, kept as it was.
    pub extra: Map<String, Value>,
}

impl Metadata {
    /// The metadata object of `cfg.json`.
    pub fn to_json(&self) -> Value {
        let mut map = self.extra.clone();
        let mut put = |key: &str, v: Value| {
            map.insert(key.to_owned(), v);
        };
        put("hook_name", json!(self.hook_name));
        put("model_name", json!(self.model_name));
        put("hook_head_index", json!(self.hook_head_index));
        put("context_size", json!(self.context_size));
        put("prepend_bos", json!(self.prepend_bos));
        // SAELens reads configs without a version >= 6 as pre-v6 (and drops the metadata).
        map.entry("sae_lens_version")
            .or_insert_with(|| json!(V6_MARKER));
        Value::Object(map)
    }

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

/// An SAE's configuration, as in SAELens v6's `cfg.json`.
///
/// ```
/// use auto_hook_sae::{Architecture, SaeConfig};
/// let cfg = SaeConfig::new(64, 512, Architecture::TopK { k: 8 });
/// let text = cfg.to_json().to_string();
/// assert_eq!(SaeConfig::from_json_str(&text)?, cfg);
/// # Ok::<(), auto_hook_sae::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SaeConfig {
    /// Width of the activation the SAE reads (after any `hook_z` flattening).
    pub d_in: usize,
    /// Number of latents.
    pub d_sae: usize,
    /// How latents are computed.
    pub architecture: Architecture,
    /// Weight dtype (`dtype` key).
    pub dtype: DType,
    /// The `device` key, kept as written (tensors load where the caller asks).
    pub device: String,
    /// Subtract `b_dec` from the input before encoding.
    pub apply_b_dec_to_input: bool,
    /// Input normalisation.
    pub normalize_activations: Normalization,
    /// `true` for SAELens's `hook_z` reshape: `[.., heads, d_head]` is flattened to
    /// `[.., heads * d_head]` on the way in and restored on the way out.
    pub reshape_hook_z: bool,
    /// topk / batchtopk: pre-activations are scaled by the decoder row norms before the
    /// top-k, and latents divided by them before decoding (SAELens's training default).
    pub rescale_acts_by_decoder_norm: bool,
    /// Provenance: hook name, model, context size, ...
    pub metadata: Metadata,
}

impl SaeConfig {
    /// A config with SAELens's defaults: f32, cpu, `apply_b_dec_to_input`, no normalisation.
    pub fn new(d_in: usize, d_sae: usize, architecture: Architecture) -> Self {
        Self {
            d_in,
            d_sae,
            architecture,
            dtype: DType::F32,
            device: "cpu".into(),
            apply_b_dec_to_input: true,
            normalize_activations: Normalization::None,
            reshape_hook_z: false,
            rescale_acts_by_decoder_norm: false,
            metadata: Metadata::default(),
        }
    }

    /// Sets `metadata.hook_name`.
    pub fn with_hook(mut self, hook_name: &str) -> Self {
        self.metadata.hook_name = Some(hook_name.to_owned());
        self
    }

    /// Checks the values against each other (`k <= d_sae`, non-zero widths).
    pub fn validate(&self) -> Result<()> {
        if self.d_in == 0 {
            return Err(config_err("d_in", "must be at least 1"));
        }
        if self.d_sae == 0 {
            return Err(config_err("d_sae", "must be at least 1"));
        }
        match self.architecture {
            Architecture::TopK { k } if k == 0 || k > self.d_sae => Err(config_err(
                "k",
                format!("k = {k} must be between 1 and d_sae = {}", self.d_sae),
            )),
            Architecture::BatchTopK { k } if !(k > 0.0 && k <= self.d_sae as f64) => {
                Err(config_err(
                    "k",
                    format!("k = {k} must be in (0, d_sae = {}]", self.d_sae),
                ))
            }
            _ => Ok(()),
        }
    }

    /// The v6 `cfg.json` object (what `SAE.load_from_disk` reads).
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "d_in": self.d_in,
            "d_sae": self.d_sae,
            "dtype": dtype_name(self.dtype),
            "device": self.device,
            "apply_b_dec_to_input": self.apply_b_dec_to_input,
            "normalize_activations": self.normalize_activations.name(),
            "reshape_activations": if self.reshape_hook_z { "hook_z" } else { "none" },
            "metadata": self.metadata.to_json(),
            "architecture": self.architecture.name(),
        });
        if let Architecture::TopK { k } = self.architecture {
            v["k"] = json!(k);
            v["rescale_acts_by_decoder_norm"] = json!(self.rescale_acts_by_decoder_norm);
        }
        if let Architecture::BatchTopK { k } = self.architecture {
            v["k"] = json!(k);
            v["rescale_acts_by_decoder_norm"] = json!(self.rescale_acts_by_decoder_norm);
        }
        v
    }

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
        let cfg = Self {
            d_in,
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
        "topk" => Ok(Architecture::TopK { k: topk_k(obj)? }),
        "batchtopk" => {
            let k = match obj.get("k") {
                Some(v) => v.as_f64().ok_or_else(|| config_err("k", format!("expected a number, got {v}")))?,
                None => return Err(config_err("k", "missing (batchtopk needs k)")),
            };
            Ok(Architecture::BatchTopK { k })
        }
        other => Err(config_err(
            "architecture",
            format!("unknown or unsupported value {other:?} (supported: standard, topk, batchtopk, jumprelu)"),
        )),
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
pub(crate) fn parse_dtype(s: &str) -> Result<DType> {
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

/// The SAELens name of a dtype.
pub(crate) fn dtype_name(dtype: DType) -> &'static str {
    match dtype {
        DType::F16 => "float16",
        DType::BF16 => "bfloat16",
        DType::F64 => "float64",
        _ => "float32",
    }
}
