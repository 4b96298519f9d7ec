//! A GGUF file's `{arch}.*` metadata read into an [`ArchConfig`].

use super::Gguf;
use crate::config::{ArchConfig, HiddenAct, Positions};
use crate::error::{Error, Result};
use crate::gemma::GemmaConfig;
use crate::moe::MoeConfig;

/// Architectures whose GGUF files load: llama.cpp's `general.architecture` values that
/// map onto the Llama-family port.
const SUPPORTED: &[&str] = &["llama", "qwen2", "gpt2", "gemma2"];

pub(super) fn arch_config(file: &Gguf) -> Result<ArchConfig> {
    let arch = file.string("general.architecture")?.to_owned();
    if !SUPPORTED.contains(&arch.as_str()) {
        return Err(Error::Unsupported(format!(
            "GGUF architecture `{arch}` (supported from GGUF: {}, and mamba through \
             `load_mamba`; Hugging Face folders also load mistral and gemma)",
            SUPPORTED.join(", ")
        )));
    }
    let key = |k: &str| format!("{arch}.{k}");
    let moe = moe_config(file, &arch)?;
    if let Some(scaling) = file.value(&key("rope.scaling.type")) {
        let kind = match scaling {
            candle_core::quantized::gguf_file::Value::String(s) => s.as_str(),
            _ => "?",
        };
        if kind != "none" {
            return Err(Error::Unsupported(format!(
                "rope scaling type `{kind}` (only the default rope is implemented)"
            )));
        }
    }
    let d_model = file.usize(&key("embedding_length"))?;
    let n_heads = file.usize(&key("attention.head_count"))?;
    let n_kv_heads = file
        .opt_usize(&key("attention.head_count_kv"))?
        .unwrap_or(n_heads);
    if n_heads == 0 || n_kv_heads == 0 || !n_heads.is_multiple_of(n_kv_heads) {
        return Err(Error::Config(format!(
            "{arch}.attention.head_count {n_heads} is not a multiple of head_count_kv {n_kv_heads}"
        )));
    }
    let d_head = match file.opt_usize(&key("attention.key_length"))? {
        Some(d) => d,
        None => d_model / n_heads,
    };
    let vocab_size = match file.opt_usize(&key("vocab_size"))? {
        Some(v) => v,
        None => file
            .content
            .tensor_infos
            .get("token_embd.weight")
            .map(|t| t.shape.dims()[0])
            .ok_or_else(|| file.missing(&key("vocab_size")))?,
    };
    let gpt2 = arch == "gpt2";
    let eps_key = key(if gpt2 {
        "attention.layer_norm_epsilon"
    } else {
        "attention.layer_norm_rms_epsilon"
    });
    let norm_eps = file
        .opt_f64(&eps_key)?
        .ok_or_else(|| file.missing(&eps_key))?;
    let context_length = file.opt_usize(&key("context_length"))?;
    // GPT-2: learned positions (one row per context position), LayerNorm, GELU (tanh),
    // biases everywhere; the Llama family: rotary, RMSNorm, SiLU-gated MLP.
    let n_layers = file.usize(&key("block_count"))?;
    let gemma = if arch == "gemma2" {
        Some(gemma2(file, &key, n_layers, (d_model, n_heads, d_head))?)
    } else {
        None
    };
    let (positions, act) = if gpt2 {
        let n_ctx = context_length.ok_or_else(|| file.missing(&key("context_length")))?;
        (Positions::Learned { n_ctx }, HiddenAct::GeluTanh)
    } else {
        let theta = file.opt_f64(&key("rope.freq_base"))?.unwrap_or(10_000.0);
        // Gemma 2's MLP is GeGLU (tanh GELU).
        let act = match gemma {
            Some(_) => HiddenAct::GeluTanh,
            None => HiddenAct::Silu,
        };
        (Positions::Rotary { theta }, act)
    };
    let eos_token_id = file
        .opt_usize("tokenizer.ggml.eos_token_id")?
        .map(|id| id as u32);
    Ok(ArchConfig {
        // llama.cpp calls Mixtral `llama`; the port's name for it is `mixtral`.
        model_type: if moe.is_some() {
            "mixtral".into()
        } else {
            arch.clone()
        },
        vocab_size,
        d_model,
        n_layers,
        n_heads,
        n_kv_heads,
        d_head,
        d_mlp: file.usize(&key("feed_forward_length"))?,
        norm_eps,
        act,
        positions,
        qkv_bias: gpt2 || file.has_tensor("blk.0.attn_q.bias"),
        o_bias: file.has_tensor("blk.0.attn_output.bias"),
        mlp_bias: file.has_tensor("blk.0.ffn_up.bias"),
        tie_embeddings: !file.has_tensor("output.weight"),
        sliding_window: match gemma {
            Some(_) => file.opt_usize(&key("attention.sliding_window"))?,
            None => None,
        },
        eos_token_id,
        moe,
        context_length,
        gemma,
    })
}

/// Gemma 2 from llama.cpp's metadata: the soft-caps it writes (transformers' defaults 50
/// and 30 when absent), sliding layers 0, 2, 4, ... (llama.cpp's and transformers' order),
/// and queries scaled as llama.cpp scales them (the file does not say):
/// `1/sqrt(head_dim)`, but `1/sqrt(d_model / n_heads)` for the 46-layer 27B model.
fn gemma2(
    file: &Gguf,
    key: &dyn Fn(&str) -> String,
    n_layers: usize,
    (d_model, n_heads, d_head): (usize, usize, usize),
) -> Result<GemmaConfig> {
    let scalar = if n_layers == 46 {
        d_model / n_heads
    } else {
        d_head
    };
    Ok(GemmaConfig {
        query_pre_attn_scalar: scalar as f64,
        attn_softcap: Some(
            file.opt_f64(&key("attn_logit_softcapping"))?
                .unwrap_or(50.0),
        ),
        final_softcap: Some(
            file.opt_f64(&key("final_logit_softcapping"))?
                .unwrap_or(30.0),
        ),
        sliding_layers: (0..n_layers).map(|i| i % 2 == 0).collect(),
        post_norms: true,
    })
}

/// Mixtral (llama.cpp's `llama` with `expert_count`): the experts and the top-k.
fn moe_config(file: &Gguf, arch: &str) -> Result<Option<MoeConfig>> {
    let n_experts = file
        .opt_usize(&format!("{arch}.expert_count"))?
        .unwrap_or(0);
    if n_experts == 0 {
        return Ok(None);
    }
    if arch != "llama" {
        return Err(Error::Unsupported(format!(
            "a mixture-of-experts `{arch}` GGUF (only Mixtral, llama.cpp's `llama` with experts)"
        )));
    }
    let used = file.usize(&format!("{arch}.expert_used_count"))?;
    let json = serde_json::json!({"num_local_experts": n_experts, "num_experts_per_tok": used});
    Ok(Some(MoeConfig::from_json(&json)?))
}
