//! Runtime coverage of candle-transformers model files hooked through `auto_hook_build`
//! (no edits), each against candle-transformers' own model on one set of seeded random
//! weights: bit-identical, every listed point fires, zeroing a mid-model point changes
//! the output, and stopping after the first layer works ([`check_model`], [`check_edit`]).

#[path = "../common/mod.rs"]
mod common;
mod more_text;
mod vision_audio;

use auto_hook::prelude::*;
use auto_hook_ct::built;
use auto_hook_ct::check::{check_edit, check_model, same_bits, Stop};
use candle::{Device, Tensor};
use candle_transformers::models as ct;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn stop<'a>(at: &'a str, never: &'a str) -> Stop<'a> {
    Stop { at, never }
}

/// Every listed point must have fired in `check_model`; `point` must be listed.
fn assert_listed(names: &[String], point: &str) {
    assert!(names.iter().any(|n| n == point), "{point} not in {names:?}");
}

#[test]
fn phi() -> TestResult {
    const CONFIG: &str = r#"{"vocab_size": 64, "hidden_size": 32, "intermediate_size": 48,
      "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": null,
      "hidden_act": "gelu_new", "max_position_embeddings": 64, "layer_norm_eps": 1e-5,
      "tie_word_embeddings": false, "rope_theta": 10000.0, "partial_rotary_factor": 0.5,
      "qk_layernorm": false}"#;
    let cfg: built::phi::Config = serde_json::from_str(CONFIG)?;
    let ref_cfg: ct::phi::Config = serde_json::from_str(CONFIG)?;
    let (mut model, mut reference) = common::build_pair(
        |vb| built::phi::Model::new(&cfg, vb),
        |vb| ct::phi::Model::new(&ref_cfg, vb),
    )?;
    let names = model.hook_point_names();
    assert_listed(&names, "layers.0.self_attn.dense.hook_point");
    assert!(
        !names.iter().any(|n| n.ends_with("rotary_emb.hook_point")),
        "{names:?}"
    );
    let ids = common::tokens(&Device::Cpu)?;
    let run = |m: &mut built::phi::Model| {
        m.clear_kv_cache();
        m.forward(&ids)
    };
    let reference = || {
        reference.clear_kv_cache();
        reference.forward(&ids)
    };
    check_model(&mut model, reference, run, stop("layers.0.**", "layers.1."))?;
    check_edit(&mut model, run, "layers.1.mlp.fc1.hook_point")?;
    Ok(())
}

#[test]
fn qwen3() -> TestResult {
    const CONFIG: &str = r#"{"vocab_size": 64, "hidden_size": 32, "intermediate_size": 48,
      "num_hidden_layers": 2, "num_attention_heads": 4, "head_dim": 8, "attention_bias": false,
      "num_key_value_heads": 2, "max_position_embeddings": 64, "sliding_window": null,
      "max_window_layers": 2, "tie_word_embeddings": false, "rope_theta": 10000.0,
      "rms_norm_eps": 1e-6, "use_sliding_window": false, "hidden_act": "silu"}"#;
    let cfg: built::qwen3::Config = serde_json::from_str(CONFIG)?;
    let ref_cfg: ct::qwen3::Config = serde_json::from_str(CONFIG)?;
    let (mut model, mut reference) = common::build_pair(
        |vb| built::qwen3::ModelForCausalLM::new(&cfg, vb),
        |vb| ct::qwen3::ModelForCausalLM::new(&ref_cfg, vb),
    )?;
    let names = model.hook_point_names();
    assert_listed(&names, "base.layers.0.self_attn.q_norm.hook_point");
    let ids = common::tokens(&Device::Cpu)?;
    let run = |m: &mut built::qwen3::ModelForCausalLM| {
        m.clear_kv_cache();
        m.forward(&ids, 0)
    };
    let reference = || {
        reference.clear_kv_cache();
        reference.forward(&ids, 0)
    };
    check_model(
        &mut model,
        reference,
        run,
        stop("base.layers.0.**", "base.layers.1."),
    )?;
    check_edit(&mut model, run, "base.layers.1.mlp.down_proj.hook_point")?;
    Ok(())
}

