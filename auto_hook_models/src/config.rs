//! Hugging Face `config.json` files, read into one architecture description.

use crate::error::{Error, Result};
use serde::Deserialize;
use serde_json::Value;

/// Which normalisation a model uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NormKind {
    /// LayerNorm with weight and bias (GPT-2).
    LayerNorm,
    /// RMSNorm with weight (Llama family).
    RmsNorm,
}

/// The MLP activation, Hugging Face's `hidden_act` (named so as not to shadow
/// `candle_nn::Activation`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HiddenAct {
    /// tanh approximation (`gelu_new`, `gelu_pytorch_tanh`).
    GeluTanh,
    /// exact erf GELU.
    Gelu,
    Relu,
    Silu,
}

impl HiddenAct {
    /// The activation applied to `x`: the one place the ports dispatch on it.
    ///
    /// ```
    /// use auto_hook_models::HiddenAct;
    /// let x = candle_core::Tensor::new(&[-1f32, 2.0], &candle_core::Device::Cpu)?;
    /// assert_eq!(HiddenAct::Relu.apply(&x)?.to_vec1::<f32>()?, [0.0, 2.0]);
    /// # Ok::<(), candle_core::Error>(())
    /// ```
    pub fn apply(self, x: &candle_core::Tensor) -> candle_core::Result<candle_core::Tensor> {
        match self {
            HiddenAct::GeluTanh => x.gelu(),
            HiddenAct::Gelu => x.gelu_erf(),
            HiddenAct::Relu => x.relu(),
            HiddenAct::Silu => x.silu(),
        }
    }
}

/// How positions enter the model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Positions {
    /// A learned position embedding of `n_ctx` rows (GPT-2).
    Learned { n_ctx: usize },
    /// Rotary embeddings on q and k with base `theta` (Llama family, non-interleaved).
    Rotary { theta: f64 },
}

/// Everything the hooked transformer needs to know about an architecture.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchConfig {
    /// `gpt2`, `llama`, `mistral`, `qwen2`, `mixtral`, `gemma` or `gemma2`.
    pub model_type: String,
    pub vocab_size: usize,
    pub d_model: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    /// Key/value heads (grouped-query attention when fewer than `n_heads`).
    pub n_kv_heads: usize,
    pub d_head: usize,
    pub d_mlp: usize,
    /// Epsilon of the normalisations: LayerNorm for `gpt2`, RMSNorm (and a gated MLP,
    /// `down(act(gate(x)) * up(x))`) for the Llama family.
    pub norm_eps: f64,
    pub act: HiddenAct,
    pub positions: Positions,
    pub qkv_bias: bool,
    pub o_bias: bool,
    pub mlp_bias: bool,
    pub tie_embeddings: bool,
    /// Mistral's sliding attention window.
    pub sliding_window: Option<usize>,
    /// Token that ends generation, when the config names one.
    pub eos_token_id: Option<u32>,
    /// Sparse mixture-of-experts MLP (Mixtral); `None` for a dense MLP.
    pub moe: Option<crate::moe::MoeConfig>,
    /// The longest sequence (cached and new tokens) a forward accepts, when the checkpoint
    /// states one the model was trained for and nothing else limits it: a GGUF file's
    /// `context_length`. `None` for Hugging Face folders, whose rotary models run past
    /// `max_position_embeddings` as transformers does (GPT-2's learned positions are
    /// limited by `n_positions` anyway).
    pub context_length: Option<usize>,
    /// What Gemma and Gemma 2 add to the Llama recipe; `None` for other models.
    pub gemma: Option<crate::gemma::GemmaConfig>,
}

impl ArchConfig {
    /// Reads a Hugging Face `config.json` text.
    pub fn from_json(text: &str) -> Result<Self> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| Error::Config(format!("config.json is not JSON: {e}")))?;
        let model_type = value
            .get("model_type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        match model_type.as_str() {
            "gpt2" => gpt2(value),
            "llama" | "mistral" | "qwen2" => llama(value, model_type),
            "mixtral" => {
                let moe = crate::moe::MoeConfig::from_json(&value)?;
                let mut cfg = llama(value, model_type)?;
                if cfg.d_mlp == 0 {
                    return Err(Error::Config("intermediate_size is 0".into()));
                }
                cfg.moe = Some(moe);
                Ok(cfg)
            }
            "gemma" | "gemma2" => crate::gemma::config(value, model_type),
            "mamba" => Err(Error::Unsupported(
                "model_type `mamba` is not a transformer: load it with `auto_hook_models::load_mamba`".into(),
            )),
            "" => Err(Error::Config("config.json has no `model_type`".into())),
            other => Err(Error::Unsupported(format!(
                "model_type `{other}` (supported: gpt2, llama, mistral, qwen2, mixtral, gemma, gemma2; mamba via load_mamba)"
            ))),
        }
    }
}

