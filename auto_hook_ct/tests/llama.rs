//! candle-transformers' Llama (a `&self` forward with an external `Cache`) hooked with no
//! edits, both ways, against its own model.

mod common;

use auto_hook::prelude::*;
use auto_hook_ct::check::{check_model, Stop};
use candle::{DType, Device};
use candle_transformers::models::llama as reference;

const CONFIG: &str = r#"{"hidden_size": 32, "intermediate_size": 48, "vocab_size": 64,
  "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
  "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "bos_token_id": null, "eos_token_id": null,
  "rope_scaling": null, "max_position_embeddings": 64, "tie_word_embeddings": false}"#;

macro_rules! llama_checks {
    ($variant:ident) => {
        #[test]
        fn $variant() -> Result<(), Box<dyn std::error::Error>> {
            use auto_hook_ct::$variant::llama as hooked;
            let dev = Device::Cpu;
            let cfg = serde_json::from_str::<hooked::LlamaConfig>(CONFIG)?.into_config(false);
            let ref_cfg =
                serde_json::from_str::<reference::LlamaConfig>(CONFIG)?.into_config(false);
            let (mut model, ct) = common::build_pair(
                |vb| hooked::Llama::load(vb, &cfg),
                |vb| reference::Llama::load(vb, &ref_cfg),
            )?;
            let names = model.hook_point_names();
            assert!(
                names.contains(&"blocks.0.attn.q_proj.hook_point".into()),
                "{names:?}"
            );
            let ids = common::tokens(&dev)?;
            let summary = check_model(
                &mut model,
                || {
                    ct.forward(
                        &ids,
                        0,
                        &mut reference::Cache::new(false, DType::F32, &ref_cfg, &dev)?,
                    )
                },
                |m| {
                    m.forward(
                        &ids,
                        0,
                        &mut hooked::Cache::new(false, DType::F32, &cfg, &dev)?,
                    )
                },
                Stop {
                    at: "blocks.0.**",
                    never: "blocks.1.",
                },
            )?;
            assert_eq!(summary.fire_counts.len(), names.len());
            // a `&self` forward also runs through the `&self` API
            let cache = model.run_with_cache_stop_at("blocks.0.**", |m| {
                m.forward(
                    &ids,
                    0,
                    &mut hooked::Cache::new(false, DType::F32, &cfg, &dev)?,
                )
            })?;
            assert!(cache.contains("blocks.0.mlp.hook_point"));
            Ok(())
        }
    };
}

llama_checks!(verbatim);
llama_checks!(built);