#[test]
fn gemma() -> TestResult {
    const CONFIG: &str = r#"{"attention_bias": false, "head_dim": 8, "hidden_act": null,
      "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 32, "intermediate_size": 48,
      "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2,
      "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "vocab_size": 64,
      "max_position_embeddings": 64}"#;
    let cfg: built::gemma::Config = serde_json::from_str(CONFIG)?;
    let ref_cfg: ct::gemma::Config = serde_json::from_str(CONFIG)?;
    let (mut model, mut reference) = common::build_pair(
        |vb| built::gemma::Model::new(false, &cfg, vb),
        |vb| ct::gemma::Model::new(false, &ref_cfg, vb),
    )?;
    let names = model.hook_point_names();
    assert_listed(&names, "layers.0.mlp.gate_proj.hook_point");
    let ids = common::tokens(&Device::Cpu)?;
    let run = |m: &mut built::gemma::Model| {
        m.clear_kv_cache();
        m.forward(&ids, 0)
    };
    let reference = || {
        reference.clear_kv_cache();
        reference.forward(&ids, 0)
    };
    check_model(&mut model, reference, run, stop("layers.0.**", "layers.1."))?;
    check_edit(&mut model, run, "layers.1.self_attn.o_proj.hook_point")?;
    Ok(())
}

#[test]
fn falcon() -> TestResult {
    const CONFIG: &str = r#"{"vocab_size": 64, "hidden_size": 32, "num_hidden_layers": 2,
      "num_attention_heads": 4, "layer_norm_epsilon": 1e-5, "initializer_range": 0.02,
      "use_cache": false, "bos_token_id": 1, "eos_token_id": 2, "hidden_dropout": 0.0,
      "attention_dropout": 0.0, "n_head_kv": null, "alibi": false,
      "new_decoder_architecture": false, "multi_query": true, "parallel_attn": true,
      "bias": false}"#;
    let cfg: built::falcon::Config = serde_json::from_str(CONFIG)?;
    let ref_cfg: ct::falcon::Config = serde_json::from_str(CONFIG)?;
    let (mut model, mut reference) = common::build_pair(
        |vb| built::falcon::Falcon::load(vb, cfg.clone()),
        |vb| ct::falcon::Falcon::load(vb, ref_cfg.clone()),
    )?;
    let names = model.hook_point_names();
    assert_listed(&names, "blocks.0.self_attention.dense.hook_point");
    // candle-transformers' Falcon takes one sequence at a time
    let ids = common::tokens(&Device::Cpu)?.narrow(0, 0, 1)?;
    let run = |m: &mut built::falcon::Falcon| {
        m.clear_kv_cache();
        m.forward(&ids)
    };
    let reference = || {
        reference.clear_kv_cache();
        reference.forward(&ids)
    };
    // Falcon memoizes cos/sin from `inv_freq` on its first call. An edit of `inv_freq`
    // in the very first run is used by that run only: the model then computes exactly
    // what candle-transformers' does, and `inv_freq` fires in every hooked run.
    let inv_freq = "blocks.0.self_attention.maybe_rotary.inv_freq.hook_point";
    let double = Hooks::new().add(inv_freq, |a: &Tensor, _| a * 2.0);
    let first = model.run_with_hooks_mut(double, |m| run(m))?;
    let plain = run(&mut model)?;
    assert!(
        same_bits("", &first, &plain).is_err(),
        "the edit had no effect"
    );
    check_model(&mut model, reference, run, stop("blocks.0.**", "blocks.1."))?;
    check_edit(&mut model, run, inv_freq)?;
    check_edit(&mut model, run, "blocks.1.mlp.dense_4h_to_h.hook_point")?;
    let cache = model.run_with_cache_stop_at_mut("blocks.0.mlp.**", |m| run(m))?;
    assert!(cache.contains("blocks.0.mlp.dense_4h_to_h.hook_point"));
    Ok(())
}

#[test]
fn bert() -> TestResult {
    const CONFIG: &str = r#"{"vocab_size": 64, "hidden_size": 32, "num_hidden_layers": 2,
      "num_attention_heads": 4, "intermediate_size": 48, "hidden_act": "gelu",
      "hidden_dropout_prob": 0.0, "max_position_embeddings": 64, "type_vocab_size": 2,
      "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0,
      "classifier_dropout": null, "model_type": "bert"}"#;
    let cfg: built::bert::Config = serde_json::from_str(CONFIG)?;
    let ref_cfg: ct::bert::Config = serde_json::from_str(CONFIG)?;
    let (mut model, reference) = common::build_pair(
        |vb| built::bert::BertModel::load(vb, &cfg),
        |vb| ct::bert::BertModel::load(vb, &ref_cfg),
    )?;
    let names = model.hook_point_names();
    // named like results, hold modules: hooked
    assert_listed(&names, "encoder.layers.0.output.dense.hook_point");
    assert_listed(
        &names,
        "encoder.layers.0.attention.self_output.dense.hook_point",
    );
    let ids = common::tokens(&Device::Cpu)?;
    let types = ids.zeros_like()?;
    let run = |m: &mut built::bert::BertModel| m.forward(&ids, &types, None);
    check_model(
        &mut model,
        || reference.forward(&ids, &types, None),
        run,
        stop("encoder.layers.0.**", "encoder.layers.1."),
    )?;
    check_edit(&mut model, run, "encoder.layers.1.output.dense.hook_point")?;
    Ok(())
}

