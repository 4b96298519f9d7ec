//! candle-transformers' Mistral (`&mut self` forward) hooked with no edits, both ways,
//! against its own model.

#[macro_use]
mod common;

use auto_hook::prelude::*;
use auto_hook_ct::check::{check_model, Stop};
use candle::Device;
use candle_transformers::models::mistral as reference;

const CONFIG: &str = r#"{"vocab_size": 64, "hidden_size": 32, "intermediate_size": 48,
  "num_hidden_layers": 2, "num_attention_heads": 4, "head_dim": null,
  "num_key_value_heads": 2, "hidden_act": "silu", "max_position_embeddings": 64,
  "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "sliding_window": 64,
  "use_flash_attn": false}"#;

kv_cache_model_checks!(
    mistral,
    Model(),
    "layers.1.mlp.down_proj.hook_point",
    "layers"
);
