//! Hugging Face repo ids: `load` resolves `owner/name` and `owner/name:FILE` from a
//! local Hugging Face cache (a fake one, built here in the layout `huggingface_hub`
//! writes: `models--owner--name/refs/main` and `snapshots/<commit>/`), and says where it
//! looked when a file is missing. `HF_HOME` is set once for this test binary; downloads
//! are off (`HF_HUB_OFFLINE`), so the test behaves the same with the `hub` feature.

mod common;

use auto_hook_models::{load, load_quantized, Error};
use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device, Tensor};
use common::{max_diff, temp_folder, tokens, write_llama};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// A fake cache with three repos: a single-file folder checkpoint, the same weights
/// sharded in two files with an index, and a GGUF file. Returns the cache's `HF_HOME`
/// and the folder the checkpoint was written to.
fn fake_cache() -> (PathBuf, PathBuf) {
    let home = temp_folder("hf_home");
    let source = temp_folder("source");
    write_llama(&source, false);
    let snapshot = |repo: &str| {
        let root = home
            .join("hub")
            .join(format!("models--{}", repo.replace('/', "--")));
        std::fs::create_dir_all(root.join("refs")).unwrap();
        std::fs::write(root.join("refs/main"), COMMIT).unwrap();
        let snap = root.join("snapshots").join(COMMIT);
        std::fs::create_dir_all(&snap).unwrap();
        snap
    };
    let single = snapshot("tiny-org/tiny-llama");
    for file in ["config.json", "model.safetensors"] {
        std::fs::copy(source.join(file), single.join(file)).unwrap();
    }
    let sharded = snapshot("tiny-org/tiny-llama-sharded");
    std::fs::copy(source.join("config.json"), sharded.join("config.json")).unwrap();
    write_shards(&source.join("model.safetensors"), &sharded);
    let gguf = snapshot("tiny-org/tiny-llama-gguf");
    let written = common::gguf::write(
        &temp_folder("gguf"),
        &common::gguf::Spec::llama(GgmlDType::Q8_0),
    );
    std::fs::copy(&written, gguf.join("tiny.Q8_0.gguf")).unwrap();
    (home, source)
}

/// Splits a safetensors file in two shards with a `model.safetensors.index.json`.
fn write_shards(file: &Path, folder: &Path) {
    let tensors = candle_core::safetensors::load(file, &Device::Cpu).unwrap();
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    let mut weight_map = serde_json::Map::new();
    for (i, half) in names.chunks(names.len().div_ceil(2)).enumerate() {
        let shard = format!("model-0000{}-of-00002.safetensors", i + 1);
        let part: HashMap<String, Tensor> = half
            .iter()
            .map(|n| ((*n).clone(), tensors[*n].clone()))
            .collect();
        candle_core::safetensors::save(&part, folder.join(&shard)).unwrap();
        for n in half {
            weight_map.insert((*n).clone(), serde_json::Value::String(shard.clone()));
        }
    }
    let index = serde_json::json!({ "metadata": {}, "weight_map": weight_map });
    std::fs::write(
        folder.join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
}

#[test]
fn repo_ids_load_from_the_local_cache_and_missing_files_are_named() {
    let (home, source) = fake_cache();
    // SAFETY: the only test of this binary; nothing else reads the environment meanwhile.
    std::env::set_var("HF_HOME", &home);
    std::env::set_var("HF_HUB_OFFLINE", "1");
    let cpu = Device::Cpu;
    let ids = tokens(1, 6);
    let expected = load(&source, DType::F32, &cpu)
        .unwrap()
        .forward(&ids, None)
        .unwrap();

    // A folder repo, single file and sharded: the same model as the local folder.
    for repo in ["tiny-org/tiny-llama", "tiny-org/tiny-llama-sharded"] {
        let logits = load(repo, DType::F32, &cpu)
            .unwrap()
            .forward(&ids, None)
            .unwrap();
        assert_eq!(max_diff(&logits, &expected), 0.0, "{repo}");
    }
    let resolved = auto_hook_models::hub::resolve("tiny-org/tiny-llama-sharded").unwrap();
    assert!(
        resolved.ends_with(format!("snapshots/{COMMIT}")),
        "{}",
        resolved.display()
    );

    // One file of a repo: a GGUF, quantized and dequantised.
    let gguf = "tiny-org/tiny-llama-gguf:tiny.Q8_0.gguf";
    let quantized = load_quantized(gguf, &cpu).unwrap();
    assert_eq!(quantized.config().n_layers, 2);
    assert!(load(gguf, DType::F32, &cpu).is_ok());

    // Missing: a repo not in the cache, a file not in a cached repo.
    let err = load("tiny-org/absent", DType::F32, &cpu).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Hub(_)), "{msg}");
    assert!(msg.contains("config.json of tiny-org/absent"), "{msg}");
    assert!(msg.contains("models--tiny-org--absent"), "{msg}");
    let err = load_quantized("tiny-org/tiny-llama-gguf:other.gguf", &cpu).unwrap_err();
    assert!(
        err.to_string()
            .contains("other.gguf of tiny-org/tiny-llama-gguf"),
        "{err}"
    );

    // Neither a path nor a repo id: the loader's own error about the path.
    let err = load("no/such/folder", DType::F32, &cpu).unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
}
