//! candle-transformers' Mistral (`&mut self` forward) hooked with no edits, both ways,
//! against its own model.

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

macro_rules! mistral_checks {
    ($variant:ident) => {
        #[test]
        fn $variant() -> Result<(), Box<dyn std::error::Error>> {
            use auto_hook_ct::$variant::mistral as hooked;
            let cfg: hooked::Config = serde_json::from_str(CONFIG)?;
            let ref_cfg: reference::Config = serde_json::from_str(CONFIG)?;
            let (mut model, mut ct) = common::build_pair(
                |vb| hooked::Model::new(&cfg, vb),
                |vb| reference::Model::new(&ref_cfg, vb),
            )?;
            let names = model.hook_point_names();
            assert!(
                names.contains(&"layers.1.mlp.down_proj.hook_point".into()),
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
                    at: "layers.0.**",
                    never: "layers.1.",
                },
            )?;
            assert_eq!(summary.fire_counts.len(), names.len());
            Ok(())
        }
    };
}

mistral_checks!(verbatim);
mistral_checks!(built);