pub(crate) fn parse<T: for<'de> Deserialize<'de>>(value: Value, what: &str) -> Result<T> {
    serde_json::from_value(value).map_err(|e| Error::Config(format!("{what} config: {e}")))
}

/// `eos_token_id`: a number, or the first of a list.
pub(crate) fn eos(value: &Value) -> Option<u32> {
    match value.get("eos_token_id") {
        Some(Value::Number(n)) => n.as_u64().map(|n| n as u32),
        Some(Value::Array(list)) => list.first().and_then(Value::as_u64).map(|n| n as u32),
        _ => None,
    }
}

#[derive(Deserialize)]
struct Gpt2Json {
    vocab_size: usize,
    n_positions: usize,
    n_embd: usize,
    n_layer: usize,
    n_head: usize,
    n_inner: Option<usize>,
    #[serde(default = "default_ln_eps")]
    layer_norm_epsilon: f64,
    #[serde(default = "default_gpt2_act")]
    activation_function: String,
    #[serde(default)]
    scale_attn_by_inverse_layer_idx: bool,
    #[serde(default = "default_true")]
    scale_attn_weights: bool,
}

fn default_ln_eps() -> f64 {
    1e-5
}
fn default_gpt2_act() -> String {
    "gelu_new".into()
}
fn default_true() -> bool {
    true
}

pub(crate) fn activation(name: &str) -> Result<HiddenAct> {
    match name {
        "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Ok(HiddenAct::GeluTanh),
        "gelu" => Ok(HiddenAct::Gelu),
        "relu" => Ok(HiddenAct::Relu),
        "silu" | "swish" => Ok(HiddenAct::Silu),
        other => Err(Error::Unsupported(format!("activation `{other}`"))),
    }
}

fn gpt2(value: Value) -> Result<ArchConfig> {
    let eos_token_id = eos(&value);
    let c: Gpt2Json = parse(value, "gpt2")?;
    if c.scale_attn_by_inverse_layer_idx || !c.scale_attn_weights {
        return Err(Error::Unsupported(
            "GPT-2 attention scaling other than 1/sqrt(d_head)".into(),
        ));
    }
    if c.n_head == 0 || !c.n_embd.is_multiple_of(c.n_head) {
        return Err(Error::Config(format!(
            "n_embd {} is not a multiple of n_head {}",
            c.n_embd, c.n_head
        )));
    }
    Ok(ArchConfig {
        model_type: "gpt2".into(),
        vocab_size: c.vocab_size,
        d_model: c.n_embd,
        n_layers: c.n_layer,
        n_heads: c.n_head,
        n_kv_heads: c.n_head,
        d_head: c.n_embd / c.n_head,
        d_mlp: c.n_inner.unwrap_or(4 * c.n_embd),
        norm_eps: c.layer_norm_epsilon,
        act: activation(&c.activation_function)?,
        positions: Positions::Learned {
            n_ctx: c.n_positions,
        },
        qkv_bias: true,
        o_bias: true,
        mlp_bias: true,
        tie_embeddings: true,
        sliding_window: None,
        eos_token_id,
        moe: None,
        context_length: None,
        gemma: None,
    })
}

#[derive(Deserialize)]
struct LlamaJson {
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    #[serde(default = "default_rms_eps")]
    rms_norm_eps: f64,
    rope_theta: Option<f64>,
    rope_parameters: Option<Value>,
    rope_scaling: Option<Value>,
    #[serde(default)]
    tie_word_embeddings: bool,
    #[serde(default)]
    attention_bias: bool,
    #[serde(default)]
    mlp_bias: bool,
    #[serde(default = "default_silu")]
    hidden_act: String,
    sliding_window: Option<usize>,
    #[serde(default)]
    use_sliding_window: bool,
}

fn default_rms_eps() -> f64 {
    1e-6
}
fn default_silu() -> String {
    "silu".into()
}

