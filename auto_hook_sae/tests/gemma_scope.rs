//! Gemma Scope's `params.npz` (SAEs and transcoders) against SAELens's own Gemma Scope
//! loaders (`scripts/make_gemma_scope_fixtures.py`), splicing into the tiny Gemma 2, CE
//! loss score and KL against SAELens's `get_downstream_reconstruction_metrics`, and the
//! errors of bad files, hooks and widths.

use auto_hook::prelude::*;
use auto_hook_models::HookedTransformer;
use auto_hook_sae::*;
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn gemma2() -> HookedTransformer {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../auto_hook_models/tests/fixtures/gemma2");
    auto_hook_models::load(dir, DType::F32, &Device::Cpu).unwrap()
}

fn reference(folder: &Path, file: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(folder.join(file), &Device::Cpu).unwrap()
}

#[test]
fn gemma_scope_sae_matches_sae_lens_within_1e_5() {
    let folder = fixture("gemma_scope");
    let sae = Sae::load_gemma_scope(&folder, "blocks.1.hook_resid_post", &Device::Cpu).unwrap();
    let cfg = sae.cfg();
    assert_eq!((cfg.d_in, cfg.d_sae), (32, 64), "from the shapes");
    assert_eq!(cfg.architecture, Architecture::JumpRelu);
    assert!(!cfg.apply_b_dec_to_input);
    assert_eq!(
        cfg.metadata.hook_name.as_deref(),
        Some("blocks.1.hook_resid_post")
    );
    assert_eq!(sae.hook_name_out(), None);
    let diffs =
        compare_sae_with_reference(&sae, &reference(&folder, "reference.safetensors")).unwrap();
    assert_eq!(diffs.len(), 3, "{diffs:?}");
    for (key, diff) in diffs {
        assert!(diff <= 1e-5, "{key}: {diff}");
    }
    // The file path itself loads the same SAE.
    let same = Sae::load_gemma_scope(folder.join(GEMMA_SCOPE_FILENAME), "x", &Device::Cpu).unwrap();
    assert_eq!(
        same.w_enc().to_vec2::<f32>().unwrap(),
        sae.w_enc().to_vec2::<f32>().unwrap()
    );
}

#[test]
fn gemma_scope_transcoder_matches_sae_lens_and_names_its_two_hooks() {
    let folder = fixture("gemma_scope_transcoder");
    let tc = Sae::load_gemma_scope_transcoder(&folder, 1, &Device::Cpu).unwrap();
    assert_eq!(
        tc.cfg().metadata.hook_name.as_deref(),
        Some("blocks.1.ln2.hook_normalized")
    );
    assert_eq!(tc.hook_name_out(), Some("blocks.1.hook_mlp_out"));
    let diffs =
        compare_sae_with_reference(&tc, &reference(&folder, "reference.safetensors")).unwrap();
    assert_eq!(diffs.len(), 3);
    for (key, diff) in diffs {
        assert!(diff <= 1e-5, "{key}: {diff}");
    }
    // Both of its hooks exist on Gemma 2 with the SAE's width.
    let names = gemma2().hook_point_names();
    for hook in ["blocks.1.ln2.hook_normalized", "blocks.1.hook_mlp_out"] {
        assert!(names.contains(&hook.to_owned()), "{hook}");
    }
}

fn write_npz(dir: &Path, arrays: &[(&str, Vec<usize>)]) {
    std::fs::create_dir_all(dir).unwrap();
    let tensors: Vec<(&str, Tensor)> = arrays
        .iter()
        .map(|(n, shape)| {
            (
                *n,
                Tensor::ones(shape.as_slice(), DType::F32, &Device::Cpu).unwrap(),
            )
        })
        .collect();
    Tensor::write_npz(&tensors, dir.join("params.npz")).unwrap();
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("gemma_scope_{name}_{}", std::process::id()))
}

fn npz_error(dir: &Path) -> (String, String) {
    match Sae::load_gemma_scope(dir, "blocks.0.hook_resid_post", &Device::Cpu) {
        Err(Error::Npz { name, problem, .. }) => (name, problem),
        other => panic!("expected Error::Npz, got {other:?}"),
    }
}

