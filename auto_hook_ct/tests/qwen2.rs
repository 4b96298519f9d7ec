//! candle-transformers' Qwen2 hooked with no edits, both ways, against its own model.

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

macro_rules! qwen2_checks {
    ($variant:ident) => {
        #[test]
        fn $variant() -> Result<(), Box<dyn std::error::Error>> {
            use auto_hook_ct::$variant::qwen2 as hooked;
            let cfg: hooked::Config = serde_json::from_str(CONFIG)?;
            let ref_cfg: reference::Config = serde_json::from_str(CONFIG)?;
            let (mut model, mut ct) = common::build_pair(
                |vb| hooked::ModelForCausalLM::new(&cfg, vb),
                |vb| reference::ModelForCausalLM::new(&ref_cfg, vb),
            )?;
            let names = model.hook_point_names();
            assert!(
                names.contains(&"base_model.layers.0.self_attn.q_proj.hook_point".into()),
                "{names:?}"
            );
            let ids = common::tokens(&Device::Cpu)?;
            let summary = check_model(
                &mut model,
                || {
                    ct.clear_kv_cache();
                    ct.forward(&ids, 0)
                },
                |m| {
                    m.clear_kv_cache();
                    m.forward(&ids, 0)
                },
                Stop {
                    at: "base_model.layers.0.**",
                    never: "base_model.layers.1.",
                },
            )?;
            assert_eq!(summary.fire_counts.len(), names.len());
            Ok(())
        }
    };
}

qwen2_checks!(verbatim);
qwen2_checks!(built);