/// `rope_theta`, also when stored under `rope_parameters`; any rope scaling other than
/// the default is refused.
fn rope_theta(c: &LlamaJson) -> Result<f64> {
    for params in [&c.rope_scaling, &c.rope_parameters].into_iter().flatten() {
        if params.is_null() {
            continue;
        }
        let kind = params
            .get("rope_type")
            .or_else(|| params.get("type"))
            .and_then(Value::as_str)
            .unwrap_or("default");
        if kind != "default" {
            return Err(Error::Unsupported(format!(
                "rope scaling type `{kind}` (only the default rope is implemented)"
            )));
        }
    }
    let nested = c
        .rope_parameters
        .as_ref()
        .and_then(|p| p.get("rope_theta"))
        .and_then(Value::as_f64);
    Ok(c.rope_theta.or(nested).unwrap_or(10_000.0))
}

pub(crate) fn llama(value: Value, model_type: String) -> Result<ArchConfig> {
    let eos_token_id = eos(&value);
    let c: LlamaJson = parse(value, &model_type)?;
    if c.num_attention_heads == 0 {
        return Err(Error::Config("num_attention_heads is 0".into()));
    }
    let n_kv_heads = c.num_key_value_heads.unwrap_or(c.num_attention_heads);
    if n_kv_heads == 0 || !c.num_attention_heads.is_multiple_of(n_kv_heads) {
        return Err(Error::Config(format!(
            "num_attention_heads {} is not a multiple of num_key_value_heads {n_kv_heads}",
            c.num_attention_heads
        )));
    }
    let act = activation(&c.hidden_act)?;
    let theta = rope_theta(&c)?;
    let qwen = model_type == "qwen2";
    let sliding_window = match model_type.as_str() {
        "mistral" | "mixtral" => c.sliding_window,
        "qwen2" if c.use_sliding_window => {
            return Err(Error::Unsupported(
                "Qwen2 use_sliding_window (per-layer windows)".into(),
            ))
        }
        _ => None,
    };
    Ok(ArchConfig {
        model_type,
        vocab_size: c.vocab_size,
        d_model: c.hidden_size,
        n_layers: c.num_hidden_layers,
        n_heads: c.num_attention_heads,
        n_kv_heads,
        d_head: c.head_dim.unwrap_or(c.hidden_size / c.num_attention_heads),
        d_mlp: c.intermediate_size,
        norm_eps: c.rms_norm_eps,
        act,
        positions: Positions::Rotary { theta },
        qkv_bias: c.attention_bias || qwen,
        o_bias: c.attention_bias && !qwen,
        mlp_bias: c.mlp_bias,
        tie_embeddings: c.tie_word_embeddings,
        sliding_window,
        eos_token_id,
        moe: None,
        context_length: None,
        gemma: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rope_theta_is_read_from_rope_parameters_and_scaling_is_refused() {
        let base = r#"{"model_type":"llama","vocab_size":10,"hidden_size":8,"intermediate_size":16,
            "num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":1"#;
        let nested = format!(
            "{base},\"rope_parameters\":{{\"rope_type\":\"default\",\"rope_theta\":500000.0}}}}"
        );
        let cfg = ArchConfig::from_json(&nested).unwrap();
        assert_eq!(cfg.positions, Positions::Rotary { theta: 500000.0 });
        assert_eq!((cfg.n_kv_heads, cfg.d_head), (1, 4));
        let scaled =
            format!("{base},\"rope_scaling\":{{\"rope_type\":\"llama3\",\"factor\":8.0}}}}");
        let err = ArchConfig::from_json(&scaled).unwrap_err();
        assert!(err.to_string().contains("llama3"), "{err}");
    }

    #[test]
    fn qwen2_has_qkv_biases_but_no_output_bias_and_unknown_types_are_refused() {
        let qwen = r#"{"model_type":"qwen2","vocab_size":10,"hidden_size":8,"intermediate_size":16,
            "num_hidden_layers":1,"num_attention_heads":2,"rope_theta":1000000.0}"#;
        let cfg = ArchConfig::from_json(qwen).unwrap();
        assert!(cfg.qkv_bias && !cfg.o_bias);
        let err = ArchConfig::from_json(r#"{"model_type":"mamba"}"#).unwrap_err();
        assert!(matches!(err, Error::Unsupported(_)));
    }
}