#[test]
fn t5() -> TestResult {
    const CONFIG: &str = r#"{"vocab_size": 64, "d_model": 32, "d_kv": 8, "d_ff": 48,
      "num_layers": 2, "num_decoder_layers": 2, "num_heads": 4,
      "relative_attention_num_buckets": 8, "dropout_rate": 0.0, "layer_norm_epsilon": 1e-6,
      "initializer_factor": 1.0, "feed_forward_proj": "gated-gelu",
      "is_encoder_decoder": true, "pad_token_id": 0, "eos_token_id": 1,
      "decoder_start_token_id": 0}"#;
    let cfg: built::t5::Config = serde_json::from_str(CONFIG)?;
    let ref_cfg: ct::t5::Config = serde_json::from_str(CONFIG)?;
    let (mut model, mut reference) = common::build_pair(
        |vb| built::t5::T5EncoderModel::load(vb, &cfg),
        |vb| ct::t5::T5EncoderModel::load(vb, &ref_cfg),
    )?;
    let names = model.hook_point_names();
    assert_listed(&names, "encoder.block.0.ff.gated_dense_act.wo.hook_point");
    let ids = common::tokens(&Device::Cpu)?;
    let run = |m: &mut built::t5::T5EncoderModel| {
        m.clear_kv_cache();
        m.forward(&ids)
    };
    let reference = || {
        reference.clear_kv_cache();
        reference.forward(&ids)
    };
    check_model(
        &mut model,
        reference,
        run,
        stop("encoder.block.0.**", "encoder.block.1."),
    )?;
    check_edit(
        &mut model,
        run,
        "encoder.block.1.ff.gated_dense_act.wo.hook_point",
    )?;
    Ok(())
}

/// A tiny llama GGUF (f32 tensors, seeded values) in memory: 2 layers, 4 heads of 8.
fn tiny_llama_gguf() -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    use candle::quantized::{gguf_file, GgmlDType, QTensor};
    let dev = Device::Cpu;
    let (d, ff, vocab, layers) = (32usize, 64usize, 64usize, 2usize);
    let mut names: Vec<(String, Vec<usize>)> = vec![
        ("token_embd.weight".into(), vec![vocab, d]),
        ("output_norm.weight".into(), vec![d]),
        ("output.weight".into(), vec![vocab, d]),
    ];
    for l in 0..layers {
        for (name, shape) in [
            ("attn_q", vec![d, d]),
            ("attn_k", vec![d / 2, d]),
            ("attn_v", vec![d / 2, d]),
            ("attn_output", vec![d, d]),
            ("attn_norm", vec![d]),
            ("ffn_gate", vec![ff, d]),
            ("ffn_down", vec![d, ff]),
            ("ffn_up", vec![ff, d]),
            ("ffn_norm", vec![d]),
        ] {
            names.push((format!("blk.{l}.{name}.weight"), shape));
        }
    }
    let varmap = candle_nn::VarMap::new();
    let vb = candle_nn::VarBuilder::from_varmap(&varmap, candle::DType::F32, &dev);
    let tensors: Vec<(String, candle::Tensor)> = names
        .iter()
        .map(|(n, s)| Ok((n.clone(), vb.get(s.as_slice(), n)?)))
        .collect::<candle::Result<_>>()?;
    auto_hook_ct::weights::fill(&varmap, 7)?;
    let qtensors: Vec<(String, QTensor)> = tensors
        .iter()
        .map(|(n, t)| Ok((n.clone(), QTensor::quantize(t, GgmlDType::F32)?)))
        .collect::<candle::Result<_>>()?;
    let u32v = |v: u32| gguf_file::Value::U32(v);
    let metadata = [
        (
            "general.architecture",
            gguf_file::Value::String("llama".into()),
        ),
        ("llama.attention.head_count", u32v(4)),
        ("llama.attention.head_count_kv", u32v(2)),
        ("llama.block_count", u32v(layers as u32)),
        ("llama.embedding_length", u32v(d as u32)),
        ("llama.rope.dimension_count", u32v(8)),
        (
            "llama.attention.layer_norm_rms_epsilon",
            gguf_file::Value::F32(1e-5),
        ),
    ];
    let metadata: Vec<(&str, &gguf_file::Value)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
    let tensors: Vec<(&str, &QTensor)> = qtensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut out = std::io::Cursor::new(Vec::new());
    gguf_file::write(&mut out, &metadata, &tensors)?;
    Ok(out.into_inner())
}

