//! llama.cpp tensor names → Hugging Face names, the query/key row order, and reading
//! every tensor dequantised or quantized.

use super::Gguf;
use crate::config::ArchConfig;
use crate::error::{Error, Result};
use candle_core::quantized::{GgmlDType, QStorage, QTensor};
use candle_core::{DType, Device, Tensor};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

/// Quantized projection weights by Hugging Face name (`model.layers.0.self_attn.q_proj.weight`).
#[derive(Default)]
pub(crate) struct Quantized(pub(crate) HashMap<String, Arc<QTensor>>);

/// The Hugging Face name of a llama.cpp tensor of `arch`, or `None`.
fn hf_name(arch: &str, name: &str) -> Option<String> {
    if arch == "gpt2" {
        gpt2_name(name)
    } else {
        llama_name(name, arch == "gemma2")
    }
}

/// The Hugging Face name of a llama.cpp GPT-2 tensor (`GPT2LMHeadModel`'s names).
fn gpt2_name(name: &str) -> Option<String> {
    let top = match name {
        "token_embd.weight" => Some("transformer.wte.weight"),
        "position_embd.weight" => Some("transformer.wpe.weight"),
        "output_norm.weight" => Some("transformer.ln_f.weight"),
        "output_norm.bias" => Some("transformer.ln_f.bias"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(top) = top {
        return Some(top.to_owned());
    }
    let (layer, part, kind) = block_parts(name)?;
    let hf = match part {
        "attn_norm" => "ln_1",
        "attn_qkv" => "attn.c_attn",
        "attn_output" => "attn.c_proj",
        "ffn_norm" => "ln_2",
        "ffn_up" => "mlp.c_fc",
        "ffn_down" => "mlp.c_proj",
        _ => return None,
    };
    Some(format!("transformer.h.{layer}.{hf}.{kind}"))
}

/// `blk.{layer}.{part}.{weight|bias}` → its three parts.
fn block_parts(name: &str) -> Option<(usize, &str, &str)> {
    let rest = name.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (part, kind) = rest.rsplit_once('.')?;
    (kind == "weight" || kind == "bias").then_some((layer, part, kind))
}

/// The Hugging Face name of a llama.cpp tensor of the Llama family, or `None`. With
/// `gemma2`, llama.cpp's Gemma 2 norms: `ffn_norm` is the norm before the MLP
/// (`pre_feedforward_layernorm`), and `post_attention_norm` / `post_ffw_norm` follow the
/// sublayers.
fn llama_name(name: &str, gemma2: bool) -> Option<String> {
    let top = match name {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(top) = top {
        return Some(top.to_owned());
    }
    let (layer, part, kind) = block_parts(name)?;
    let hf = match part {
        "attn_norm" => "input_layernorm",
        "ffn_norm" if gemma2 => "pre_feedforward_layernorm",
        "post_attention_norm" if gemma2 => "post_attention_layernorm",
        "post_ffw_norm" if gemma2 => "post_feedforward_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        // Mixtral: the router, and the experts stacked `[expert, rows, cols]` (split
        // per expert by `read_all`).
        "ffn_gate_inp" => "block_sparse_moe.gate",
        "ffn_gate_exps" => "block_sparse_moe.experts.w1",
        "ffn_up_exps" => "block_sparse_moe.experts.w3",
        "ffn_down_exps" => "block_sparse_moe.experts.w2",
        _ => return expert_name(layer, part, kind),
    };
    Some(format!("model.layers.{layer}.{hf}.{kind}"))
}

/// An older Mixtral GGUF's per-expert tensors (`blk.N.ffn_gate.E.weight`, ...).
fn expert_name(layer: usize, part: &str, kind: &str) -> Option<String> {
    let (proj, expert) = part.rsplit_once('.')?;
    let expert: usize = expert.parse().ok()?;
    let w = match proj {
        "ffn_gate" => "w1",
        "ffn_up" => "w3",
        "ffn_down" => "w2",
        _ => return None,
    };
    Some(format!(
        "model.layers.{layer}.block_sparse_moe.experts.{expert}.{w}.{kind}"
    ))
}

/// The projections a quantized model keeps quantized (everything else is dequantised:
/// norms, and the token embedding, which is looked up rather than multiplied).
fn is_projection(hf: &str) -> bool {
    hf.ends_with("_proj.weight") || hf == "lm_head.weight" || is_conv1d(hf)
}

/// GPT-2's projections, which Hugging Face stores as `Conv1D` (`[in, out]`) and llama.cpp
/// as `[out, in]`.
fn is_conv1d(hf: &str) -> bool {
    [".c_attn.weight", ".c_proj.weight", ".c_fc.weight"]
        .iter()
        .any(|s| hf.ends_with(s))
}

/// `(…experts, w1|w2|w3)` for the name `read_all` gives Mixtral's stacked experts.
fn stacked_experts(hf: &str) -> Option<(&str, &str)> {
    let rest = hf.strip_suffix(".weight")?;
    let (prefix, w) = rest.rsplit_once('.')?;
    (prefix.ends_with("block_sparse_moe.experts") && matches!(w, "w1" | "w2" | "w3"))
        .then_some((prefix, w))
}

/// The token embedding's Hugging Face name: its quantized form serves a tied unembedding.
fn is_embedding(hf: &str) -> bool {
    hf == "model.embed_tokens.weight" || hf == "transformer.wte.weight"
}

/// llama.cpp stores Llama's query and key rows of each head as interleaved pairs
/// (`d0, d_half, d1, d_half+1, ...`); this is the row order back to Hugging Face's halves
/// (transformers' `reverse_permute_weights`), for `heads` heads of `rows / heads` rows.
pub(crate) fn unpermute_order(rows: usize, heads: usize) -> Vec<usize> {
    let d_head = rows / heads;
    let half = d_head / 2;
    let mut order = Vec::with_capacity(rows);
    for h in 0..heads {
        for j in 0..2 {
            for i in 0..half {
                order.push(h * d_head + 2 * i + j);
            }
        }
    }
    order
}

/// The rows (first dimension) of `q` listed in `order`, in that order: a permutation
/// (llama.cpp's query/key order) or a part (GPT-2's fused `attn_qkv`). Quantized blocks
/// run along a row, so whole rows move without dequantising.
pub(crate) fn take_rows(q: &QTensor, order: &[usize]) -> Result<QTensor> {
    let mut dims = q.shape().dims().to_vec();
    let rows = dims.first().copied().unwrap_or(0);
    let data = q.data()?;
    if rows == 0 || order.iter().any(|&r| r >= rows) || data.len() % rows != 0 {
        return Err(Error::Gguf(format!(
            "cannot take rows {}..={} of a {:?} tensor of shape {dims:?}",
            order.iter().min().unwrap_or(&0),
            order.iter().max().unwrap_or(&0),
            q.dtype()
        )));
    }
    let row_bytes = data.len() / rows;
    let mut out = Vec::with_capacity(order.len() * row_bytes);
    for &r in order {
        out.extend_from_slice(&data[r * row_bytes..(r + 1) * row_bytes]);
    }
    dims[0] = order.len();
    let storage = QStorage::from_data(Cow::Owned(out), &q.device(), q.dtype())?;
    Ok(QTensor::new(storage, dims)?)
}

fn check_quant_type(name: &str, dtype: GgmlDType) -> Result<()> {
    // Q8_1 and Q8_K are llama.cpp's internal activation formats: candle reads them, but
    // no converter writes weights in them and candle cannot dequantise Q8_1.
    if matches!(dtype, GgmlDType::Q8_1 | GgmlDType::Q8K) {
        return Err(Error::Unsupported(format!(
            "tensor `{name}` is stored as {dtype:?}, which is not a weight format \
             (supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K)"
        )));
    }
    Ok(())
}

/// Reads the tensor `name` of `file` as stored (a weight format: see `check_quant_type`).
pub(crate) fn read_tensor(file: &mut Gguf, name: &str, device: &Device) -> Result<QTensor> {
    let info = &file.content.tensor_infos[name];
    check_quant_type(name, info.ggml_dtype)?;
    info.read(&mut file.reader, file.content.tensor_data_offset, device)
        .map_err(|e| Error::Gguf(format!("tensor `{name}` of {}: {e}", file.path.display())))
}

/// Reads every tensor under its Hugging Face name: projections into `quantized` when
/// given, everything else (and every tensor when `quantized` is `None`) dequantised to
/// `dtype`. Query and key rows are put back in Hugging Face's order for Llama.
pub(crate) fn read_all(
    file: &mut Gguf,
    cfg: &ArchConfig,
    mut quantized: Option<&mut Quantized>,
    dtype: DType,
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    // llama.cpp's `llama` architecture (Llama and Mixtral) interleaves the q/k rows.
    let permuted = matches!(cfg.model_type.as_str(), "llama" | "mixtral");
    let gemma2 = cfg.model_type == "gemma2";
    let mut names: Vec<String> = file.content.tensor_infos.keys().cloned().collect();
    names.sort();
    let mut dense = HashMap::new();
    for name in names {
        let Some(hf) = hf_name(&cfg.model_type, &name) else {
            return Err(Error::Unsupported(format!(
                "{} holds tensor `{name}`, which the {} port has no place for{}",
                file.path.display(),
                cfg.model_type,
                if name == "rope_freqs.weight" {
                    " (rope frequency factors: Llama 3 rope scaling is not implemented)"
                } else {
                    ""
                }
            )));
        };
        let mut q = read_tensor(file, &name, device)?;
        if permuted && (hf.contains("q_proj.") || hf.contains("k_proj.")) {
            let heads = if hf.contains("q_proj.") {
                cfg.n_heads
            } else {
                cfg.n_kv_heads
            };
            q = take_rows(&q, &unpermute_order(q.shape().dims()[0], heads))?;
        }
        let keep_quantized = quantized.is_some() && is_projection(&hf);
        let q = Arc::new(q);
        if let Some(store) = quantized.as_deref_mut() {
            // The embedding's quantized form serves a tied unembedding.
            if keep_quantized || is_embedding(&hf) {
                store.0.insert(hf.clone(), q.clone());
            }
        }
        if !keep_quantized {
            let t: Tensor = q.dequantize(device)?;
            // llama.cpp stores Gemma's norm weights as 1 + w; transformers subtracts the 1
            // again (its Gemma2TensorProcessor), and so do we (in f32).
            let t = if gemma2 && hf.ends_with("norm.weight") {
                (t - 1.0)?
            } else {
                t
            };
            let t = t.to_dtype(dtype)?;
            if let Some((prefix, w)) = stacked_experts(&hf) {
                // Mixtral's experts stacked `[expert, rows, cols]`: one tensor each (dense:
                // the port's experts are dense in both modes).
                for e in 0..t.dim(0)? {
                    dense.insert(format!("{prefix}.{e}.{w}.weight"), t.get(e)?);
                }
                continue;
            }
            // Dense GPT-2 projections go back to Hugging Face's Conv1D layout.
            let t = if is_conv1d(&hf) {
                t.t()?.contiguous()?
            } else {
                t
            };
            dense.insert(hf, t);
        }
    }
    Ok(dense)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama_cpp_names_map_to_hugging_face_names() {
        assert_eq!(
            hf_name("llama", "blk.12.attn_q.weight").as_deref(),
            Some("model.layers.12.self_attn.q_proj.weight")
        );
        assert_eq!(
            hf_name("qwen2", "blk.0.attn_k.bias").as_deref(),
            Some("model.layers.0.self_attn.k_proj.bias")
        );
        assert_eq!(
            hf_name("llama", "output.weight").as_deref(),
            Some("lm_head.weight")
        );
        assert_eq!(hf_name("llama", "blk.0.attn_q.scale"), None);
        assert_eq!(hf_name("llama", "rope_freqs.weight"), None);
        assert_eq!(
            hf_name("gpt2", "blk.3.attn_qkv.bias").as_deref(),
            Some("transformer.h.3.attn.c_attn.bias")
        );
        assert_eq!(
            hf_name("gpt2", "position_embd.weight").as_deref(),
            Some("transformer.wpe.weight")
        );
        assert_eq!(hf_name("gpt2", "blk.0.attn_q.weight"), None);
        assert_eq!(
            hf_name("gemma2", "blk.3.ffn_norm.weight").as_deref(),
            Some("model.layers.3.pre_feedforward_layernorm.weight")
        );
        assert_eq!(hf_name("llama", "blk.3.post_ffw_norm.weight"), None);
    }

    #[test]
    fn unpermuting_undoes_llama_cpp_interleaving() {
        // One head of 4 rows: llama.cpp's rows are (h0, h2, h1, h3) of the halves h0 h1 | h2 h3.
        assert_eq!(unpermute_order(4, 1), [0, 2, 1, 3]);
        assert_eq!(unpermute_order(8, 2), [0, 2, 1, 3, 4, 6, 5, 7]);
        assert_eq!(unpermute_order(6, 1), [0, 2, 4, 1, 3, 5]);
    }
}
