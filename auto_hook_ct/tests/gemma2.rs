//! candle-transformers' Gemma 2 (`1 + weight` RmsNorm, logit soft-capping, `&mut self`
//! forward) hooked with no edits, both ways, against its own model.

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

macro_rules! gemma2_checks {
    ($variant:ident) => {
        #[test]
        fn $variant() -> Result<(), Box<dyn std::error::Error>> {
            use auto_hook_ct::$variant::gemma2 as hooked;
            let cfg: hooked::Config = serde_json::from_str(CONFIG)?;
            let ref_cfg: reference::Config = serde_json::from_str(CONFIG)?;
            let (mut model, mut ct) = common::build_pair(
                |vb| hooked::Model::new(false, &cfg, vb),
                |vb| reference::Model::new(false, &ref_cfg, vb),
            )?;
            let names = model.hook_point_names();
            assert!(
                names.contains(&"layers.0.self_attn.q_proj.hook_point".into()),
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

gemma2_checks!(verbatim);
gemma2_checks!(built);
