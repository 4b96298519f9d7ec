//! Small GGUF files written with candle's GGUF writer: a Llama-family or GPT-2 model of
//! random weights in any quantization, with a tiny byte-level BPE vocabulary, and the
//! same weights (as the file holds them) in a Hugging Face folder.

use super::Gauss;
use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// d_model 256 (K-quant blocks hold 256 values), 4 heads of 64, 2 KV heads, d_mlp 512.
pub const D: usize = 256;
pub const HEADS: usize = 4;
pub const KV: usize = 2;
pub const D_HEAD: usize = 64;
pub const D_MLP: usize = 512;
pub const LAYERS: usize = 2;

/// The vocabulary: the 256 byte-level characters, then `ab`, `Ġab`, `Ġt`, `he`, and the
/// control tokens `<|s|>` (BOS) and `<|e|>` (EOS).
pub fn vocab() -> Vec<String> {
    let mut tokens: Vec<String> = byte_chars().iter().map(|c| c.to_string()).collect();
    for t in ["ab", "\u{120}ab", "\u{120}t", "he", "<|s|>", "<|e|>"] {
        tokens.push(t.to_owned());
    }
    tokens
}

pub const BOS: u32 = 260;
pub const EOS: u32 = 261;

fn byte_chars() -> Vec<char> {
    let mut extra = 0u32;
    (0..=255u8)
        .map(|b| {
            if (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE {
                b as char
            } else {
                extra += 1;
                char::from_u32(255 + extra).unwrap()
            }
        })
        .collect()
}

/// What to write.
pub struct Spec {
    pub arch: &'static str,
    pub quant: GgmlDType,
    pub tied: bool,
    pub qkv_bias: bool,
    pub context_length: u32,
    /// Extra or replaced metadata.
    pub metadata: Vec<(String, Value)>,
    /// Metadata keys left out.
    pub without: Vec<&'static str>,
    /// Mixtral: this many experts (top-2) instead of the dense MLP; 0 for none.
    pub experts: usize,
}

impl Spec {
    pub fn llama(quant: GgmlDType) -> Self {
        Self {
            arch: "llama",
            quant,
            tied: false,
            qkv_bias: false,
            context_length: 64,
            metadata: Vec::new(),
            without: Vec::new(),
            experts: 0,
        }
    }

    /// Mixtral: llama.cpp's `llama` with 4 experts (top-2), stacked `ffn_*_exps`.
    pub fn mixtral(quant: GgmlDType) -> Self {
        let mut spec = Self::llama(quant);
        spec.experts = 4;
        spec.metadata = vec![
            ("llama.expert_count".into(), Value::U32(4)),
            ("llama.expert_used_count".into(), Value::U32(2)),
        ];
        spec
    }

    /// GPT-2 (LayerNorm, learned positions, fused `c_attn`, biases everywhere).
    pub fn gpt2(quant: GgmlDType) -> Self {
        Self {
            arch: "gpt2",
            qkv_bias: true,
            ..Self::llama(quant)
        }
    }
}

/// Hugging Face names and weights (f32) of a random model.
fn hf_weights(spec: &Spec) -> Vec<(String, Tensor)> {
    if spec.arch == "gpt2" {
        return gpt2_weights(spec);
    }
    let v = vocab().len();
    let mut g = Gauss::new(7);
    let mut t = Vec::new();
    let mut push = |name: String, shape: &[usize], scale: f64, offset: f64| {
        t.push((name, g.tensor_around(shape, scale, offset)));
    };
    push("model.embed_tokens.weight".into(), &[v, D], 0.5, 0.0);
    for l in 0..LAYERS {
        let p = format!("model.layers.{l}");
        push(format!("{p}.input_layernorm.weight"), &[D], 0.1, 1.0);
        push(
            format!("{p}.post_attention_layernorm.weight"),
            &[D],
            0.1,
            1.0,
        );
        for (name, rows, cols) in [
            ("q_proj", HEADS * D_HEAD, D),
            ("k_proj", KV * D_HEAD, D),
            ("v_proj", KV * D_HEAD, D),
            ("o_proj", D, HEADS * D_HEAD),
        ] {
            push(
                format!("{p}.self_attn.{name}.weight"),
                &[rows, cols],
                0.08,
                0.0,
            );
            if spec.qkv_bias && name != "o_proj" {
                push(format!("{p}.self_attn.{name}.bias"), &[rows], 0.1, 0.0);
            }
        }
        if spec.experts > 0 {
            // The router, and the experts stacked as llama.cpp stores them (the folder
            // gets them one by one, see `write`).
            let (e, m) = (spec.experts, format!("{p}.block_sparse_moe"));
            push(format!("{m}.gate.weight"), &[e, D], 0.3, 0.0);
            push(format!("{m}.experts.w1.weight"), &[e, D_MLP, D], 0.08, 0.0);
            push(format!("{m}.experts.w3.weight"), &[e, D_MLP, D], 0.08, 0.0);
            push(format!("{m}.experts.w2.weight"), &[e, D, D_MLP], 0.06, 0.0);
            continue;
        }
        push(format!("{p}.mlp.gate_proj.weight"), &[D_MLP, D], 0.08, 0.0);
        push(format!("{p}.mlp.up_proj.weight"), &[D_MLP, D], 0.08, 0.0);
        push(format!("{p}.mlp.down_proj.weight"), &[D, D_MLP], 0.06, 0.0);
    }
    push("model.norm.weight".into(), &[D], 0.1, 1.0);
    if !spec.tied {
        push("lm_head.weight".into(), &[v, D], 0.3, 0.0);
    }
    t
}

/// GPT-2's Hugging Face weights: `Conv1D` projections `[in, out]`.
fn gpt2_weights(spec: &Spec) -> Vec<(String, Tensor)> {
    let v = vocab().len();
    let mut g = Gauss::new(11);
    let mut t = Vec::new();
    let mut push = |name: String, shape: &[usize], scale: f64, offset: f64| {
        t.push((name, g.tensor_around(shape, scale, offset)));
    };
    push("transformer.wte.weight".into(), &[v, D], 0.5, 0.0);
    let n_ctx = spec.context_length as usize;
    push("transformer.wpe.weight".into(), &[n_ctx, D], 0.2, 0.0);
    for l in 0..LAYERS {
        let p = format!("transformer.h.{l}");
        for ln in ["ln_1", "ln_2"] {
            push(format!("{p}.{ln}.weight"), &[D], 0.1, 1.0);
            push(format!("{p}.{ln}.bias"), &[D], 0.1, 0.0);
        }
        for (name, d_in, d_out) in [
            ("attn.c_attn", D, 3 * D),
            ("attn.c_proj", D, D),
            ("mlp.c_fc", D, D_MLP),
            ("mlp.c_proj", D_MLP, D),
        ] {
            push(format!("{p}.{name}.weight"), &[d_in, d_out], 0.06, 0.0);
            push(format!("{p}.{name}.bias"), &[d_out], 0.1, 0.0);
        }
    }
    push("transformer.ln_f.weight".into(), &[D], 0.1, 1.0);
    push("transformer.ln_f.bias".into(), &[D], 0.1, 0.0);
    if !spec.tied {
        push("lm_head.weight".into(), &[v, D], 0.3, 0.0);
    }
    t
}

/// Whether a GPT-2 tensor is a `Conv1D` weight, which llama.cpp stores transposed.
fn is_conv1d(hf: &str) -> bool {
    hf.starts_with("transformer.h.") && hf.ends_with(".weight") && !hf.contains(".ln_")
}

/// llama.cpp's name for a Hugging Face name.
fn gguf_name(hf: &str) -> String {
    let renames = [
        ("transformer.wte.", "token_embd."),
        ("transformer.wpe.", "position_embd."),
        ("transformer.ln_f.", "output_norm."),
        ("transformer.h.", "blk."),
        (".ln_1.", ".attn_norm."),
        (".ln_2.", ".ffn_norm."),
        (".attn.c_attn.", ".attn_qkv."),
        (".attn.c_proj.", ".attn_output."),
        (".mlp.c_fc.", ".ffn_up."),
        (".mlp.c_proj.", ".ffn_down."),
        ("model.embed_tokens.", "token_embd."),
        ("model.norm.", "output_norm."),
        ("lm_head.", "output."),
        ("model.layers.", "blk."),
        (".input_layernorm.", ".attn_norm."),
        (".post_attention_layernorm.", ".ffn_norm."),
        (".self_attn.q_proj.", ".attn_q."),
        (".self_attn.k_proj.", ".attn_k."),
        (".self_attn.v_proj.", ".attn_v."),
        (".self_attn.o_proj.", ".attn_output."),
        (".block_sparse_moe.gate.", ".ffn_gate_inp."),
        (".block_sparse_moe.experts.w1.", ".ffn_gate_exps."),
        (".block_sparse_moe.experts.w3.", ".ffn_up_exps."),
        (".block_sparse_moe.experts.w2.", ".ffn_down_exps."),
        (".mlp.gate_proj.", ".ffn_gate."),
        (".mlp.up_proj.", ".ffn_up."),
        (".mlp.down_proj.", ".ffn_down."),
    ];
    let mut name = hf.to_owned();
    for (from, to) in renames {
        name = name.replace(from, to);
    }
    name
}

/// llama.cpp's reordering of a Llama query/key weight's rows: Hugging Face's halves
/// `[head, 2, d/2]` → interleaved pairs `[head, d/2, 2]` (`to_gguf`), or back.
fn reorder_rows(w: &Tensor, heads: usize, to_gguf: bool) -> Tensor {
    let (rows, cols) = w.dims2().unwrap();
    let half = rows / heads / 2;
    let split = if to_gguf {
        (heads, 2, half, cols)
    } else {
        (heads, half, 2, cols)
    };
    w.reshape(split)
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .reshape((rows, cols))
        .unwrap()
        .contiguous()
        .unwrap()
}

/// Writes `spec` as `folder/model.gguf` and, with the weights the GGUF holds
/// (dequantised, back in Hugging Face row order), `folder/hf/` as a Hugging Face folder.
pub fn write(folder: &Path, spec: &Spec) -> std::path::PathBuf {
    let llama = spec.arch == "llama";
    let mut qtensors: Vec<(String, QTensor)> = Vec::new();
    let mut hf = HashMap::new();
    for (name, w) in hf_weights(spec) {
        let heads = if name.contains("q_proj") { HEADS } else { KV };
        let permuted = llama && (name.contains("q_proj.") || name.contains("k_proj."));
        let conv1d = spec.arch == "gpt2" && is_conv1d(&name);
        let stored = if permuted {
            reorder_rows(&w, heads, true)
        } else if conv1d {
            w.t().unwrap().contiguous().unwrap()
        } else {
            w
        };
        let dtype = if stored.rank() == 1 {
            GgmlDType::F32
        } else {
            spec.quant
        };
        let q = QTensor::quantize(&stored, dtype).unwrap();
        // What the file holds, back in Hugging Face's order for the folder.
        let held = q.dequantize(&Device::Cpu).unwrap();
        let held = if permuted {
            reorder_rows(&held, heads, false)
        } else if conv1d {
            held.t().unwrap().contiguous().unwrap()
        } else {
            held
        };
        if name.contains(".experts.w") {
            // The folder's experts one by one: `experts.{e}.w1.weight`, ...
            let (prefix, w) = name.trim_end_matches(".weight").rsplit_once('.').unwrap();
            for e in 0..held.dim(0).unwrap() {
                hf.insert(format!("{prefix}.{e}.{w}.weight"), held.get(e).unwrap());
            }
        } else {
            hf.insert(name.clone(), held);
        }
        qtensors.push((gguf_name(&name), q));
    }
    let arch = spec.arch;
    let tokens = vocab();
    let mut types = vec![Value::I32(1); tokens.len()];
    types[BOS as usize] = Value::I32(3);
    types[EOS as usize] = Value::I32(3);
    let mut meta: Vec<(String, Value)> =
        vec![
        ("general.architecture".into(), Value::String(arch.into())),
        (format!("{arch}.block_count"), Value::U32(LAYERS as u32)),
        (format!("{arch}.context_length"), Value::U32(spec.context_length)),
        (format!("{arch}.embedding_length"), Value::U32(D as u32)),
        (format!("{arch}.feed_forward_length"), Value::U32(D_MLP as u32)),
        (format!("{arch}.attention.head_count"), Value::U32(HEADS as u32)),
        (format!("{arch}.attention.head_count_kv"), Value::U32(KV as u32)),
        (format!("{arch}.rope.freq_base"), Value::F32(10000.0)),
        (format!("{arch}.attention.layer_norm_rms_epsilon"), Value::F32(1e-5)),
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), Value::String("default".into())),
        (
            "tokenizer.ggml.tokens".into(),
            Value::Array(tokens.iter().map(|t| Value::String(t.clone())).collect()),
        ),
        ("tokenizer.ggml.token_type".into(), Value::Array(types)),
        (
            "tokenizer.ggml.merges".into(),
            Value::Array(
                ["a b", "\u{120} ab", "\u{120} t", "h e"]
                    .iter()
                    .map(|m| Value::String((*m).into()))
                    .collect(),
            ),
        ),
        ("tokenizer.ggml.bos_token_id".into(), Value::U32(BOS)),
        ("tokenizer.ggml.eos_token_id".into(), Value::U32(EOS)),
        (
            "tokenizer.chat_template".into(),
            Value::String(
                "{% for m in messages %}<|s|>{{ m['role'] }}: {{ m['content'] }}<|e|>{% endfor %}\
                 {% if add_generation_prompt %}<|s|>assistant: {% endif %}"
                    .into(),
            ),
        ),
    ];
    if arch == "gpt2" {
        // No rotary and no KV heads; LayerNorm's epsilon under its own key.
        meta.retain(|(k, _)| !k.contains(".rope.") && !k.ends_with("head_count_kv"));
        for (k, _) in meta.iter_mut() {
            if k.ends_with("layer_norm_rms_epsilon") {
                *k = format!("{arch}.attention.layer_norm_epsilon");
            }
        }
    }
    meta.retain(|(k, _)| !spec.without.contains(&k.as_str()));
    for (k, v) in &spec.metadata {
        meta.retain(|(key, _)| key != k);
        meta.push((k.clone(), v.clone()));
    }
    let path = folder.join("model.gguf");
    let mut file = std::fs::File::create(&path).unwrap();
    let meta_refs: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> =
        qtensors.iter().map(|(k, q)| (k.as_str(), q)).collect();
    gguf_file::write(&mut file, &meta_refs, &tensor_refs).unwrap();
    write_hf(&folder.join("hf"), spec, hf);
    path
}