#[test]
fn quantized_llama() -> TestResult {
    use candle::quantized::gguf_file;
    let bytes = tiny_llama_gguf()?;
    let load = |bytes: &[u8]| -> candle::Result<(gguf_file::Content, std::io::Cursor<Vec<u8>>)> {
        let mut reader = std::io::Cursor::new(bytes.to_vec());
        Ok((gguf_file::Content::read(&mut reader)?, reader))
    };
    let (content, mut reader) = load(&bytes)?;
    let mut model =
        built::quantized_llama::ModelWeights::from_gguf(content, &mut reader, &Device::Cpu)?;
    let (content, mut reader) = load(&bytes)?;
    let mut reference =
        ct::quantized_llama::ModelWeights::from_gguf(content, &mut reader, &Device::Cpu)?;
    let names = model.hook_point_names();
    // the file's own tracing QMatMul is its own, hooked struct: its points fire
    assert_listed(&names, "layers.1.attention_wo.hook_point");
    assert_listed(&names, "layers.1.attention_wo.inner.hook_point");
    // the MLP sits in the `MlpOrMoe` enum, under its variant's name
    assert_listed(&names, "layers.0.mlp_or_moe.Mlp.feed_forward_w2.hook_point");
    // the layer has no forward (the loop is in ModelWeights::forward): no own point
    assert!(
        !names.iter().any(|n| n == "layers.0.hook_point"),
        "{names:?}"
    );
    let ids = common::tokens(&Device::Cpu)?.narrow(0, 0, 1)?;
    // a fresh position each call: the KV cache grows in step on both models
    let (mut pos, mut ref_pos) = (0, 0);
    let len = ids.dim(1)?;
    let mut reference = || {
        ref_pos += len;
        reference.forward(&ids, ref_pos - len)
    };
    let mut run = |m: &mut built::quantized_llama::ModelWeights| {
        pos += len;
        m.forward(&ids, pos - len)
    };
    // the edit at the last layer's output projection takes effect (it changes no KV
    // cache: layer 1's keys and values come before its output projection)
    let zero = Hooks::new().add(
        "layers.1.attention_wo.hook_point",
        |a: &candle::Tensor, _| a.zeros_like(),
    );
    let edited = model.run_with_hooks_mut(zero, &mut run)?;
    let clean = reference()?;
    assert!(
        auto_hook_ct::check::same_bits("", &edited, &clean).is_err(),
        "zeroing layers.1.attention_wo.hook_point changed nothing"
    );
    check_model(
        &mut model,
        &mut reference,
        &mut run,
        stop("layers.0.**", "layers.1."),
    )?;
    Ok(())
}

/// The checks for a decoder whose `forward(&mut self, ids, 0)` keeps a KV cache that
/// `clear_kv_cache` empties; `$new` builds it from `(&cfg, vb)`.
macro_rules! decoder_coverage {
    ($name:ident, $module:ident, $model:ident, $config:expr, $point:literal, $edit:literal) => {
        #[test]
        fn $name() -> TestResult {
            let cfg: built::$module::Config = serde_json::from_str($config)?;
            let ref_cfg: ct::$module::Config = serde_json::from_str($config)?;
            let (mut model, mut reference) = common::build_pair(
                |vb| built::$module::$model::new(&cfg, vb),
                |vb| ct::$module::$model::new(&ref_cfg, vb),
            )?;
            assert_listed(&model.hook_point_names(), $point);
            let ids = common::tokens(&Device::Cpu)?;
            let run = |m: &mut built::$module::$model| {
                m.clear_kv_cache();
                m.forward(&ids, 0)
            };
            let reference = || {
                reference.clear_kv_cache();
                reference.forward(&ids, 0)
            };
            check_model(&mut model, reference, run, stop("layers.0.**", "layers.1."))?;
            check_edit(&mut model, run, $edit)?;
            Ok(())
        }
    };
}

