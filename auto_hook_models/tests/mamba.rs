//! Mamba against Hugging Face transformers' reference (slow) path on a tiny checkpoint
//! (`scripts/make_fixtures.py mamba`, committed): parity, MambaLens hook points, the SSM
//! state hook, cached generation, loading errors.

mod common;

use auto_hook::prelude::*;
use auto_hook_models::{
    at_position, compare_with_reference, load, load_mamba, mamba_from_var_builder, Eos,
    GenerateOptions, HookedMamba, MambaCache, MambaConfig,
};
use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::VarBuilder;
use common::{max_diff, reference_ids as ids};
use std::collections::HashMap;
use std::path::PathBuf;

fn folder() -> PathBuf {
    common::fixture_folder("mamba")
}

fn fixture() -> (HookedMamba, HashMap<String, Tensor>) {
    let model = load_mamba(folder(), DType::F32, &Device::Cpu).unwrap();
    (model, common::reference(&folder()))
}

#[test]
fn mamba_matches_hugging_face_slow_path_within_1e_4() {
    let (model, reference) = fixture();
    let comparison = compare_with_reference(&model, &reference).unwrap();
    for (key, hook, diff) in &comparison.diffs {
        assert!(*diff <= 1e-4, "{key} (hook {hook}) differs by {diff}");
    }
    let keys: Vec<&str> = comparison.diffs.iter().map(|d| d.0.as_str()).collect();
    for key in [
        "logits",
        "hidden_states.0",
        "hidden_states.1",
        "hidden_states.2",
    ] {
        assert!(keys.contains(&key), "{key}: {keys:?}");
    }
    for i in 0..2 {
        for sub in [
            "",
            ".norm",
            ".mixer",
            ".mixer.in_proj",
            ".mixer.x_proj",
            ".mixer.out_proj",
        ] {
            let key = format!("backbone.layers.{i}{sub}");
            assert!(keys.contains(&key.as_str()), "{key} not compared");
        }
    }
}

const POINTS: [(&str, &[usize]); 18] = [
    ("hook_resid_pre", &[2, 7, 32]),
    ("hook_normalized_input", &[2, 7, 32]),
    ("hook_in_proj", &[2, 7, 64]),
    ("hook_skip", &[2, 7, 64]),
    ("hook_conv", &[2, 7, 64]),
    ("hook_ssm_input", &[2, 7, 64]),
    ("hook_delta_1", &[2, 7, 4]),
    ("hook_B", &[2, 7, 8]),
    ("hook_C", &[2, 7, 8]),
    ("hook_delta", &[2, 7, 64]),
    ("hook_A", &[64, 8]),
    ("hook_y", &[2, 7, 64]),
    ("hook_ssm_output", &[2, 7, 64]),
    ("hook_after_skip", &[2, 7, 64]),
    ("hook_out_proj", &[2, 7, 32]),
    ("hook_resid_post", &[2, 7, 32]),
    ("in_proj.hook_point", &[2, 7, 128]),
    ("x_proj.hook_point", &[2, 7, 20]),
];

type Seen = HashMap<String, (usize, Vec<usize>)>;

fn record(seen: &mut Seen) -> Hooks<'_> {
    Hooks::new().add("**", |x, h| {
        let entry = seen.entry(h.name().to_owned()).or_default();
        entry.0 += 1;
        entry.1 = x.dims().to_vec();
    })
}

#[test]
fn mambalens_hook_points_fire_once_with_documented_shapes_and_hook_h_once_per_position() {
    let (model, reference) = fixture();
    let mut seen = Seen::new();
    model
        .run_with_hooks(record(&mut seen), |m| m.forward(&ids(&reference), None))
        .unwrap();
    for i in 0..2 {
        for (point, shape) in POINTS {
            let name = format!("blocks.{i}.{point}");
            assert_eq!(seen.get(&name), Some(&(1, shape.to_vec())), "{name}");
        }
        assert_eq!(seen[&format!("blocks.{i}.hook_h")], (7, vec![2, 64, 8]));
    }
    assert_eq!(seen["hook_embed"], (1, vec![2, 7, 32]));
    assert_eq!(seen["ln_final.hook_normalized"], (1, vec![2, 7, 32]));
    assert_eq!(seen["unembed.hook_point"], (1, vec![2, 7, 64]));
    let names = model.hook_point_names();
    assert_eq!(names.len(), seen.len(), "every point fired: {names:?}");
}

