//! GGUF checkpoints written by the tests (candle's writer, random weights, every quant
//! type): dequantised they equal the same weights loaded from safetensors; quantized
//! they keep `QMatMul` projections, fire every hook under the same names and stay close;
//! the tokenizer, chat template and text helpers come from the metadata; bad files are
//! typed errors.

mod common;

use auto_hook::prelude::*;
use auto_hook_models::{ChatMessage, Error, HookedTransformer};
use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device, Tensor};
use common::gguf::{write, Spec, BOS, EOS};
use common::{max_diff, rel_diff, temp_folder};

fn ids() -> Tensor {
    let ids: Vec<u32> = (0..2 * 9).map(|i| ((i * 37 + 5) % 262) as u32).collect();
    Tensor::from_vec(ids, (2, 9), &Device::Cpu).unwrap()
}

fn logits(model: &HookedTransformer) -> Tensor {
    model.forward(&ids(), None).unwrap()
}

/// Dequantised: bit-identical to the folder with the same weights. Quantized: the same
/// hook names, every one fires, logits within `tol` (relative to the largest logit).
fn check(spec: Spec, tol: f32) {
    let dir = temp_folder(&format!("gguf_{:?}", spec.quant));
    let path = write(&dir, &spec);
    let from_hf = auto_hook_models::load(dir.join("hf"), DType::F32, &Device::Cpu).unwrap();
    let deq = auto_hook_models::load(&path, DType::F32, &Device::Cpu).unwrap();
    assert_eq!(
        max_diff(&logits(&deq), &logits(&from_hf)),
        0.0,
        "{:?} dequantised vs safetensors",
        spec.quant
    );
    let quant = auto_hook_models::load_quantized(&path, &Device::Cpu).unwrap();
    let quantized = !matches!(
        spec.quant,
        GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16
    );
    assert_eq!(
        quant.unembed().is_quantized(),
        quantized,
        "{:?}",
        spec.quant
    );
    assert_eq!(
        quant.blocks()[1].attn().q_proj().quant_type(),
        quantized.then_some(spec.quant)
    );
    assert_eq!(quant.hook_point_names(), deq.hook_point_names());
    let (out, cache) = quant
        .run_with_cache(CacheOptions::all(), |m| m.forward(&ids(), None))
        .unwrap();
    let fired: Vec<&str> = cache.names().collect();
    assert_eq!(
        fired.len(),
        quant.hook_point_names().len(),
        "{:?}: every point fires",
        spec.quant
    );
    let diff = rel_diff(&out, &logits(&deq));
    eprintln!(
        "{:?} {}: quantized vs dequantised logits, max diff / max |logit| = {diff:.2e}",
        spec.quant, spec.arch
    );
    assert!(
        diff < tol,
        "{:?}: quantized vs dequantised {diff}",
        spec.quant
    );
}

#[test]
fn every_quant_type_loads_dequantised_exactly_and_quantized_closely() {
    // Both modes hold the same weights; a quantized matmul also quantizes the activations
    // to 8 bits (Q8_0 / Q8_K blocks), which is the whole difference: 1.9e-2 to 3.7e-2 of
    // the largest logit on this random model for every block type (measured), 0 for the
    // float types, which stay dense.
    let cases = [
        (GgmlDType::F32, 1e-6),
        (GgmlDType::F16, 1e-6),
        (GgmlDType::BF16, 1e-6),
        (GgmlDType::Q8_0, 0.05),
        (GgmlDType::Q6K, 0.05),
        (GgmlDType::Q5_0, 0.05),
        (GgmlDType::Q5_1, 0.05),
        (GgmlDType::Q5K, 0.05),
        (GgmlDType::Q4_0, 0.05),
        (GgmlDType::Q4_1, 0.05),
        (GgmlDType::Q4K, 0.05),
        (GgmlDType::Q3K, 0.05),
        (GgmlDType::Q2K, 0.05),
    ];
    for (quant, tol) in cases {
        check(Spec::llama(quant), tol);
    }
}

#[test]
fn qwen2_with_biases_and_tied_embeddings_loads_without_reordering_rows() {
    let mut spec = Spec::llama(GgmlDType::Q8_0);
    spec.arch = "qwen2";
    spec.qkv_bias = true;
    spec.tied = true;
    check(spec, 0.05);
}