fn write_hf(folder: &Path, spec: &Spec, tensors: HashMap<String, Tensor>) {
    std::fs::create_dir_all(folder).unwrap();
    if spec.arch == "gpt2" {
        let config = format!(
            r#"{{"model_type":"gpt2","vocab_size":{},"n_positions":{},"n_embd":{D},"n_layer":{LAYERS},
            "n_head":{HEADS},"n_inner":{D_MLP},"activation_function":"gelu_new","layer_norm_epsilon":1e-5,
            "tie_word_embeddings":{}}}"#,
            vocab().len(),
            spec.context_length,
            spec.tied
        );
        super::save(folder, &config, tensors);
        return;
    }
    let model_type = match (spec.arch, spec.experts) {
        ("qwen2", _) => "qwen2",
        (_, 0) => "llama",
        _ => "mixtral",
    };
    let moe = if spec.experts > 0 {
        format!(
            r#","num_local_experts":{},"num_experts_per_tok":2"#,
            spec.experts
        )
    } else {
        String::new()
    };
    let config = format!(
        r#"{{"model_type":"{model_type}","vocab_size":{},"hidden_size":{D},"intermediate_size":{D_MLP},
        "num_hidden_layers":{LAYERS},"num_attention_heads":{HEADS},"num_key_value_heads":{KV},"rms_norm_eps":1e-5,
        "rope_theta":10000.0,"tie_word_embeddings":{},"attention_bias":{}{moe}}}"#,
        vocab().len(),
        spec.tied,
        spec.qkv_bias && model_type == "llama"
    );
    std::fs::write(folder.join("config.json"), config).unwrap();
    candle_core::safetensors::save(&tensors, folder.join("model.safetensors")).unwrap();
}
