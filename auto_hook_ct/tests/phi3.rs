//! candle-transformers' Phi-3 (fused QKV, `&mut self` forward) hooked with no edits, both
//! ways, against its own model.

#[macro_use]
mod common;

use auto_hook::prelude::*;
use auto_hook_ct::check::{check_model, Stop};
use candle::Device;
use candle_transformers::models::phi3 as reference;

const CONFIG: &str = r#"{"vocab_size": 64, "hidden_act": "silu", "hidden_size": 32,
  "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
  "num_key_value_heads": 2, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
  "bos_token_id": null, "eos_token_id": null, "rope_scaling": null,
  "max_position_embeddings": 64, "original_max_position_embeddings": null,
  "partial_rotary_factor": null, "tie_word_embeddings": false}"#;

kv_cache_model_checks!(
    phi3,
    Model(),
    "layers.0.self_attn.qkv_proj.hook_point",
    "layers"
);