#[test]
fn gpt2_loads_with_its_fused_qkv_split_and_conv1d_layout_undone() {
    // llama.cpp stores GPT-2's Conv1D weights transposed and q/k/v fused (`attn_qkv`):
    // dequantised they equal the Hugging Face folder; quantized, the fused rows are split
    // without dequantising. Tied (the usual GPT-2) and untied.
    for quant in [
        GgmlDType::F32,
        GgmlDType::F16,
        GgmlDType::Q8_0,
        GgmlDType::Q4K,
    ] {
        let tol = if quant == GgmlDType::F32 || quant == GgmlDType::F16 {
            1e-6
        } else {
            0.05
        };
        check(Spec::gpt2(quant), tol);
    }
    let mut untied = Spec::gpt2(GgmlDType::Q5_0);
    untied.tied = false;
    check(untied, 0.05);
}

#[test]
fn mixtral_loads_with_its_stacked_experts_split() {
    // llama.cpp's Mixtral: `llama` with `expert_count`, the router as `ffn_gate_inp`, the
    // experts stacked `[expert, rows, cols]` in `ffn_{gate,up,down}_exps`. Dequantised it
    // equals the folder; quantized, attention and unembedding stay quantized and the
    // experts (dense in this port) are dequantised. The quantized attention moves the
    // router's scores enough to swap some tokens' top-2 experts, a jump rather than
    // noise: 1.9e-2 of the largest logit at Q8_0, 5.6e-2 at Q6_K, 1.3e-1 at Q4_K on this
    // random model (measured), so the closeness check is made at Q8_0.
    for (quant, tol) in [
        (GgmlDType::F32, 1e-6),
        (GgmlDType::F16, 1e-6),
        (GgmlDType::Q8_0, 0.05),
    ] {
        check(Spec::mixtral(quant), tol);
    }
    let dir = temp_folder("gguf_mixtral_names");
    let model = auto_hook_models::load(
        write(&dir, &Spec::mixtral(GgmlDType::F32)),
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    assert_eq!(model.config().model_type, "mixtral");
    let names = model.hook_point_names();
    assert!(
        names
            .iter()
            .any(|n| n == "blocks.1.mlp.hook_expert_weights"),
        "{names:?}"
    );
}

#[test]
fn the_tokenizer_chat_template_and_text_helpers_come_from_the_metadata() {
    let dir = temp_folder("gguf_text");
    let path = write(&dir, &Spec::llama(GgmlDType::Q8_0));
    let model = auto_hook_models::load_quantized(&path, &Device::Cpu).unwrap();
    // Merges `a b` then `Ġ ab`; `<|e|>` is a control token, matched whole.
    let ab = model.to_tokens("ab ab<|e|>", &Device::Cpu).unwrap();
    assert_eq!(ab.to_vec2::<u32>().unwrap(), [[256, 257, EOS]]);
    assert_eq!(model.to_str_tokens("ab ab").unwrap(), ["ab", " ab"]);
    assert_eq!(model.to_string(&[256, 257, 258]).unwrap(), "ab ab t");
    assert_eq!(model.to_single_token(" ab").unwrap(), 257);
    assert!(matches!(
        model.to_single_token("abab"),
        Err(Error::Input(_))
    ));
    // Bytes outside ASCII go through the byte alphabet and back.
    let text = "é 😀";
    let tokens = model.to_tokens(text, &Device::Cpu).unwrap();
    let ids = tokens.flatten_all().unwrap().to_vec1::<u32>().unwrap();
    assert_eq!(ids.len(), text.len());
    assert_eq!(model.to_string(&ids).unwrap(), text);
    let chat = model
        .apply_chat_template(&[ChatMessage::new("user", "hi")], true)
        .unwrap();
    assert_eq!(chat, "<|s|>user: hi<|e|><|s|>assistant: ");
    let chat_ids = model.to_tokens(&chat, &Device::Cpu).unwrap();
    assert_eq!(chat_ids.to_vec2::<u32>().unwrap()[0][0], BOS);
    // The same tokenizer through the function the `tokenize` example uses.
    let tok = auto_hook_models::load_tokenizer(&path).unwrap().unwrap();
    assert_eq!(tok.encode("ab ab", false).unwrap().get_ids(), [256, 257]);
}

#[test]
fn a_file_that_asks_for_bos_gets_it_prepended() {
    let dir = temp_folder("gguf_bos");
    let mut spec = Spec::llama(GgmlDType::F32);
    spec.metadata
        .push(("tokenizer.ggml.add_bos_token".into(), Value::Bool(true)));
    let model = auto_hook_models::load(write(&dir, &spec), DType::F32, &Device::Cpu).unwrap();
    let ids = model.to_tokens("ab", &Device::Cpu).unwrap();
    assert_eq!(ids.to_vec2::<u32>().unwrap(), [[BOS, 256]]);
}

fn load_err(spec: Spec) -> Error {
    let dir = temp_folder("gguf_bad");
    let path = write(&dir, &spec);
    auto_hook_models::load(&path, DType::F32, &Device::Cpu).unwrap_err()
}

#[test]
fn truncated_and_corrupt_files_are_gguf_errors() {
    let dir = temp_folder("gguf_truncated");
    let path = write(&dir, &Spec::llama(GgmlDType::Q4_0));
    let bytes = std::fs::read(&path).unwrap();
    for (what, data) in [
        ("truncated data", bytes[..bytes.len() - 1000].to_vec()),
        ("truncated header", bytes[..100].to_vec()),
        ("bad magic", [b"GGUX".as_slice(), &bytes[4..]].concat()),
    ] {
        let bad = dir.join("bad.gguf");
        std::fs::write(&bad, data).unwrap();
        let err = auto_hook_models::load(&bad, DType::F32, &Device::Cpu).unwrap_err();
        assert!(matches!(err, Error::Gguf(_)), "{what}: {err}");
        assert!(err.to_string().contains("bad.gguf"), "{what}: {err}");
    }
}

#[test]
fn an_unknown_architecture_is_unsupported_and_named() {
    let mut spec = Spec::llama(GgmlDType::F32);
    spec.arch = "falcon";
    let err = load_err(spec);
    assert!(matches!(err, Error::Unsupported(_)), "{err}");
    assert!(err.to_string().contains("`falcon`"), "{err}");
}

#[test]
fn a_quant_type_that_is_not_a_weight_format_is_unsupported() {
    let err = load_err(Spec::llama(GgmlDType::Q8_1));
    assert!(matches!(err, Error::Unsupported(_)), "{err}");
    assert!(err.to_string().contains("Q8_1"), "{err}");
}

#[test]
fn a_missing_metadata_key_is_named() {
    let mut spec = Spec::llama(GgmlDType::F32);
    spec.without.push("llama.embedding_length");
    let err = load_err(spec);
    assert!(matches!(err, Error::Gguf(_)), "{err}");
    assert!(err.to_string().contains("llama.embedding_length"), "{err}");
}

#[test]
fn missing_or_unsupported_tokenizers_are_tokenizer_errors() {
    let mut spec = Spec::llama(GgmlDType::F32);
    spec.without.push("tokenizer.ggml.tokens");
    let err = load_err(spec);
    assert!(matches!(err, Error::Tokenizer(_)), "{err}");
    assert!(err.to_string().contains("tokenizer.ggml.tokens"), "{err}");
    let mut spec = Spec::llama(GgmlDType::F32);
    spec.metadata
        .push(("tokenizer.ggml.model".into(), Value::String("bert".into())));
    let err = load_err(spec);
    assert!(matches!(err, Error::Tokenizer(_)), "{err}");
    assert!(err.to_string().contains("`bert`"), "{err}");
}

#[test]
fn a_prompt_longer_than_the_context_is_a_clear_error() {
    let dir = temp_folder("gguf_ctx");
    let mut spec = Spec::llama(GgmlDType::F32);
    spec.context_length = 8;
    let model = auto_hook_models::load(write(&dir, &spec), DType::F32, &Device::Cpu).unwrap();
    let err = model.forward(&ids(), None).unwrap_err(); // 9 tokens
    assert!(
        matches!(auto_hook::find_error::<Error>(&err), Some(Error::Input(_))),
        "{err}"
    );
    assert!(err.to_string().contains("8 positions of context"), "{err}");
    let ok = ids().narrow(1, 0, 8).unwrap();
    assert!(model.forward(&ok, None).is_ok());
}

#[test]
fn load_quantized_refuses_a_folder() {
    let dir = temp_folder("gguf_folder");
    write(&dir, &Spec::llama(GgmlDType::F32));
    let err = auto_hook_models::load_quantized(dir.join("hf"), &Device::Cpu).unwrap_err();
    assert!(matches!(err, Error::Input(_)), "{err}");
}