#[test]
fn identity_hooks_on_every_point_are_bit_identical() {
    let (model, reference) = fixture();
    let ids = ids(&reference);
    let plain = model.forward(&ids, None).unwrap();
    let hooked = model
        .run_with_hooks(Hooks::new().add("**", |x, _| x.clone()), |m| {
            m.forward(&ids, None)
        })
        .unwrap();
    let bits = |t: &Tensor| -> Vec<u32> {
        let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        v.iter().map(|x| x.to_bits()).collect()
    };
    assert_eq!(bits(&plain), bits(&hooked));
}

#[test]
fn editing_the_ssm_state_at_one_position_changes_only_later_positions() {
    let (model, reference) = fixture();
    let ids = ids(&reference);
    let clean = model.forward(&ids, None).unwrap();
    let hooks = Hooks::new().add("blocks.0.hook_h", at_position(3, |h| h.zeros_like()));
    let edited = model
        .run_with_hooks(hooks, |m| m.forward(&ids, None))
        .unwrap();
    assert_eq!(
        max_diff(
            &clean.i((.., 0..3)).unwrap(),
            &edited.i((.., 0..3)).unwrap()
        ),
        0.0
    );
    for pos in 3..7 {
        let d = max_diff(&clean.i((.., pos)).unwrap(), &edited.i((.., pos)).unwrap());
        assert!(d > 1e-4, "position {pos} did not see the edit ({d})");
    }
}

#[test]
fn every_position_state_is_readable_and_the_last_is_the_cached_state() {
    let (model, reference) = fixture();
    let ids = ids(&reference);
    let mut states = Vec::new();
    let hooks = Hooks::new().add("blocks.1.hook_h", |h, _| states.push(h.clone()));
    let mut cache = MambaCache::new(2);
    model
        .run_with_hooks(hooks, |m| m.forward_with_cache(&ids, None, &mut cache))
        .unwrap();
    assert_eq!(states.len(), 7);
    assert!(max_diff(&states[0], &states[6]) > 1e-4);
    let cached = cache.slot(1).unwrap().ssm_state().unwrap();
    assert_eq!(max_diff(&states[6], cached), 0.0);
    assert_eq!(cache.len(), 7);
}

#[test]
fn cached_steps_equal_the_full_forward_and_hooks_fire_each_step() {
    let (model, reference) = fixture();
    let ids = ids(&reference);
    let full = model.forward(&ids, None).unwrap();
    let mut cache = MambaCache::new(2);
    let mut parts = vec![model
        .forward_with_cache(&ids.narrow(1, 0, 3).unwrap(), None, &mut cache)
        .unwrap()];
    for pos in 3..7 {
        let mut seen = Seen::new();
        let step = model
            .run_with_hooks(record(&mut seen), |m| {
                m.forward_with_cache(&ids.narrow(1, pos, 1).unwrap(), None, &mut cache)
            })
            .unwrap();
        assert_eq!(seen["blocks.1.hook_conv"], (1, vec![2, 1, 64]));
        assert_eq!(seen["blocks.0.hook_h"], (1, vec![2, 64, 8]));
        parts.push(step);
    }
    let stepped = Tensor::cat(&parts, 1).unwrap();
    let diff = max_diff(&full, &stepped);
    assert!(
        diff < 1e-4,
        "cached steps differ from the full forward by {diff}"
    );
}

#[test]
fn greedy_generation_follows_the_full_forward_argmax() {
    let (model, reference) = fixture();
    let prompt = ids(&reference).narrow(1, 0, 4).unwrap();
    let opts = GenerateOptions {
        max_new_tokens: 5,
        eos: Eos::Never,
        ..GenerateOptions::default()
    };
    let mut steps = 0;
    let hooks = Hooks::new().add("blocks.0.hook_A", |_, _| steps += 1);
    let out = model
        .run_with_hooks(hooks, |m| m.generate(&prompt, None, &opts))
        .unwrap();
    assert_eq!(out.dims(), [2, 9]);
    assert_eq!(steps, 5, "hooks fire at every step");
    for len in 4..9 {
        let logits = model
            .forward(&out.narrow(1, 0, len).unwrap(), None)
            .unwrap();
        let next = logits.i((.., len - 1)).unwrap().argmax(1).unwrap();
        let got = out.i((.., len)).unwrap();
        assert_eq!(
            next.to_vec1::<u32>().unwrap(),
            got.to_vec1::<u32>().unwrap()
        );
    }
}

#[test]
fn stop_at_ends_the_forward_after_block_0() {
    let (model, reference) = fixture();
    let cache = model
        .run_with_cache_stop_at("blocks.0.**", |m| m.forward(&ids(&reference), None))
        .unwrap();
    assert!(cache.contains("blocks.0.hook_resid_post"));
    assert!(cache.names().all(|n| !n.starts_with("blocks.1")));
}