decoder_coverage!(
    starcoder2,
    starcoder2,
    Model,
    r#"{"vocab_size": 64, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
      "num_attention_heads": 4, "num_key_value_heads": 2, "hidden_act": "gelu_pytorch_tanh",
      "max_position_embeddings": 64, "norm_epsilon": 1e-5, "rope_theta": 10000.0,
      "use_bias": true, "sliding_window": null}"#,
    "layers.0.self_attn.q_proj.hook_point",
    "layers.1.mlp.c_proj.hook_point"
);

decoder_coverage!(
    olmo,
    olmo,
    Model,
    r#"{"vocab_size": 64, "hidden_size": 32, "intermediate_size": 48, "attention_bias": false,
      "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
      "hidden_act": "silu", "max_position_embeddings": 64, "rope_theta": 10000.0,
      "tie_word_embeddings": false, "clip_qkv": null}"#,
    "layers.0.self_attn.q_proj.hook_point",
    "layers.1.mlp.down_proj.hook_point"
);

decoder_coverage!(
    qwen2_moe,
    qwen2_moe,
    Model,
    r#"{"vocab_size": 64, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
      "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64,
      "sliding_window": 64, "max_window_layers": 2, "tie_word_embeddings": false,
      "rope_theta": 10000.0, "rms_norm_eps": 1e-6, "use_sliding_window": false,
      "hidden_act": "silu", "decoder_sparse_step": 1, "moe_intermediate_size": 16,
      "shared_expert_intermediate_size": 24, "num_experts_per_tok": 4, "num_experts": 4,
      "norm_topk_prob": false}"#,
    "layers.0.self_attn.q_proj.hook_point",
    "layers.1.self_attn.o_proj.hook_point"
);

#[test]
fn distilbert() -> TestResult {
    const CONFIG: &str = r#"{"vocab_size": 64, "dim": 32, "n_layers": 2, "n_heads": 4,
      "hidden_dim": 48, "activation": "gelu", "max_position_embeddings": 64,
      "initializer_range": 0.02, "pad_token_id": 0, "model_type": "distilbert"}"#;
    let cfg: built::distilbert::Config = serde_json::from_str(CONFIG)?;
    let ref_cfg: ct::distilbert::Config = serde_json::from_str(CONFIG)?;
    let (mut model, reference) = common::build_pair(
        |vb| built::distilbert::DistilBertModel::load(vb, &cfg),
        |vb| ct::distilbert::DistilBertModel::load(vb, &ref_cfg),
    )?;
    let names = model.hook_point_names();
    let ids = common::tokens(&Device::Cpu)?;
    // nothing masked: [batch, 1, 1, seq], broadcast over heads and queries
    let mask = ids.zeros_like()?.reshape((2, 1, 1, 5))?;
    let run = |m: &mut built::distilbert::DistilBertModel| m.forward(&ids, &mask);
    check_model(
        &mut model,
        || reference.forward(&ids, &mask),
        run,
        stop("transformer.layers.0.**", "transformer.layers.1."),
    )
    .map_err(|e| format!("{e}\n{names:?}"))?;
    check_edit(&mut model, run, "transformer.layers.1.ffn.lin2.hook_point")?;
    Ok(())
}