#[test]
fn missing_or_mis_shaped_arrays_are_typed_errors_naming_the_array() {
    let good = |skip: &str, bad: Option<(&str, Vec<usize>)>| {
        let mut arrays = vec![
            ("W_enc", vec![4, 8]),
            ("W_dec", vec![8, 4]),
            ("b_enc", vec![8]),
            ("b_dec", vec![4]),
            ("threshold", vec![8]),
        ];
        arrays.retain(|(n, _)| *n != skip);
        if let Some((name, shape)) = bad {
            arrays
                .iter_mut()
                .filter(|(n, _)| *n == name)
                .for_each(|a| a.1 = shape.clone());
        }
        arrays
    };
    let dir = temp("missing");
    write_npz(&dir, &good("threshold", None));
    let (name, problem) = npz_error(&dir);
    assert_eq!(name, "threshold");
    assert!(
        problem.contains("missing") && problem.contains("W_enc"),
        "{problem}"
    );
    let dir = temp("shape");
    write_npz(&dir, &good("", Some(("b_dec", vec![5]))));
    let (name, problem) = npz_error(&dir);
    assert_eq!(name, "b_dec");
    assert!(
        problem.contains("[4]") && problem.contains("[5]"),
        "{problem}"
    );
    let dir = temp("rank");
    write_npz(&dir, &good("", Some(("W_enc", vec![32]))));
    assert_eq!(npz_error(&dir).0, "W_enc");
    let mut with_scale = good("", None);
    with_scale.push(("scaling_factor", vec![8]));
    let dir = temp("scale");
    write_npz(&dir, &with_scale);
    assert!(
        Sae::load_gemma_scope(&dir, "h", &Device::Cpu).is_ok(),
        "a scaling factor of ones is dropped"
    );
    let dir = temp("empty");
    std::fs::create_dir_all(&dir).unwrap();
    let err = Sae::load_gemma_scope(&dir, "h", &Device::Cpu).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    std::fs::write(dir.join("params.npz"), b"not a zip").unwrap();
    assert_eq!(npz_error(&dir).0, "(file)");
}

#[test]
fn unknown_hooks_and_wrong_widths_are_typed_errors() {
    let model = gemma2();
    let sae = Sae::load_gemma_scope(
        fixture("gemma_scope"),
        "blocks.1.hook_resid_post",
        &Device::Cpu,
    )
    .unwrap();
    let err = Spliced::new(&model)
        .with_sae("blocks.1.hook_resid_postt", sae.clone(), false)
        .unwrap_err();
    match err {
        Error::Hook(auto_hook::Error::UnknownHook { nearest, .. }) => {
            assert!(
                nearest.contains(&"blocks.1.hook_resid_post".to_owned()),
                "{nearest:?}"
            )
        }
        other => panic!("expected an unknown hook, got {other:?}"),
    }
    // d_in 32 at a hook of width 48 (the MLP's hidden activation).
    let ids = Tensor::new(&[[1u32, 5, 9, 13]], &Device::Cpu).unwrap();
    let spliced = Spliced::new(&model)
        .with_sae("blocks.1.mlp.hook_post", sae.clone(), false)
        .unwrap();
    let err = spliced.run(|m| m.forward(&ids, None)).unwrap_err();
    assert!(err.to_string().contains("d_in = 32"), "{err}");
    match err.find::<Error>() {
        Some(Error::DInMismatch { hook, d_in, width }) => {
            assert_eq!(
                (hook.as_str(), *d_in, *width),
                ("blocks.1.mlp.hook_post", 32, 48)
            )
        }
        other => panic!("expected DInMismatch, got {other:?} from {err}"),
    }
    // The downstream scores fail with the same error inside the failed hook.
    let forward = |m: &HookedTransformer, ids: &Tensor| m.forward(ids, None);
    let err = downstream_scores(&model, &sae, "blocks.1.mlp.hook_post", &ids, forward).unwrap_err();
    let inner = match &err {
        Error::Hook(run) => run.find::<Error>(),
        other => Some(other),
    };
    assert!(
        matches!(inner, Some(Error::DInMismatch { width: 48, .. })),
        "{err:?}"
    );
}

