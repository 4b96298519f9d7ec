//! Tiny random checkpoints in Hugging Face layout, written by the tests themselves.
#![allow(dead_code)]

pub mod gguf;

use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A fresh folder under the system temp dir, unique per call (tests run in parallel).
/// The first call also removes the folders of earlier test processes that have exited
/// (the GGUF tests write tens of MB per case).
pub fn temp_folder(name: &str) -> PathBuf {
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(sweep_temp_folders);
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "auto_hook_models_{}_{n}_{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Removes `auto_hook_models_{pid}_*` folders whose process is gone (Linux: no
/// `/proc/{pid}`; elsewhere nothing is removed).
fn sweep_temp_folders() {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("auto_hook_models_"))
            .and_then(|rest| rest.split('_').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Seeded normal draws (the workspace's one generator): every run of a test sees the
/// same weights, so a tolerance that passes once passes always.
pub struct Gauss(auto_hook::rng::Rng);

impl Gauss {
    pub fn new(seed: u64) -> Self {
        Self(auto_hook::rng::Rng::new(seed))
    }

    /// `n` draws from N(0, scale²).
    pub fn values(&mut self, n: usize, scale: f64) -> Vec<f64> {
        (0..n).map(|_| scale * self.0.normal()).collect()
    }

    /// An f32 tensor of N(0, scale²) draws.
    fn tensor(&mut self, shape: &[usize], scale: f64) -> Tensor {
        self.tensor_around(shape, scale, 0.0)
    }

    /// An f32 tensor of N(offset, scale²) draws (the offset added before rounding).
    pub fn tensor_around(&mut self, shape: &[usize], scale: f64, offset: f64) -> Tensor {
        let n = shape.iter().product();
        let values: Vec<f32> = self
            .values(n, scale)
            .into_iter()
            .map(|v| (v + offset) as f32)
            .collect();
        Tensor::from_vec(values, shape, &Device::Cpu).expect("tensor")
    }
}

fn save(folder: &Path, config: &str, tensors: HashMap<String, Tensor>) {
    std::fs::write(folder.join("config.json"), config).expect("config");
    candle_core::safetensors::save(&tensors, folder.join("model.safetensors")).expect("weights");
}

/// GPT-2: d_model 16, 2 layers, 4 heads, vocab 40, n_ctx 32 (Conv1D weights `[in, out]`).
pub fn write_gpt2(folder: &Path) {
    let (d, v, n_ctx, layers) = (16, 40, 32, 2);
    let mut g = Gauss::new(2);
    let mut t = HashMap::new();
    t.insert("transformer.wte.weight".into(), g.tensor(&[v, d], 0.5));
    t.insert("transformer.wpe.weight".into(), g.tensor(&[n_ctx, d], 0.3));
    for i in 0..layers {
        let p = format!("transformer.h.{i}");
        for ln in ["ln_1", "ln_2"] {
            t.insert(
                format!("{p}.{ln}.weight"),
                (g.tensor(&[d], 0.1) + 1.0).unwrap(),
            );
            t.insert(format!("{p}.{ln}.bias"), g.tensor(&[d], 0.1));
        }
        for (name, din, dout) in [
            ("attn.c_attn", d, 3 * d),
            ("attn.c_proj", d, d),
            ("mlp.c_fc", d, 4 * d),
            ("mlp.c_proj", 4 * d, d),
        ] {
            t.insert(format!("{p}.{name}.weight"), g.tensor(&[din, dout], 0.3));
            t.insert(format!("{p}.{name}.bias"), g.tensor(&[dout], 0.1));
        }
    }
    t.insert(
        "transformer.ln_f.weight".into(),
        (g.tensor(&[d], 0.1) + 1.0).unwrap(),
    );
    t.insert("transformer.ln_f.bias".into(), g.tensor(&[d], 0.1));
    let config = format!(
        r#"{{"model_type":"gpt2","vocab_size":{v},"n_positions":{n_ctx},"n_embd":{d},"n_layer":{layers},"n_head":4,
        "activation_function":"gelu_new","layer_norm_epsilon":1e-5,"eos_token_id":0}}"#
    );
    save(folder, &config, t);
}

/// Llama: d_model 16, 2 layers, 4 heads, 2 kv heads (GQA), untied, rope theta 500000
/// under `rope_parameters`; `qwen` adds q/k/v biases and sets model_type qwen2.
pub fn write_llama(folder: &Path, qwen: bool) {
    let (d, v, layers, heads, kv, dh, dm) = (16, 40, 2, 4, 2, 4, 24);
    let mut g = Gauss::new(if qwen { 3 } else { 4 });
    let mut t = HashMap::new();
    t.insert("model.embed_tokens.weight".into(), g.tensor(&[v, d], 0.5));
    for i in 0..layers {
        let p = format!("model.layers.{i}");
        for ln in ["input_layernorm", "post_attention_layernorm"] {
            t.insert(
                format!("{p}.{ln}.weight"),
                (g.tensor(&[d], 0.1) + 1.0).unwrap(),
            );
        }
        for (name, din, dout) in [
            ("q_proj", d, heads * dh),
            ("k_proj", d, kv * dh),
            ("v_proj", d, kv * dh),
            ("o_proj", heads * dh, d),
        ] {
            t.insert(
                format!("{p}.self_attn.{name}.weight"),
                g.tensor(&[dout, din], 0.3),
            );
            if qwen && name != "o_proj" {
                t.insert(format!("{p}.self_attn.{name}.bias"), g.tensor(&[dout], 0.1));
            }
        }
        for (name, din, dout) in [
            ("gate_proj", d, dm),
            ("up_proj", d, dm),
            ("down_proj", dm, d),
        ] {
            t.insert(
                format!("{p}.mlp.{name}.weight"),
                g.tensor(&[dout, din], 0.3),
            );
        }
    }
    t.insert(
        "model.norm.weight".into(),
        (g.tensor(&[d], 0.1) + 1.0).unwrap(),
    );
    t.insert("lm_head.weight".into(), g.tensor(&[v, d], 0.5));
    let model_type = if qwen { "qwen2" } else { "llama" };
    let config = format!(
        r#"{{"model_type":"{model_type}","vocab_size":{v},"hidden_size":{d},"intermediate_size":{dm},
        "num_hidden_layers":{layers},"num_attention_heads":{heads},"num_key_value_heads":{kv},"rms_norm_eps":1e-6,
        "rope_parameters":{{"rope_type":"default","rope_theta":500000.0}},"tie_word_embeddings":false,"eos_token_id":2}}"#
    );
    save(folder, &config, t);
}