#[test]
fn tied_embeddings_load_without_lm_head_and_unembed_with_the_embeddings() {
    let mut tensors =
        candle_core::safetensors::load(folder().join("model.safetensors"), &Device::Cpu).unwrap();
    tensors.remove("lm_head.weight");
    let text = std::fs::read_to_string(folder().join("config.json")).unwrap();
    let mut cfg = MambaConfig::from_json(&text).unwrap();
    let untied = mamba_from_var_builder(
        cfg.clone(),
        VarBuilder::from_tensors(tensors.clone(), DType::F32, &Device::Cpu),
    );
    assert!(untied.unwrap_err().to_string().contains("lm_head.weight"));
    cfg.tie_embeddings = true;
    let embed = tensors["backbone.embeddings.weight"].clone();
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
    let model = mamba_from_var_builder(cfg, vb).unwrap();
    let (_, reference) = fixture();
    let (logits, cache) = model
        .run_with_cache("ln_final.hook_point", |m| m.forward(&ids(&reference), None))
        .unwrap();
    let normed = cache.get("ln_final.hook_point").unwrap();
    let expected = normed.broadcast_matmul(&embed.t().unwrap()).unwrap();
    assert!(max_diff(&logits, &expected) < 1e-5);
}

#[test]
fn bad_mamba_configs_and_checkpoints_are_refused_with_the_problem_named() {
    let base = r#""model_type":"mamba","vocab_size":10,"hidden_size":8,"num_hidden_layers":1"#;
    let act = MambaConfig::from_json(&format!("{{{base},\"hidden_act\":\"gelu\"}}"));
    assert!(act.unwrap_err().to_string().contains("gelu"));
    let rank = MambaConfig::from_json(&format!("{{{base},\"time_step_rank\":\"big\"}}"));
    assert!(rank.unwrap_err().to_string().contains("time_step_rank"));
    let zero = MambaConfig::from_json(&format!("{{{base},\"state_size\":0}}"));
    assert!(zero.unwrap_err().to_string().contains("state_size"));
    let err = load(folder(), DType::F32, &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("load_mamba"), "{err}");
    let text = std::fs::read_to_string(folder().join("config.json")).unwrap();
    let cfg = MambaConfig::from_json(&text).unwrap();
    let saved =
        candle_core::safetensors::load(folder().join("model.safetensors"), &Device::Cpu).unwrap();
    let mut missing = saved.clone();
    missing.remove("backbone.layers.1.mixer.A_log");
    let vb = VarBuilder::from_tensors(missing, DType::F32, &Device::Cpu);
    let err = mamba_from_var_builder(cfg.clone(), vb)
        .unwrap_err()
        .to_string();
    assert!(err.contains("A_log"), "{err}");
    let mut wrong = saved;
    let conv = "backbone.layers.0.mixer.conv1d.weight";
    wrong.insert(
        conv.into(),
        Tensor::zeros((64, 1, 3), DType::F32, &Device::Cpu).unwrap(),
    );
    let vb = VarBuilder::from_tensors(wrong, DType::F32, &Device::Cpu);
    let err = mamba_from_var_builder(cfg, vb).unwrap_err().to_string();
    assert!(
        err.contains("conv1d.weight") && err.contains("shape"),
        "{err}"
    );
}

#[test]
fn bf16_mamba_runs_and_stays_close_to_f32() {
    let (model, reference) = fixture();
    let half = load_mamba(folder(), DType::BF16, &Device::Cpu).unwrap();
    let ids = ids(&reference);
    let full = model.forward(&ids, None).unwrap();
    let logits = half.forward(&ids, None).unwrap();
    assert_eq!(logits.dtype(), DType::BF16);
    let diff = max_diff(&full, &logits.to_dtype(DType::F32).unwrap());
    assert!(diff < 0.1, "bf16 logits differ from f32 by {diff}");
}

#[test]
fn gradients_reach_every_mamba_weight_kind() {
    let text = std::fs::read_to_string(folder().join("config.json")).unwrap();
    let cfg = MambaConfig::from_json(&text).unwrap();
    let varmap = candle_nn::VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let model = mamba_from_var_builder(cfg, vb).unwrap();
    let (_, reference) = fixture();
    let logits = model.forward(&ids(&reference), None).unwrap();
    let grads = logits
        .sqr()
        .unwrap()
        .mean_all()
        .unwrap()
        .backward()
        .unwrap();
    let vars = varmap.data().lock().unwrap();
    let p = "backbone.layers.0.mixer";
    for name in [
        "A_log",
        "D",
        "conv1d.weight",
        "conv1d.bias",
        "dt_proj.bias",
        "in_proj.weight",
    ] {
        let name = format!("{p}.{name}");
        common::assert_nonzero_grad(&grads, vars[&name].as_tensor(), &name);
    }
}

