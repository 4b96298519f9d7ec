//! SAELens folder format: round trips, and a clear error for every bad input.

use auto_hook_sae::{Architecture, Error, Sae, SaeConfig};
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("auto_hook_sae_{name}_{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    dir
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn copy_fixture(name: &str, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for file in ["cfg.json", "sae_weights.safetensors"] {
        std::fs::copy(fixture(name).join(file), to.join(file)).unwrap();
    }
}

fn edit_cfg(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("cfg.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(path, v.to_string()).unwrap();
}

fn load_err(dir: &Path) -> String {
    let err = Sae::load(dir, &Device::Cpu).unwrap_err();
    err.to_string()
}

#[test]
fn save_then_load_gives_the_same_forward_for_every_architecture() {
    let x = Tensor::randn(0f32, 1.0, (7, 12), &Device::Cpu).unwrap();
    for arch in [
        Architecture::Standard,
        Architecture::TopK { k: 3 },
        Architecture::JumpRelu,
    ] {
        let dir = temp_dir(&format!("roundtrip_{}", arch.name()));
        let mut cfg = SaeConfig::new(12, 40, arch).with_hook("blocks.1.hook_resid_pre");
        cfg.metadata.context_size = Some(16);
        let sae = Sae::init(&cfg, None, 5, &Device::Cpu).unwrap();
        let sparsity = Tensor::full(-2f32, 40, &Device::Cpu).unwrap();
        sae.save(&dir, Some(&sparsity)).unwrap();
        let back = Sae::load(&dir, &Device::Cpu).unwrap();
        assert_eq!(back.cfg(), sae.cfg());
        let diff = (back.forward(&x).unwrap() - sae.forward(&x).unwrap())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap();
        assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0, "{}", arch.name());
        let s = auto_hook_sae::load_sparsity(&dir).unwrap().unwrap();
        assert_eq!(s.to_vec1::<f32>().unwrap(), vec![-2f32; 40]);
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().into_string().unwrap();
                name.starts_with('.').then_some(name)
            })
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
        std::fs::remove_dir_all(&dir).ok();
    }
}

