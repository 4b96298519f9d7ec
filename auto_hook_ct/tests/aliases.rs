//! TransformerLens names on candle-transformers' decoders hooked through `auto_hook_build`,
//! through the shipped adapters (`auto_hook::adapters::candle_transformers`).

mod common;

use auto_hook::adapters::candle_transformers as adapters;
use auto_hook::prelude::*;
use auto_hook::Aliases;
use auto_hook_ct::built;
use candle::Device;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Every alias pattern of `names`, with `{l}` = 0 and 1, is a point of `model` seen
/// through `names`, and no name listed as missing is.
fn check_adapter<M: HookedModule + Clone>(model: &M, names: &Aliases) -> Result<(), String> {
    let model = names.clone().wrap(model.clone());
    let listed = model.hook_point_names();
    for pattern in names.alias_patterns() {
        for l in ["0", "1"] {
            let name = pattern.replace("{l}", l);
            if !listed.contains(&name) {
                return Err(format!("{name} is not a point: {listed:?}"));
            }
        }
    }
    for (missing, _) in names.missing_names() {
        let name = missing.replace("{l}", "0");
        if listed.contains(&name) {
            return Err(format!("{name} is listed as missing but is a point"));
        }
    }
    Ok(())
}

const QWEN2: &str = r#"{"vocab_size": 64, "hidden_size": 32, "intermediate_size": 48,
  "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
  "max_position_embeddings": 64, "sliding_window": 64, "max_window_layers": 2,
  "tie_word_embeddings": false, "rope_theta": 10000.0, "rms_norm_eps": 1e-6,
  "use_sliding_window": false, "hidden_act": "silu"}"#;

#[test]
fn qwen2_under_transformerlens_names_caches_and_edits_the_same_points() -> TestResult {
    use built::qwen2 as hooked;
    let cfg: hooked::Config = serde_json::from_str(QWEN2)?;
    let (model, _) = common::build_pair(
        |vb| hooked::ModelForCausalLM::new(&cfg, vb),
        |vb| hooked::ModelForCausalLM::new(&cfg, vb),
    )?;
    let mut model = adapters::qwen2("base_model.").wrap(model);
    check_adapter(&model.clone().into_inner(), model.aliases())?;
    let ids = common::tokens(&Device::Cpu)?;
    let (_, cache) = model.run_with_cache_mut(CacheOptions::all(), |m| {
        m.clear_kv_cache();
        m.forward(&ids, 0)
    })?;
    for name in [
        "hook_embed",
        "blocks.1.hook_resid_post",
        "blocks.0.attn.hook_q",
        "blocks.1.hook_mlp_out",
        "ln_final.hook_normalized",
    ] {
        assert!(cache.contains(name), "{name} not cached");
    }
    // no point is seen under its own name where an alias maps it
    assert!(!cache.contains("base_model.layers.0.hook_point"));
    // a name the structure cannot expose is an unknown name, and listed as missing
    let err = model
        .run_with_hooks_mut(
            Hooks::new().add("blocks.0.attn.hook_pattern", |_, _| {}),
            |m| {
                m.clear_kv_cache();
                m.forward(&ids, 0)
            },
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("blocks.0.attn.hook_pattern"),
        "{err}"
    );
    assert!(model
        .aliases()
        .missing_names()
        .iter()
        .any(|(n, _)| n == "blocks.{l}.attn.hook_pattern"));
    // an edit through a TransformerLens name takes effect
    let clean = {
        model.clear_kv_cache();
        model.forward(&ids, 0)?
    };
    let zero = Hooks::new().add("blocks.1.hook_attn_out", |a: &candle::Tensor, _| {
        a.zeros_like()
    });
    let edited = model.run_with_hooks_mut(zero, |m| {
        m.clear_kv_cache();
        m.forward(&ids, 0)
    })?;
    assert!(auto_hook_ct::check::same_bits("", &edited, &clean).is_err());
    Ok(())
}

