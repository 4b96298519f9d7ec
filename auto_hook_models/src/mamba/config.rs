//! Mamba's `config.json`.

use crate::config::HiddenAct;
use crate::error::{Error, Result};
use serde::Deserialize;
use serde_json::Value;

/// Everything [`HookedMamba`](super::HookedMamba) needs to know about a Mamba checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct MambaConfig {
    pub vocab_size: usize,
    /// The residual width `D` (`hidden_size`).
    pub d_model: usize,
    pub n_layers: usize,
    /// The inner width `E` (`intermediate_size`, `expand · hidden_size`).
    pub d_inner: usize,
    /// The state size `N` per inner channel (`state_size`).
    pub d_state: usize,
    /// The rank `R` of the time-step projection (`time_step_rank`, `"auto"` = ⌈D/16⌉).
    pub dt_rank: usize,
    /// The causal convolution's kernel `K` (`conv_kernel`).
    pub d_conv: usize,
    pub conv_bias: bool,
    /// Biases on `in_proj` and `out_proj` (`use_bias`).
    pub proj_bias: bool,
    pub norm_eps: f64,
    pub act: HiddenAct,
    pub tie_embeddings: bool,
    pub eos_token_id: Option<u32>,
}

#[derive(Deserialize)]
struct MambaJson {
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    #[serde(default = "default_state")]
    state_size: usize,
    intermediate_size: Option<usize>,
    #[serde(default = "default_expand")]
    expand: usize,
    #[serde(default = "default_kernel")]
    conv_kernel: usize,
    #[serde(default)]
    time_step_rank: Option<Value>,
    #[serde(default = "default_true")]
    use_conv_bias: bool,
    #[serde(default)]
    use_bias: bool,
    #[serde(default = "default_eps")]
    layer_norm_epsilon: f64,
    #[serde(default = "default_act")]
    hidden_act: String,
    #[serde(default = "default_true")]
    tie_word_embeddings: bool,
}

fn default_state() -> usize {
    16
}
fn default_expand() -> usize {
    2
}
fn default_kernel() -> usize {
    4
}
fn default_true() -> bool {
    true
}
fn default_eps() -> f64 {
    1e-5
}
fn default_act() -> String {
    "silu".into()
}

impl MambaConfig {
    /// Reads a Hugging Face `config.json` text with `model_type: mamba`.
    ///
    /// ```
    /// let cfg = auto_hook_models::MambaConfig::from_json(
    ///     r#"{"model_type":"mamba","vocab_size":10,"hidden_size":32,"num_hidden_layers":2}"#)?;
    /// assert_eq!((cfg.d_inner, cfg.d_state, cfg.dt_rank, cfg.d_conv), (64, 16, 2, 4));
    /// assert!(auto_hook_models::MambaConfig::from_json(r#"{"model_type":"llama"}"#).is_err());
    /// # Ok::<(), auto_hook_models::Error>(())
    /// ```
    pub fn from_json(text: &str) -> Result<Self> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| Error::Config(format!("config.json is not JSON: {e}")))?;
        let model_type = value.get("model_type").and_then(Value::as_str);
        if model_type != Some("mamba") {
            return Err(Error::Unsupported(format!(
                "model_type {model_type:?} is not `mamba` (load transformers with `auto_hook_models::load`)"
            )));
        }
        let eos_token_id = crate::config::eos(&value);
        let c: MambaJson = crate::config::parse(value, "mamba")?;
        let act = match crate::config::activation(&c.hidden_act) {
            Ok(HiddenAct::Silu) => HiddenAct::Silu,
            _ => {
                return Err(Error::Unsupported(format!(
                    "mamba hidden_act `{}` (the reference path uses silu)",
                    c.hidden_act
                )))
            }
        };
        let dt_rank = match &c.time_step_rank {
            None => c.hidden_size.div_ceil(16),
            Some(Value::String(s)) if s == "auto" => c.hidden_size.div_ceil(16),
            Some(v) => v.as_u64().map(|n| n as usize).ok_or_else(|| {
                Error::Config(format!(
                    "time_step_rank must be an integer or \"auto\", got {v}"
                ))
            })?,
        };
        let d_inner = c.intermediate_size.unwrap_or(c.expand * c.hidden_size);
        for (name, n) in [
            ("hidden_size", c.hidden_size),
            ("intermediate_size", d_inner),
            ("state_size", c.state_size),
            ("conv_kernel", c.conv_kernel),
            ("time_step_rank", dt_rank),
        ] {
            if n == 0 {
                return Err(Error::Config(format!("mamba {name} is 0")));
            }
        }
        Ok(Self {
            vocab_size: c.vocab_size,
            d_model: c.hidden_size,
            n_layers: c.num_hidden_layers,
            d_inner,
            d_state: c.state_size,
            dt_rank,
            d_conv: c.conv_kernel,
            conv_bias: c.use_conv_bias,
            proj_bias: c.use_bias,
            norm_eps: c.layer_norm_epsilon,
            act,
            tie_embeddings: c.tie_word_embeddings,
            eos_token_id,
        })
    }
}
