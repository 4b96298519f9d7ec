//! Decoders and an encoder beyond the first rounds: granite (an external `Cache`),
//! deepseek2 (multi-head latent attention, routed and shared experts) and xlm_roberta.

use super::{assert_listed, check_all, common, stop, TestResult};
use auto_hook::prelude::*;
use auto_hook_ct::built;
use candle::{DType, Device, Tensor};
use candle_transformers::models as ct;

#[test]
fn granite() -> TestResult {
    const CONFIG: &str = r#"{"hidden_size": 32, "intermediate_size": 48, "vocab_size": 64,
      "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
      "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "bos_token_id": null,
      "eos_token_id": null, "rope_scaling": null, "max_position_embeddings": 64}"#;
    let cfg = serde_json::from_str::<built::granite::GraniteConfig>(CONFIG)?.into_config(false);
    let ref_cfg = serde_json::from_str::<ct::granite::GraniteConfig>(CONFIG)?.into_config(false);
    let (mut model, reference) = common::build_pair(
        |vb| built::granite::Granite::load(vb, &cfg),
        |vb| ct::granite::Granite::load(vb, &ref_cfg),
    )?;
    let (dev, ids) = (Device::Cpu, common::tokens(&Device::Cpu)?);
    // a fresh cache per run (no KV cache: every run starts at position 0)
    let run = |m: &mut built::granite::Granite| {
        let mut cache = built::granite::Cache::new(false, DType::F32, &cfg, &dev)?;
        m.forward(&ids, 0, &mut cache)
    };
    let reference = || {
        let mut cache = ct::granite::Cache::new(false, DType::F32, &ref_cfg, &dev)?;
        reference.forward(&ids, 0, &mut cache)
    };
    assert_listed(&model.hook_point_names(), "blocks.0.attn.q_proj.hook_point");
    check_all(
        &mut model,
        reference,
        run,
        stop("blocks.0.**", "blocks.1."),
        "blocks.0.mlp.c_proj.hook_point",
    )
}

#[test]
fn deepseek2() -> TestResult {
    // Layer 0 dense, layer 1 a mixture of 4 routed experts (2 per token) and 1 shared;
    // queries through a low-rank projection, keys and values through the latent.
    const CONFIG: &str = r#"{"vocab_size": 64, "hidden_size": 32, "intermediate_size": 48,
      "moe_intermediate_size": 16, "num_hidden_layers": 2, "num_attention_heads": 4,
      "n_shared_experts": 1, "n_routed_experts": 4, "num_experts_per_tok": 2,
      "moe_layer_freq": 1, "first_k_dense_replace": 1, "max_position_embeddings": 64,
      "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "rope_scaling": null,
      "attention_bias": false, "q_lora_rank": 16, "qk_rope_head_dim": 4,
      "kv_lora_rank": 8, "v_head_dim": 8, "qk_nope_head_dim": 4, "n_group": 1,
      "topk_group": 1}"#;
    let cfg: built::deepseek2::DeepSeekV2Config = serde_json::from_str(CONFIG)?;
    let ref_cfg: ct::deepseek2::DeepSeekV2Config = serde_json::from_str(CONFIG)?;
    let (mut model, mut reference) = common::build_pair(
        |vb| built::deepseek2::DeepSeekV2::new(&cfg, vb),
        |vb| ct::deepseek2::DeepSeekV2::new(&ref_cfg, vb),
    )?;
    // 2 × 24 tokens, enough for the router to pick every expert at least once
    let ids: Vec<u32> = (0..48).map(|i| (i * 7) % 64).collect();
    let ids = Tensor::new(ids.as_slice(), &Device::Cpu)?.reshape((2, 24))?;
    let run = |m: &mut built::deepseek2::DeepSeekV2| {
        m.clear_kv_cache();
        m.forward(&ids, 0)
    };
    let reference = || {
        reference.clear_kv_cache();
        reference.forward(&ids, 0)
    };
    let names = model.hook_point_names();
    assert_listed(&names, "layers.1.moe_or_mlp.Moe.experts.3.down.hook_point");
    assert_listed(
        &names,
        "layers.1.moe_or_mlp.Moe.shared_experts.up.hook_point",
    );
    check_all(
        &mut model,
        reference,
        run,
        stop("layers.0.**", "layers.1."),
        "layers.1.attn.o_proj.hook_point",
    )
}

#[test]
fn xlm_roberta() -> TestResult {
    const CONFIG: &str = r#"{"hidden_size": 32, "layer_norm_eps": 1e-5,
      "attention_probs_dropout_prob": 0.0, "hidden_dropout_prob": 0.0,
      "num_attention_heads": 4, "position_embedding_type": "absolute",
      "intermediate_size": 48, "hidden_act": "gelu", "num_hidden_layers": 2,
      "vocab_size": 64, "max_position_embeddings": 64, "type_vocab_size": 1,
      "pad_token_id": 1}"#;
    let cfg: built::xlm_roberta::Config = serde_json::from_str(CONFIG)?;
    let ref_cfg: ct::xlm_roberta::Config = serde_json::from_str(CONFIG)?;
    let (mut model, reference) = common::build_pair(
        |vb| built::xlm_roberta::XLMRobertaForMaskedLM::new(&cfg, vb),
        |vb| ct::xlm_roberta::XLMRobertaForMaskedLM::new(&ref_cfg, vb),
    )?;
    let ids = common::tokens(&Device::Cpu)?;
    let (mask, types) = (ids.ones_like()?, ids.zeros_like()?);
    let run = |m: &mut built::xlm_roberta::XLMRobertaForMaskedLM| {
        m.forward(&ids, &mask, &types, None, None, None)
    };
    assert_listed(
        &model.hook_point_names(),
        "roberta.encoder.layers.0.attention.output.dense.hook_point",
    );
    check_all(
        &mut model,
        || reference.forward(&ids, &mask, &types, None, None, None),
        run,
        stop("roberta.encoder.layers.0.**", "roberta.encoder.layers.1."),
        "roberta.encoder.layers.1.output.dense.hook_point",
    )
}