/// candle-transformers' `quantized_llama.rs` through `auto_hook_build` on SmolLM2-135M's
/// real GGUF (Q4_1): bit-identical to candle-transformers' own, every listed point fires,
/// zeroing `layers.15.attention_wo.hook_point` changes the logits, and the run stops after
/// layer 0. Needs the file: `AUTO_HOOK_SMOLLM2_GGUF=$(scripts/fetch_smollm2.sh | tail -1)`.
#[test]
#[ignore = "needs SmolLM2-135M's GGUF (scripts/fetch_smollm2.sh); slow in debug builds"]
fn quantized_llama_on_smollm2() -> TestResult {
    use candle::quantized::gguf_file;
    let path = std::env::var("AUTO_HOOK_SMOLLM2_GGUF")?;
    let load = || -> candle::Result<(gguf_file::Content, std::fs::File)> {
        let mut file = std::fs::File::open(&path)?;
        Ok((gguf_file::Content::read(&mut file)?, file))
    };
    let pair = || -> candle::Result<_> {
        let (content, mut file) = load()?;
        let hooked =
            built::quantized_llama::ModelWeights::from_gguf(content, &mut file, &Device::Cpu)?;
        let (content, mut file) = load()?;
        let own = ct::quantized_llama::ModelWeights::from_gguf(content, &mut file, &Device::Cpu)?;
        Ok((hooked, own))
    };
    // five arbitrary token ids of SmolLM2's vocabulary
    let ids = candle::Tensor::new(&[[504u32, 3575, 282, 4649, 314]], &Device::Cpu)?;
    // the edit, on a fresh pair: it also edits the KV cache of layers 16-29, which is
    // the caller's state (the next run attends to it), so the checks below use another
    let (mut model, mut reference) = pair()?;
    let zero = Hooks::new().add(
        "layers.15.attention_wo.hook_point",
        |a: &candle::Tensor, _| a.zeros_like(),
    );
    let edited = model.run_with_hooks_mut(zero, |m| m.forward(&ids, 0))?;
    let diff = (edited - reference.forward(&ids, 0)?)?
        .abs()?
        .max_all()?
        .to_scalar::<f32>()?;
    assert!(
        diff > 0.0,
        "zeroing layers.15.attention_wo.hook_point changed nothing"
    );
    let (mut model, mut reference) = pair()?;
    let names = model.hook_point_names();
    assert_listed(&names, "layers.15.attention_wo.hook_point");
    assert_listed(
        &names,
        "layers.29.mlp_or_moe.Mlp.feed_forward_w2.hook_point",
    );
    let len = ids.dim(1)?;
    let (mut pos, mut ref_pos) = (0, 0);
    let reference = || {
        ref_pos += len;
        reference.forward(&ids, ref_pos - len)
    };
    let run = |m: &mut built::quantized_llama::ModelWeights| {
        pos += len;
        m.forward(&ids, pos - len)
    };
    let summary = check_model(&mut model, reference, run, stop("layers.0.**", "layers.1."))?;
    println!(
        "{} listed points, all fired; the layer-15 edit moved the logits by up to {diff}",
        summary.fire_counts.len()
    );
    Ok(())
}

/// [`check_model`] then [`check_edit`] of `edit`; a failure also lists the model's points.
fn check_all<M: HookedRoot>(
    model: &mut M,
    reference: impl FnMut() -> candle::Result<candle::Tensor>,
    run: impl FnMut(&mut M) -> candle::Result<candle::Tensor> + Copy,
    stop: Stop<'_>,
    edit: &str,
) -> TestResult {
    let names = model.hook_point_names();
    let listed = |e: String| format!("{e}\nlisted: {names:?}");
    check_model(model, reference, run, stop).map_err(listed)?;
    check_edit(model, run, edit).map_err(listed)?;
    Ok(())
}

#[test]
fn stable_lm() -> TestResult {
    // `use_cache: false`: the file has no `clear_kv_cache`, and every check runs the
    // forward several times from position 0.
    const CONFIG: &str = r#"{"vocab_size": 64, "intermediate_size": 48, "hidden_size": 32,
      "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
      "hidden_act": "silu", "partial_rotary_factor": 0.25, "rope_theta": 10000.0,
      "max_position_embeddings": 64, "layer_norm_eps": 1e-5, "use_cache": false,
      "use_qkv_bias": true}"#;
    let cfg: built::stable_lm::Config = serde_json::from_str(CONFIG)?;
    let ref_cfg: ct::stable_lm::Config = serde_json::from_str(CONFIG)?;
    let (mut model, mut reference) = common::build_pair(
        |vb| built::stable_lm::Model::new(&cfg, vb),
        |vb| ct::stable_lm::Model::new(&ref_cfg, vb),
    )?;
    assert_listed(
        &model.hook_point_names(),
        "layers.0.self_attn.q_proj.hook_point",
    );
    let ids = common::tokens(&Device::Cpu)?;
    let run = |m: &mut built::stable_lm::Model| m.forward(&ids, 0);
    check_all(
        &mut model,
        || reference.forward(&ids, 0),
        run,
        stop("layers.0.**", "layers.1."),
        "layers.1.mlp.down_proj.hook_point",
    )
}