#[test]
fn every_shipped_adapter_names_points_that_exist() -> TestResult {
    use built::{gemma2, llama, mistral, phi3};
    macro_rules! model {
        ($module:ident, $ty:ident, $cfg:expr, $($arg:expr),*) => {{
            let cfg: $module::Config = serde_json::from_str($cfg)?;
            common::build_pair(|vb| $module::$ty::new($($arg,)* &cfg, vb), |vb| $module::$ty::new($($arg,)* &cfg, vb))?.0
        }};
    }
    check_adapter(&model!(mistral, Model, MISTRAL,), &adapters::mistral())?;
    check_adapter(&model!(phi3, Model, PHI3,), &adapters::phi3())?;
    check_adapter(&model!(gemma2, Model, GEMMA2, false), &adapters::gemma2())?;
    let llama_cfg = serde_json::from_str::<llama::LlamaConfig>(LLAMA)?.into_config(false);
    let (llama, _) = common::build_pair(
        |vb| llama::Llama::load(vb, &llama_cfg),
        |vb| llama::Llama::load(vb, &llama_cfg),
    )?;
    check_adapter(&llama, &adapters::llama())?;
    let qwen3_cfg: built::qwen3::Config = serde_json::from_str(QWEN3)?;
    let (qwen3, _) = common::build_pair(
        |vb| built::qwen3::ModelForCausalLM::new(&qwen3_cfg, vb),
        |vb| built::qwen3::ModelForCausalLM::new(&qwen3_cfg, vb),
    )?;
    check_adapter(&qwen3, &adapters::qwen3("base."))?;
    let gemma_cfg: built::gemma::Config = serde_json::from_str(GEMMA)?;
    let (gemma, _) = common::build_pair(
        |vb| built::gemma::Model::new(false, &gemma_cfg, vb),
        |vb| built::gemma::Model::new(false, &gemma_cfg, vb),
    )?;
    check_adapter(&gemma, &adapters::gemma())?;
    Ok(())
}

const MISTRAL: &str = r#"{"vocab_size": 64, "hidden_size": 32, "intermediate_size": 48,
  "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": null,
  "hidden_act": "silu", "max_position_embeddings": 64, "rms_norm_eps": 1e-5,
  "rope_theta": 10000.0, "sliding_window": 64, "use_flash_attn": false}"#;
const PHI3: &str = r#"{"vocab_size": 64, "hidden_act": "silu", "hidden_size": 32,
  "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
  "num_key_value_heads": 2, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
  "bos_token_id": null, "eos_token_id": null, "rope_scaling": null,
  "max_position_embeddings": 64, "original_max_position_embeddings": null,
  "partial_rotary_factor": null, "tie_word_embeddings": false}"#;
const GEMMA2: &str = r#"{"attention_bias": false, "head_dim": 8, "hidden_activation": "gelu_pytorch_tanh",
  "hidden_size": 32, "intermediate_size": 48, "num_attention_heads": 4, "num_hidden_layers": 2,
  "num_key_value_heads": 2, "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "vocab_size": 64,
  "final_logit_softcapping": 30.0, "attn_logit_softcapping": 50.0, "query_pre_attn_scalar": 8,
  "sliding_window": 4, "max_position_embeddings": 64}"#;
const LLAMA: &str = r#"{"hidden_size": 32, "intermediate_size": 48, "vocab_size": 64,
  "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
  "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "bos_token_id": null, "eos_token_id": null,
  "rope_scaling": null, "max_position_embeddings": 64, "tie_word_embeddings": false}"#;
const QWEN3: &str = r#"{"vocab_size": 64, "hidden_size": 32, "intermediate_size": 48,
  "num_hidden_layers": 2, "num_attention_heads": 4, "head_dim": 8, "attention_bias": false,
  "num_key_value_heads": 2, "max_position_embeddings": 64, "sliding_window": null,
  "max_window_layers": 2, "tie_word_embeddings": false, "rope_theta": 10000.0,
  "rms_norm_eps": 1e-6, "use_sliding_window": false, "hidden_act": "silu"}"#;
const GEMMA: &str = r#"{"attention_bias": false, "head_dim": 8, "hidden_act": null,
  "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 32, "intermediate_size": 48,
  "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2,
  "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "vocab_size": 64,
  "max_position_embeddings": 64}"#;
