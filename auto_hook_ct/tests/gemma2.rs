//! candle-transformers' Gemma 2 (`1 + weight` RmsNorm, logit soft-capping, `&mut self`
//! forward) hooked with no edits, both ways, against its own model.

#[macro_use]
mod common;

use auto_hook::prelude::*;
use auto_hook_ct::check::{check_model, Stop};
use candle::Device;
use candle_transformers::models::gemma2 as reference;

const CONFIG: &str = r#"{"attention_bias": false, "head_dim": 8,
  "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 32, "intermediate_size": 48,
  "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2,
  "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "vocab_size": 64,
  "final_logit_softcapping": 30.0, "attn_logit_softcapping": 50.0,
  "query_pre_attn_scalar": 8, "sliding_window": 16, "max_position_embeddings": 64}"#;

kv_cache_model_checks!(
    gemma2,
    Model(false),
    "layers.0.self_attn.q_proj.hook_point",
    "layers"
);