#[test]
fn left_padding_with_a_mask_leaves_the_real_tokens_unchanged_also_in_generation() {
    let (model, reference) = fixture();
    let ids = ids(&reference);
    let short = ids.i((1..2, 2..)).unwrap();
    let alone = model.forward(&short, None).unwrap();
    let padded_row = Tensor::cat(
        &[
            &Tensor::zeros((1, 2), DType::U32, &Device::Cpu).unwrap(),
            &short,
        ],
        1,
    )
    .unwrap();
    let batch = Tensor::cat(&[&ids.i(0..1).unwrap(), &padded_row], 0).unwrap();
    let mask = Tensor::new(
        &[[1u32, 1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1, 1]],
        &Device::Cpu,
    )
    .unwrap();
    let padded = model.forward(&batch, Some(&mask)).unwrap();
    let diff = max_diff(&padded.i((1..2, 2..)).unwrap(), &alone);
    assert!(diff < 1e-5, "padding changed the real tokens by {diff}");
    let unmasked = model.forward(&batch, None).unwrap();
    assert!(max_diff(&unmasked.i((1..2, 2..)).unwrap(), &alone) > 1e-4);
    let opts = GenerateOptions {
        max_new_tokens: 3,
        eos: Eos::Never,
        ..GenerateOptions::default()
    };
    let together = model.generate(&batch, Some(&mask), &opts).unwrap();
    let single = model.generate(&short, None, &opts).unwrap();
    assert_eq!(
        together.i((1, 7..)).unwrap().to_vec1::<u32>().unwrap(),
        single.i((0, 5..)).unwrap().to_vec1::<u32>().unwrap()
    );
    let bad = Tensor::ones((2, 5), DType::U32, &Device::Cpu).unwrap();
    let err = model.forward(&batch, Some(&bad)).unwrap_err().to_string();
    assert!(err.contains("attention_mask has shape [2, 5]"), "{err}");
}

#[test]
fn mamba_names_are_compile_checked() {
    const H: &str = hook_name!(HookedMamba, "blocks.1.hook_h");
    const A: &str = hook_name!(HookedMamba, "blocks.0.hook_A");
    let (model, _) = fixture();
    let names = model.hook_point_names();
    assert!(names.iter().any(|n| n == H) && names.iter().any(|n| n == A));
}

#[test]
fn left_padded_batch_matches_hugging_face_within_1e_4() {
    let (model, _) = fixture();
    let reference =
        candle_core::safetensors::load(folder().join("reference_padded.safetensors"), &Device::Cpu)
            .unwrap();
    assert!(reference.contains_key("attention_mask"));
    let comparison = compare_with_reference(&model, &reference).unwrap();
    for (key, hook, diff) in &comparison.diffs {
        assert!(*diff <= 1e-4, "{key} (hook {hook}) differs by {diff}");
    }
    assert!(comparison.diffs.len() >= 19, "{:?}", comparison.diffs);
}

#[test]
fn bad_input_ids_are_the_same_typed_errors_as_for_the_transformer_ports() {
    let (model, _) = fixture();
    let vocab = model.config().vocab_size;
    let empty = Tensor::zeros((1, 0), DType::U32, &Device::Cpu).unwrap();
    let err = model.forward(&empty, None).unwrap_err();
    assert!(
        matches!(
            auto_hook::find_error::<auto_hook_models::Error>(&err),
            Some(auto_hook_models::Error::EmptyInput { .. })
        ),
        "{err}"
    );
    let err = model
        .generate(&empty, None, &GenerateOptions::default())
        .unwrap_err();
    assert!(
        matches!(auto_hook::find_error::<auto_hook_models::Error>(&err), Some(auto_hook_models::Error::EmptyInput { what }) if what.contains("prompt")),
        "{err}"
    );
    let bad = Tensor::new(&[[0u32, vocab as u32]], &Device::Cpu).unwrap();
    let err = model.forward(&bad, None).unwrap_err();
    assert!(
        matches!(
            auto_hook::find_error::<auto_hook_models::Error>(&err),
            Some(auto_hook_models::Error::TokenOutOfVocabulary {
                batch: 0,
                position: 1,
                ..
            })
        ),
        "{err}"
    );
}

