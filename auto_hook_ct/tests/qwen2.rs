//! candle-transformers' Qwen2 hooked with no edits, both ways, against its own model.

#[macro_use]
mod common;

use auto_hook::prelude::*;
use auto_hook_ct::check::{check_model, Stop};
use candle::Device;
use candle_transformers::models::qwen2 as reference;

const CONFIG: &str = r#"{"vocab_size": 64, "hidden_size": 32, "intermediate_size": 48,
  "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
  "max_position_embeddings": 64, "sliding_window": 64, "max_window_layers": 2,
  "tie_word_embeddings": false, "rope_theta": 10000.0, "rms_norm_eps": 1e-6,
  "use_sliding_window": false, "hidden_act": "silu"}"#;

kv_cache_model_checks!(
    qwen2,
    ModelForCausalLM(),
    "base_model.layers.0.self_attn.q_proj.hook_point",
    "base_model.layers"
);