#[test]
fn gemma3() -> TestResult {
    // Sliding window 2 (shorter than the 5 tokens) on both layers, both soft-caps. (A
    // global layer fails in candle-transformers 0.11 itself on prompts longer than one
    // token: its KV cache gets a non-contiguous value tensor, "slice-set only supports
    // contiguous tensors".)
    const CONFIG: &str = r#"{"attention_bias": false, "head_dim": 8,
      "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 32, "intermediate_size": 48,
      "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2,
      "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0,
      "vocab_size": 64, "final_logit_softcapping": 30.0, "attn_logit_softcapping": 50.0,
      "query_pre_attn_scalar": 8, "sliding_window": 2, "sliding_window_pattern": 3,
      "max_position_embeddings": 64}"#;
    let cfg: built::gemma3::Config = serde_json::from_str(CONFIG)?;
    let ref_cfg: ct::gemma3::Config = serde_json::from_str(CONFIG)?;
    let (mut model, mut reference) = common::build_pair(
        |vb| built::gemma3::Model::new(false, &cfg, vb),
        |vb| ct::gemma3::Model::new(false, &ref_cfg, vb),
    )?;
    assert_listed(
        &model.hook_point_names(),
        "layers.0.self_attn.q_norm.hook_point",
    );
    let ids = common::tokens(&Device::Cpu)?;
    let run = |m: &mut built::gemma3::Model| {
        m.clear_kv_cache();
        m.forward(&ids, 0)
    };
    let reference = || {
        reference.clear_kv_cache();
        reference.forward(&ids, 0)
    };
    check_all(
        &mut model,
        reference,
        run,
        stop("layers.0.**", "layers.1."),
        "layers.1.mlp.down_proj.hook_point",
    )
}

#[test]
fn jina_bert() -> TestResult {
    const CONFIG: &str = r#"{"vocab_size": 64, "hidden_size": 32, "num_hidden_layers": 2,
      "num_attention_heads": 4, "intermediate_size": 48, "hidden_act": "gelu",
      "max_position_embeddings": 64, "type_vocab_size": 2, "initializer_range": 0.02,
      "layer_norm_eps": 1e-12, "pad_token_id": 0, "position_embedding_type": "alibi"}"#;
    let cfg: built::jina_bert::Config = serde_json::from_str(CONFIG)?;
    let ref_cfg: ct::jina_bert::Config = serde_json::from_str(CONFIG)?;
    let (mut model, reference) = common::build_pair(
        |vb| built::jina_bert::BertModel::new(vb, &cfg),
        |vb| ct::jina_bert::BertModel::new(vb, &ref_cfg),
    )?;
    let ids = common::tokens(&Device::Cpu)?;
    let run = |m: &mut built::jina_bert::BertModel| candle::Module::forward(m, &ids);
    check_all(
        &mut model,
        || candle::Module::forward(&reference, &ids),
        run,
        stop("encoder.layers.0.**", "encoder.layers.1."),
        "encoder.layers.1.mlp.wo.hook_point",
    )
}

#[test]
fn modernbert() -> TestResult {
    // Local attention (window 2) on layer 1, global on layer 0.
    const CONFIG: &str = r#"{"vocab_size": 64, "hidden_size": 32, "num_hidden_layers": 2,
      "num_attention_heads": 4, "intermediate_size": 48, "max_position_embeddings": 64,
      "layer_norm_eps": 1e-5, "pad_token_id": 0, "global_attn_every_n_layers": 2,
      "global_rope_theta": 160000.0, "local_attention": 4, "local_rope_theta": 10000.0}"#;
    let cfg: built::modernbert::Config = serde_json::from_str(CONFIG)?;
    let ref_cfg: ct::modernbert::Config = serde_json::from_str(CONFIG)?;
    let (mut model, reference) = common::build_pair(
        |vb| built::modernbert::ModernBertForMaskedLM::load(vb, &cfg),
        |vb| ct::modernbert::ModernBertForMaskedLM::load(vb, &ref_cfg),
    )?;
    let ids = common::tokens(&Device::Cpu)?;
    let mask = ids.ones_like()?;
    let run = |m: &mut built::modernbert::ModernBertForMaskedLM| m.forward(&ids, &mask);
    check_all(
        &mut model,
        || reference.forward(&ids, &mask),
        run,
        stop("model.layers.0.**", "model.layers.1."),
        "model.layers.1.mlp.wo.hook_point",
    )
}