/// Token ids `[batch, len]` from a fixed pattern.
pub fn tokens(batch: usize, len: usize) -> Tensor {
    let ids: Vec<u32> = (0..batch * len)
        .map(|i| ((i * 7 + 3) % 40) as u32)
        .collect();
    Tensor::from_vec(ids, (batch, len), &Device::Cpu).expect("tokens")
}

/// A committed parity fixture: `tests/fixtures/<name>`.
pub fn fixture_folder(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The fixture's `reference.safetensors` (PyTorch activations by module path).
pub fn reference(folder: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(folder.join("reference.safetensors"), &Device::Cpu)
        .expect("reference.safetensors")
}

/// The reference's `input_ids`, as the ports take them.
pub fn reference_ids(reference: &HashMap<String, Tensor>) -> Tensor {
    reference["input_ids"]
        .to_dtype(DType::U32)
        .expect("input_ids")
}

pub fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    auto_hook::max_abs_diff(a, b).unwrap()
}

/// Asserts that the gradient of `var` in `grads` exists and is not all zeros.
pub fn assert_nonzero_grad(grads: &candle_core::backprop::GradStore, var: &Tensor, name: &str) {
    let g = grads
        .get(var)
        .unwrap_or_else(|| panic!("no gradient for {name}"));
    assert!(max_abs(g) > 0.0, "zero gradient for {name}");
}

/// The largest `|t|`: the scale a tolerance is taken relative to.
pub fn max_abs(t: &Tensor) -> f32 {
    max_diff(t, &t.zeros_like().unwrap())
}

/// `max_diff(a, b)` over the largest `|b|`: a difference relative to the reference's scale.
pub fn rel_diff(a: &Tensor, b: &Tensor) -> f32 {
    max_diff(a, b) / max_abs(b)
}

/// Hooks that zero expert `expert`'s routing weight in every MoE block of a model with
/// `n_experts` experts, so that top-k never picks it.
pub fn ablate_expert(expert: usize, n_experts: usize) -> auto_hook::Hooks<'static> {
    auto_hook::Hooks::new().add("blocks.*.mlp.hook_expert_weights", move |w, _| {
        let mut keep = vec![1f32; n_experts];
        keep[expert] = 0.0;
        w.broadcast_mul(&Tensor::new(keep.as_slice(), w.device())?)
    })
}