/// The fixture's weights as llama.cpp's converter writes a Mamba GGUF: `A = -exp(A_log)`,
/// the convolution squeezed to `[d_inner, d_conv]`, matrices in `quant` where their rows
/// hold whole blocks of 32 (F32 otherwise, as llama.cpp falls back).
fn write_mamba_gguf(path: &std::path::Path, quant: candle_core::quantized::GgmlDType) {
    use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
    let hf =
        candle_core::safetensors::load(folder().join("model.safetensors"), &Device::Cpu).unwrap();
    let rename = |hf: &str| -> String {
        let renames = [
            ("backbone.embeddings.", "token_embd."),
            ("backbone.norm_f.", "output_norm."),
            ("lm_head.", "output."),
            ("backbone.layers.", "blk."),
            (".norm.", ".attn_norm."),
            (".mixer.in_proj.", ".ssm_in."),
            (".mixer.conv1d.", ".ssm_conv1d."),
            (".mixer.x_proj.", ".ssm_x."),
            (".mixer.dt_proj.", ".ssm_dt."),
            (".mixer.out_proj.", ".ssm_out."),
            (".mixer.A_log", ".ssm_a"),
            (".mixer.D", ".ssm_d"),
        ];
        renames
            .iter()
            .fold(hf.to_owned(), |n, (from, to)| n.replace(from, to))
    };
    let mut tensors = Vec::new();
    for (name, t) in &hf {
        let t = if name.ends_with("A_log") {
            t.exp().unwrap().neg().unwrap()
        } else if name.ends_with("conv1d.weight") {
            t.squeeze(1).unwrap()
        } else {
            t.clone()
        };
        let dtype = if t.rank() == 2 && t.dim(1).unwrap() % 32 == 0 && !name.ends_with("A_log") {
            quant
        } else {
            GgmlDType::F32
        };
        tensors.push((rename(name), QTensor::quantize(&t, dtype).unwrap()));
    }
    let u = |v: usize| gguf_file::Value::U32(v as u32);
    let meta = [
        (
            "general.architecture",
            gguf_file::Value::String("mamba".into()),
        ),
        ("mamba.context_length", u(64)),
        ("mamba.embedding_length", u(32)),
        ("mamba.block_count", u(2)),
        ("mamba.ssm.inner_size", u(64)),
        ("mamba.ssm.state_size", u(8)),
        ("mamba.ssm.time_step_rank", u(4)),
        ("mamba.ssm.conv_kernel", u(4)),
        (
            "mamba.attention.layer_norm_rms_epsilon",
            gguf_file::Value::F32(1e-5),
        ),
    ];
    let meta: Vec<(&str, &gguf_file::Value)> = meta.iter().map(|(k, v)| (*k, v)).collect();
    let tensors: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, q)| (k.as_str(), q)).collect();
    gguf_file::write(&mut std::fs::File::create(path).unwrap(), &meta, &tensors).unwrap();
}

#[test]
fn a_mamba_gguf_loads_like_its_hugging_face_folder() {
    use candle_core::quantized::GgmlDType;
    let (from_folder, _) = fixture();
    let ids = Tensor::new(&[[1u32, 7, 3, 60, 12, 5]], &Device::Cpu).unwrap();
    let want = from_folder.forward(&ids, None).unwrap();
    let scale = common::max_abs(&want);
    let dir = std::env::temp_dir().join(format!("auto_hook_mamba_gguf_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // F32: only A's round trip through exp and log differs (a few ulps). Q8_0: the
    // quantized matrices' rounding.
    for (quant, tol) in [(GgmlDType::F32, 1e-5), (GgmlDType::Q8_0, 2e-2)] {
        let path = dir.join(format!("mamba_{quant:?}.gguf"));
        write_mamba_gguf(&path, quant);
        let model = load_mamba(&path, DType::F32, &Device::Cpu).unwrap();
        assert_eq!(model.hook_point_names(), from_folder.hook_point_names());
        let got = model.forward(&ids, None).unwrap();
        let diff = max_diff(&got, &want) / scale;
        eprintln!("{quant:?}: GGUF vs folder logits, max diff / max |logit| = {diff:.2e}");
        assert!(diff < tol, "{quant:?}: {diff}");
    }
    // A transformer's loader names the right one.
    let err =
        auto_hook_models::load(dir.join("mamba_F32.gguf"), DType::F32, &Device::Cpu).unwrap_err();
    assert!(err.to_string().contains("load_mamba"), "{err}");
}
