//! `cfg.json`: SAELens v6 configs (and pre-v6 ones on load).

mod parse;

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
    /// A gate `x' W_enc + b_gate > 0` decides which latents fire, the magnitude path
    /// `h = x' (W_enc ⊙ exp(r_mag)) + b_mag` their value: `f = 1[gate > 0] · relu(h)`
    /// (no `b_enc`).
    Gated,
    /// BatchTopK trained with nested reconstruction losses on prefixes of the latents
    /// ([`SaeTrainConfig::matryoshka_widths`](crate::SaeTrainConfig::matryoshka_widths));
    /// saved as `jumprelu` like batchtopk.
    MatryoshkaBatchTopK { k: f64 },
    /// A transcoder: reads `metadata.hook_name`, reconstructs the hook
    /// `metadata.hook_name_out` of width [`SaeConfig::d_out`] (SAELens's `transcoder`;
    /// `jumprelu`: `jumprelu_transcoder`; `skip`: `skip_transcoder` /
    /// `jumprelu_skip_transcoder`, adding `x W_skipᵀ`).
    Transcoder { jumprelu: bool, skip: bool },
}

impl Architecture {
    /// SAELens's name for the architecture.
    pub fn name(&self) -> &'static str {
        self.imp().name()
    }

    /// The architecture written to `cfg.json` (batchtopk SAEs are saved as jumprelu).
    pub fn saved_name(&self) -> &'static str {
        self.imp().inference().name()
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
    /// Transcoders: width of the activation they reconstruct (`None`: `d_in`).
    pub d_out: Option<usize>,
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
            d_out: None,
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

    /// For a transcoder: the hook it reconstructs (`metadata.hook_name_out`) and its
    /// width `d_out`; `b_dec` is then not subtracted from the input.
    ///
    /// ```
    /// use auto_hook_sae::{Architecture, SaeConfig};
    /// let arch = Architecture::Transcoder { jumprelu: false, skip: true };
    /// let cfg = SaeConfig::new(64, 256, arch)
    ///     .with_hook("blocks.0.ln2.hook_normalized")
    ///     .with_hook_out("blocks.0.hook_mlp_out", 64);
    /// assert_eq!((cfg.d_out(), cfg.apply_b_dec_to_input), (64, false));
    /// assert_eq!(cfg.to_json()["architecture"], "skip_transcoder");
    /// ```
    pub fn with_hook_out(mut self, hook_name_out: &str, d_out: usize) -> Self {
        self.metadata
            .extra
            .insert("hook_name_out".into(), hook_name_out.into());
        self.d_out = Some(d_out);
        self.apply_b_dec_to_input = false;
        self
    }

    /// Width of the SAE's output: `d_out` for transcoders, `d_in` otherwise.
    pub fn d_out(&self) -> usize {
        self.d_out.unwrap_or(self.d_in)
    }

    /// Checks the values against each other (`k <= d_sae`, non-zero widths).
    pub fn validate(&self) -> Result<()> {
        if self.d_in == 0 {
            return Err(config_err("d_in", "must be at least 1"));
        }
        if self.d_sae == 0 {
            return Err(config_err("d_sae", "must be at least 1"));
        }
        if self.d_out == Some(0) {
            return Err(config_err("d_out", "must be at least 1"));
        }
        let transcoder = self.architecture.imp().is_transcoder();
        if (transcoder || self.d_out() != self.d_in) && self.apply_b_dec_to_input {
            return Err(config_err(
                "apply_b_dec_to_input",
                "must be false for a transcoder (b_dec has d_out entries)",
            ));
        }
        if transcoder && self.normalize_activations != Normalization::None {
            return Err(config_err(
                "normalize_activations",
                "transcoders support only \"none\"",
            ));
        }
        self.architecture.imp().validate(self.d_sae)
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
        self.architecture.imp().write_json(self, &mut v);
        v
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