#[test]
fn topk_with_rescaling_is_saved_folded_and_behaves_the_same() {
    let mut cfg = SaeConfig::new(8, 24, Architecture::TopK { k: 4 });
    cfg.rescale_acts_by_decoder_norm = true;
    let sae = Sae::init(&cfg, Some(0.3), 2, &Device::Cpu).unwrap();
    let dir = temp_dir("rescale");
    sae.save(&dir, None).unwrap();
    let back = Sae::load(&dir, &Device::Cpu).unwrap();
    assert!(!back.cfg().rescale_acts_by_decoder_norm);
    let norms = back
        .w_dec()
        .sqr()
        .unwrap()
        .sum(1)
        .unwrap()
        .sqrt()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-5));
    let x = Tensor::randn(0f32, 1.0, (9, 8), &Device::Cpu).unwrap();
    let diff = (back.forward(&x).unwrap() - sae.forward(&x).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap();
    assert!(diff.to_scalar::<f32>().unwrap() < 1e-5);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn missing_config_keys_are_named() {
    let dir = temp_dir("missing_key");
    copy_fixture("standard", &dir);
    edit_cfg(&dir, |v| {
        v.as_object_mut().unwrap().remove("d_sae");
    });
    assert_eq!(load_err(&dir), "cfg.json: `d_sae`: missing");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn unknown_config_values_are_named() {
    let dir = temp_dir("unknown_value");
    copy_fixture("standard", &dir);
    edit_cfg(&dir, |v| v["architecture"] = "matching_pursuit".into());
    let err = load_err(&dir);
    assert!(err.contains("`architecture`: unknown or unsupported value \"matching_pursuit\""));
    // A known architecture whose own weights are not in the file names the first missing.
    edit_cfg(&dir, |v| v["architecture"] = "gated".into());
    assert!(load_err(&dir).contains("b_gate"), "{}", load_err(&dir));
    edit_cfg(&dir, |v| {
        v["architecture"] = "standard".into();
        v["normalize_activations"] = "whiten".into();
    });
    assert!(load_err(&dir).contains("`normalize_activations`: unknown value \"whiten\""));
    edit_cfg(&dir, |v| {
        v["normalize_activations"] = "none".into();
        v["dtype"] = "int8".into();
    });
    assert!(load_err(&dir).contains("`dtype`: unknown value \"int8\""));
    edit_cfg(&dir, |v| {
        v["dtype"] = "float32".into();
        v["d_in"] = "sixteen".into();
    });
    assert!(load_err(&dir).contains("`d_in`: expected a non-negative integer"));
    std::fs::write(dir.join("cfg.json"), "{ not json").unwrap();
    assert!(load_err(&dir).contains("not valid JSON"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn k_larger_than_d_sae_is_refused() {
    let dir = temp_dir("big_k");
    copy_fixture("topk", &dir);
    edit_cfg(&dir, |v| v["k"] = 49.into());
    assert_eq!(
        load_err(&dir),
        "cfg.json: `k`: k = 49 must be between 1 and d_sae = 48"
    );
    let err = Sae::init(
        &SaeConfig::new(4, 8, Architecture::TopK { k: 9 }),
        None,
        0,
        &Device::Cpu,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Config { .. }));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn missing_and_misshaped_weights_are_named() {
    let dir = temp_dir("weights");
    copy_fixture("jumprelu", &dir);
    let path = dir.join("sae_weights.safetensors");
    let mut w = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    let full = w.clone();
    w.remove("threshold");
    candle_core::safetensors::save(&w, &path).unwrap();
    assert!(load_err(&dir).contains("`threshold`: missing"));
    let mut w = full.clone();
    w.remove("W_dec");
    candle_core::safetensors::save(&w, &path).unwrap();
    assert_eq!(load_err(&dir), "sae_weights.safetensors: `W_dec`: missing");
    let mut w: HashMap<String, Tensor> = full.clone();
    w.insert(
        "W_enc".into(),
        w["W_enc"].t().unwrap().contiguous().unwrap(),
    );
    candle_core::safetensors::save(&w, &path).unwrap();
    assert_eq!(
        load_err(&dir),
        "sae_weights.safetensors: `W_enc`: expected shape [16, 48], got [48, 16]"
    );
    std::fs::remove_file(&path).unwrap();
    assert!(load_err(&dir).contains("weights file not found"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn wrong_input_width_is_an_error_not_a_panic() {
    let sae = Sae::init(
        &SaeConfig::new(8, 16, Architecture::Standard),
        None,
        0,
        &Device::Cpu,
    )
    .unwrap();
    let x = Tensor::zeros((3, 9), candle_core::DType::F32, &Device::Cpu).unwrap();
    let err = sae.forward(&x).unwrap_err().to_string();
    assert!(err.contains("width 9, the SAE has d_in = 8"), "{err}");
}

/// `constant_norm_rescale` and `layer_norm` SAEs decode with the statistics of the
/// input they encoded (SAELens's `decode(encode(x))`); `decode` alone is a clear error.
#[test]
fn runtime_normalisations_decode_with_the_encoded_inputs_statistics() {
    use auto_hook_sae::Normalization;
    let x = Tensor::randn(0.5f32, 2.0, (2, 5, 8), &Device::Cpu).unwrap();
    for norm in [Normalization::ConstantNormRescale, Normalization::LayerNorm] {
        let mut cfg = SaeConfig::new(8, 32, Architecture::Standard);
        cfg.normalize_activations = norm;
        let sae = Sae::init(&cfg, Some(0.3), 1, &Device::Cpu).unwrap();
        let err = sae
            .decode(&sae.encode(&x).unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(norm.name()) && err.contains("decode_with_norm"),
            "{err}"
        );
        let (f, stats) = sae.encode_with_norm(&x).unwrap();
        let out = sae.decode_with_norm(&f, &stats).unwrap();
        assert_eq!(out.dims(), [2, 5, 8]);
        let diff = (&out - sae.forward(&x).unwrap()).unwrap().abs().unwrap();
        let diff = diff.max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-5, "{norm:?}: {diff}");
        // Without the statistics the output would be in normalised units.
        let plain = f.broadcast_matmul(sae.w_dec()).unwrap();
        let plain = plain.broadcast_add(sae.b_dec()).unwrap();
        let off = (&out - plain).unwrap().abs().unwrap().max_all().unwrap();
        assert!(
            off.to_scalar::<f32>().unwrap() > 1e-2,
            "{norm:?}: statistics unused"
        );
        let fewer = f.narrow(0, 0, 1).unwrap();
        let err = sae
            .decode_with_norm(&fewer, &stats)
            .unwrap_err()
            .to_string();
        assert!(err.contains("rows"), "{err}");
    }
}