#[test]
fn vit() -> TestResult {
    // 16×16 images of 3 channels in 4×4 patches: 16 patches and the class token.
    const CONFIG: &str = r#"{"hidden_size": 32, "num_hidden_layers": 2,
      "num_attention_heads": 4, "intermediate_size": 48, "hidden_act": "gelu",
      "layer_norm_eps": 1e-12, "image_size": 16, "patch_size": 4, "num_channels": 3,
      "qkv_bias": true}"#;
    let cfg: built::vit::Config = serde_json::from_str(CONFIG)?;
    let ref_cfg: ct::vit::Config = serde_json::from_str(CONFIG)?;
    let (mut model, reference) = common::build_pair(
        |vb| built::vit::Model::new(&cfg, 10, vb),
        |vb| ct::vit::Model::new(&ref_cfg, 10, vb),
    )?;
    let images = (candle::Tensor::arange(0f32, 2. * 3. * 16. * 16., &Device::Cpu)?
        .reshape((2, 3, 16, 16))?
        * 0.37)?
        .sin()?;
    let run = |m: &mut built::vit::Model| m.forward(&images);
    check_all(
        &mut model,
        || reference.forward(&images),
        run,
        stop("encoder.layers.0.**", "encoder.layers.1."),
        "encoder.layers.1.output.dense.hook_point",
    )
}

#[test]
fn segformer() -> TestResult {
    // Two stages (16 and 32 channels, one block each, spatial reduction 2 then 1) on
    // 32×32 images of 3 channels.
    const CONFIG: &str = r#"{"num_channels": 3, "num_encoder_blocks": 2, "depths": [1, 1],
      "sr_ratios": [2, 1], "hidden_sizes": [16, 32], "patch_sizes": [7, 3], "strides": [4, 2],
      "num_attention_heads": [1, 2], "mlp_ratios": [2, 2], "hidden_act": "gelu",
      "layer_norm_eps": 1e-6, "decoder_hidden_size": 32}"#;
    let cfg: built::segformer::Config = serde_json::from_str(CONFIG)?;
    let ref_cfg: ct::segformer::Config = serde_json::from_str(CONFIG)?;
    let (mut model, reference) = common::build_pair(
        |vb| built::segformer::ImageClassificationModel::new(&cfg, 10, vb),
        |vb| ct::segformer::ImageClassificationModel::new(&ref_cfg, 10, vb),
    )?;
    let images = (candle::Tensor::arange(0f32, 2. * 3. * 32. * 32., &Device::Cpu)?
        .reshape((2, 3, 32, 32))?
        * 0.11)?
        .cos()?;
    let run =
        |m: &mut built::segformer::ImageClassificationModel| candle::Module::forward(m, &images);
    check_all(
        &mut model,
        || candle::Module::forward(&reference, &images),
        run,
        stop("segformer.encoder.**", "classifier."),
        "classifier.hook_point",
    )
}

#[test]
fn rwkv_v6() -> TestResult {
    // A recurrent model, one token per step: the state is the caller's, fresh per run.
    const CONFIG: &str = r#"{"vocab_size": 64, "hidden_size": 32, "num_hidden_layers": 2,
      "attention_hidden_size": 32, "num_attention_heads": 8, "head_size": 8,
      "intermediate_size": 48, "layer_norm_epsilon": 1e-5, "rescale_every": 0}"#;
    let cfg: ct::rwkv_v5::Config = serde_json::from_str(CONFIG)?;
    let (mut model, reference) = common::build_pair(
        |vb| built::rwkv_v6::Model::new(&cfg, vb),
        |vb| ct::rwkv_v6::Model::new(&cfg, vb),
    )?;
    // Batch 1 (the file multiplies without broadcasting), one token at a time through a
    // fresh state; the logits of every step.
    let ids = common::tokens(&Device::Cpu)?.narrow(0, 0, 1)?;
    let steps = |forward: &mut dyn FnMut(
        &candle::Tensor,
        &mut ct::rwkv_v5::State,
    ) -> candle::Result<candle::Tensor>| {
        let mut state = ct::rwkv_v5::State::new(1, &cfg, &Device::Cpu)?;
        let logits = (0..ids.dim(1)?)
            .map(|t| forward(&ids.narrow(1, t, 1)?, &mut state))
            .collect::<candle::Result<Vec<_>>>()?;
        candle::Tensor::cat(&logits, 1)
    };
    let run = |m: &mut built::rwkv_v6::Model| steps(&mut |x, s| m.forward(x, s));
    check_all(
        &mut model,
        || steps(&mut |x, s| reference.forward(x, s)),
        run,
        stop("blocks.0.**", "blocks.1."),
        "blocks.1.feed_forward.value.hook_point",
    )
}
