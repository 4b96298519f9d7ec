//! Our forward against SAELens 6.54's on the committed fixtures (made by
//! `scripts/make_sae_fixtures.py` with SAELens's own save functions).

use auto_hook_sae::{compare_sae_with_reference, Architecture, Sae};
use candle_core::Device;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn assert_parity(name: &str) -> Sae {
    let folder = fixture(name);
    let sae = Sae::load(&folder, &Device::Cpu).unwrap();
    let reference =
        candle_core::safetensors::load(folder.join("reference.safetensors"), &Device::Cpu).unwrap();
    let diffs = compare_sae_with_reference(&sae, &reference).unwrap();
    assert_eq!(diffs.len(), 3, "{name}: every key compared");
    for (key, diff) in diffs {
        assert!(diff <= 1e-5, "{name}: {key} differs by {diff}");
    }
    // The fixture is not degenerate: some latents fire, some do not.
    let f = sae
        .encode(&reference["x"])
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let active = f.iter().filter(|v| **v > 0.0).count();
    assert!(
        active > 0 && active < f.len(),
        "{name}: {active} of {} active",
        f.len()
    );
    sae
}

#[test]
fn standard_matches_saelens() {
    assert_eq!(
        assert_parity("standard").cfg().architecture,
        Architecture::Standard
    );
}

#[test]
fn standard_without_b_dec_on_input_matches_saelens() {
    assert!(!assert_parity("standard_no_bdec").cfg().apply_b_dec_to_input);
}

#[test]
fn layer_norm_input_matches_saelens() {
    assert_parity("standard_layer_norm");
}

#[test]
fn topk_matches_saelens() {
    assert_eq!(
        assert_parity("topk").cfg().architecture,
        Architecture::TopK { k: 6 }
    );
}

#[test]
fn pre_v6_topk_config_loads_and_matches() {
    let sae = assert_parity("topk_pre_v6");
    assert_eq!(sae.cfg().architecture, Architecture::TopK { k: 6 });
    assert_eq!(
        sae.cfg().metadata.hook_name.as_deref(),
        Some("blocks.0.hook_resid_post")
    );
}

#[test]
fn trained_topk_with_decoder_norm_rescaling_matches_saelens() {
    let sae = assert_parity("topk_trained");
    assert!(sae.cfg().rescale_acts_by_decoder_norm);
}

#[test]
fn jumprelu_matches_saelens() {
    assert_eq!(
        assert_parity("jumprelu").cfg().architecture,
        Architecture::JumpRelu
    );
}

#[test]
fn batchtopk_saved_by_saelens_loads_as_jumprelu() {
    let sae = assert_parity("batchtopk");
    assert_eq!(sae.cfg().architecture, Architecture::JumpRelu);
    let t = sae.threshold().unwrap().to_vec1::<f32>().unwrap();
    assert!(t.iter().all(|v| (v - 0.15).abs() < 1e-6));
}

#[test]
fn hook_z_reshape_matches_saelens() {
    let sae = assert_parity("hook_z");
    assert!(sae.cfg().reshape_hook_z);
}

#[test]
fn gated_matches_saelens() {
    let sae = assert_parity("gated");
    assert_eq!(sae.cfg().architecture, Architecture::Gated);
    assert!(sae.b_enc().is_none());
    let names: Vec<&str> = sae.params().iter().map(|(name, _)| name).collect();
    assert_eq!(
        names,
        ["W_enc", "W_dec", "b_dec", "b_gate", "r_mag", "b_mag"]
    );
}

#[test]
fn matryoshka_batchtopk_saved_by_saelens_loads_as_jumprelu() {
    for name in ["matryoshka", "matryoshka_aux"] {
        let sae = assert_parity(name);
        assert_eq!(sae.cfg().architecture, Architecture::JumpRelu, "{name}");
    }
}

#[test]
fn transcoders_match_saelens() {
    for (name, jumprelu, skip) in [
        ("transcoder", false, false),
        ("skip_transcoder", false, true),
        ("jumprelu_transcoder", true, false),
        ("jumprelu_skip_transcoder", true, true),
    ] {
        let sae = assert_parity(name);
        let cfg = sae.cfg();
        assert_eq!(
            cfg.architecture,
            Architecture::Transcoder { jumprelu, skip },
            "{name}"
        );
        assert_eq!((cfg.d_in, cfg.d_out(), cfg.d_sae), (16, 12, 48), "{name}");
        assert_eq!(sae.hook_name_out(), Some("blocks.0.hook_mlp_out"), "{name}");
        assert_eq!(sae.params().w_skip.is_some(), skip, "{name}");
        assert_eq!(sae.threshold().is_some(), jumprelu, "{name}");
    }
}
