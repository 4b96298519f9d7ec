//! candle-transformers' Mixtral (sparse MoE, a KV cache it cannot clear) hooked with no
//! edits, both ways, against its own model: both models advance their caches in step.

mod common;

use auto_hook::prelude::*;
use auto_hook_ct::check::{check_model, Stop};
use candle::Device;
use candle_transformers::models::mixtral as reference;

const CONFIG: &str = r#"{"vocab_size": 64, "hidden_size": 32, "intermediate_size": 48,
  "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
  "hidden_act": "silu", "max_position_embeddings": 64, "rms_norm_eps": 1e-5,
  "rope_theta": 10000.0, "sliding_window": 64, "num_experts_per_tok": 2,
  "num_local_experts": 4, "use_flash_attn": false}"#;

macro_rules! mixtral_checks {
    ($variant:ident) => {
        #[test]
        fn $variant() -> Result<(), Box<dyn std::error::Error>> {
            use auto_hook_ct::$variant::mixtral as hooked;
            let cfg: hooked::Config = serde_json::from_str(CONFIG)?;
            let ref_cfg: reference::Config = serde_json::from_str(CONFIG)?;
            let (mut model, mut ct) = common::build_pair(
                |vb| hooked::Model::new(&cfg, vb),
                |vb| reference::Model::new(&ref_cfg, vb),
            )?;
            let names = model.hook_point_names();
            let expert = "layers.0.block_sparse_moe.experts.3.w2.hook_point";
            assert!(names.contains(&expert.into()), "{names:?}");
            let ids = common::tokens(&Device::Cpu)?;
            let seq = ids.dim(1)?;
            let (mut ct_pos, mut pos) = (0, 0);
            let summary = check_model(
                &mut model,
                || {
                    ct_pos += seq;
                    ct.forward(&ids, ct_pos - seq)
                },
                |m| {
                    pos += seq;
                    m.forward(&ids, pos - seq)
                },
                Stop {
                    at: "layers.0.**",
                    never: "layers.1.",
                },
            )?;
            // ten tokens, top-2 of 4 experts: with these weights every expert gets a token
            assert_eq!(summary.fire_counts.len(), names.len());
            Ok(())
        }
    };
}

mixtral_checks!(verbatim);
mixtral_checks!(built);