#[test]
fn ce_loss_score_and_kl_on_gemma2_match_sae_lens() {
    let model = gemma2();
    let sae = Sae::load_gemma_scope(
        fixture("gemma_scope"),
        "blocks.1.hook_resid_post",
        &Device::Cpu,
    )
    .unwrap();
    let r = reference(&fixture("gemma_scope"), "downstream.safetensors");
    let tokens = r["tokens"].to_dtype(DType::U32).unwrap();
    let get = |k: &str| r[k].to_vec1::<f64>().unwrap()[0];
    let forward = |m: &HookedTransformer, ids: &Tensor| m.forward(ids, None);
    let hook = "blocks.1.hook_resid_post";
    let ignore: Vec<u32> = r["ignore_tokens"]
        .to_dtype(DType::U32)
        .unwrap()
        .to_vec1()
        .unwrap();
    let cases = [
        (
            "",
            downstream_scores(&model, &sae, hook, &tokens, forward).unwrap(),
        ),
        (
            "_ignoring",
            downstream_scores_ignoring(&model, &sae, hook, &tokens, &ignore, forward).unwrap(),
        ),
    ];
    for (suffix, s) in cases {
        let pairs = [
            ("ce_loss_without_sae", s.ce_clean),
            ("ce_loss_with_sae", s.ce_sae),
            ("ce_loss_with_ablation", s.ce_zero),
            ("ce_loss_score", s.ce_loss_score),
            ("kl_div_with_sae", s.kl_sae),
            ("kl_div_with_ablation", s.kl_zero),
            ("kl_div_score", s.kl_score),
        ];
        for (key, ours) in pairs {
            let theirs = get(&format!("{key}{suffix}"));
            assert!(
                (ours - theirs).abs() <= 1e-5 * theirs.abs().max(1.0),
                "{key}{suffix}: ours {ours}, SAELens {theirs}"
            );
        }
    }
}

#[test]
fn a_spliced_transcoder_replaces_the_mlp_output_with_its_reading_of_ln2() {
    let model = gemma2();
    let tc = Sae::load_gemma_scope_transcoder(fixture("gemma_scope_transcoder"), 1, &Device::Cpu)
        .unwrap();
    let ids = Tensor::new(&[[1u32, 5, 9, 13, 20, 33]], &Device::Cpu).unwrap();
    // By hand: the transcoder of the clean ln2 output in place of the MLP's output.
    let (_, cache) = model
        .run_with_cache(CacheOptions::names(["blocks.1.ln2.hook_normalized"]), |m| {
            m.forward(&ids, None)
        })
        .unwrap();
    let out = tc
        .forward(cache.get("blocks.1.ln2.hook_normalized").unwrap())
        .unwrap();
    let by_hand = model
        .run_with_hooks(
            Hooks::new().add("blocks.1.hook_mlp_out", |_, _| out.clone()),
            |m| m.forward(&ids, None),
        )
        .unwrap();
    let spliced = Spliced::new(&model)
        .with_transcoder(tc.clone(), false)
        .unwrap();
    let (logits, cache) = spliced
        .run_with_cache(
            [
                "blocks.1.hook_mlp_out",
                "blocks.1.ln2.hook_normalized.hook_sae_acts_post",
            ],
            |s| s.run(|m| m.forward(&ids, None)),
        )
        .unwrap();
    let diff = (&logits - &by_hand)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap();
    assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
    let acts = cache
        .get("blocks.1.ln2.hook_normalized.hook_sae_acts_post")
        .unwrap();
    assert_eq!(acts.dims(), [1, 6, 64]);
    // With the error term the output is the clean one.
    let clean = model.forward(&ids, None).unwrap();
    let kept = Spliced::new(&model).with_transcoder(tc, true).unwrap();
    let kept = kept.run(|m| m.forward(&ids, None)).unwrap();
    let diff = (kept - clean).unwrap().abs().unwrap().max_all().unwrap();
    assert!(diff.to_scalar::<f32>().unwrap() < 1e-5);
    // An SAE without an output hook is no transcoder.
    let sae = Sae::load_gemma_scope(
        fixture("gemma_scope"),
        "blocks.1.hook_resid_post",
        &Device::Cpu,
    )
    .unwrap();
    assert!(matches!(
        Spliced::new(&model).with_transcoder(sae, false),
        Err(Error::Invalid(_))
    ));
}
