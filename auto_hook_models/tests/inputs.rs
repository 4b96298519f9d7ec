//! Bad input to the ports is a typed, matchable error that says what was wrong (issue 9,
//! part 2), and `check_auto_hook_strict` passes on the demo model, whose MLP weights
//! are zero by design: the check tells those points apart instead of failing them.

use auto_hook::prelude::*;
use auto_hook_models::{Eos, Error, GenerateOptions, HookedTransformer};
use candle_core::{DType, Device, Tensor};
use std::path::Path;

fn demo() -> HookedTransformer {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/induction-2l");
    auto_hook_models::load(dir, DType::F32, &Device::Cpu).unwrap()
}

fn ids(rows: &[&[u32]]) -> Tensor {
    let width = rows[0].len();
    Tensor::from_vec(rows.concat(), (rows.len(), width), &Device::Cpu).unwrap()
}

#[test]
fn an_empty_token_sequence_is_an_empty_input_error() {
    let model = demo();
    let empty = Tensor::zeros((1, 0), DType::U32, &Device::Cpu).unwrap();
    let err = model.forward(&empty, None).unwrap_err();
    assert!(
        matches!(
            auto_hook::find_error::<Error>(&err),
            Some(Error::EmptyInput { .. })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("has no tokens"), "{err}");
    assert!(!err.to_string().contains("reshape"), "{err}");
}

#[test]
fn an_empty_prompt_to_generate_is_named_as_such_even_with_no_new_tokens() {
    let model = demo();
    let empty = Tensor::zeros((2, 0), DType::U32, &Device::Cpu).unwrap();
    for max_new_tokens in [0, 4] {
        let opts = GenerateOptions {
            max_new_tokens,
            ..GenerateOptions::default()
        };
        let err = model.generate(&empty, None, &opts).unwrap_err();
        assert!(
            matches!(auto_hook::find_error::<Error>(&err), Some(Error::EmptyInput { what }) if what.contains("prompt")),
            "{err}"
        );
    }
}

#[test]
fn an_out_of_vocabulary_id_names_the_id_its_position_and_the_vocabulary_size() {
    let model = demo();
    let bad = ids(&[&[0, 1, 2, 3], &[0, 7, 64, 9]]);
    let err = model.forward(&bad, None).unwrap_err();
    assert!(
        matches!(
            auto_hook::find_error::<Error>(&err),
            Some(Error::TokenOutOfVocabulary {
                id: 64,
                batch: 1,
                position: 2,
                vocab_size: 64
            })
        ),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("token id 64") && msg.contains("64 tokens"),
        "{msg}"
    );
    let err = model
        .generate(&bad, None, &GenerateOptions::default())
        .unwrap_err();
    assert!(matches!(
        auto_hook::find_error::<Error>(&err),
        Some(Error::TokenOutOfVocabulary { id: 64, .. })
    ));
}

#[test]
fn wrong_shape_and_dtype_are_input_errors() {
    let model = demo();
    let flat = Tensor::new(&[1u32, 2, 3], &Device::Cpu).unwrap();
    let err = model.forward(&flat, None).unwrap_err();
    assert!(
        matches!(auto_hook::find_error::<Error>(&err), Some(Error::Input(m)) if m.contains("[batch, pos]"))
    );
    let float = Tensor::new(&[[1f32, 2.0]], &Device::Cpu).unwrap();
    let err = model.forward(&float, None).unwrap_err();
    assert!(
        matches!(auto_hook::find_error::<Error>(&err), Some(Error::Input(m)) if m.contains("F32"))
    );
    let mask = Tensor::ones((1, 3), DType::U32, &Device::Cpu).unwrap();
    let err = model.forward(&ids(&[&[1, 2]]), Some(&mask)).unwrap_err();
    assert!(
        matches!(auto_hook::find_error::<Error>(&err), Some(Error::Input(m)) if m.contains("attention_mask"))
    );
}

/// Through `run_with_hooks`, bad input stays matchable, and a failing hook (an internal
/// failure from the model's point of view) is not mistaken for bad input.
#[test]
fn hooked_runs_keep_bad_input_apart_from_other_failures() {
    let model = demo();
    let bad = ids(&[&[1, 99]]);
    let err = model
        .run_with_hooks(Hooks::new().add("hook_embed", |_, _| ()), |m| {
            m.forward(&bad, None)
        })
        .unwrap_err();
    assert!(matches!(
        err.find::<Error>(),
        Some(Error::TokenOutOfVocabulary { id: 99, .. })
    ));
    let failing = Hooks::new().add("hook_embed", |_, _| {
        Err::<(), _>(candle_core::Error::Msg("a hook failed".into()))
    });
    let err = model
        .run_with_hooks(failing, |m| m.forward(&ids(&[&[1, 2]]), None))
        .unwrap_err();
    assert!(matches!(err, auto_hook::Error::HookFailed { .. }), "{err}");
    assert!(err.find::<Error>().is_none());
    let ok = model.forward(&ids(&[&[1, 2, 63]]), None).unwrap();
    assert_eq!(ok.dims(), [1, 3, 64]);
}

/// The demo model's MLPs have all-zero weights, so adding 1 before their output changes
/// nothing; the check reports those points as `no_effect` (zero gradient: the output
/// does not depend on them), names the identically zero outputs, and strict mode passes.
#[test]
fn strict_check_passes_on_the_demo_model_and_names_its_zero_mlps() {
    let model = demo();
    let tokens = ids(&[&[0, 5, 9, 13, 5, 9, 13]]);
    let report = check_auto_hook_strict(&model, |m| m.forward(&tokens, None)).unwrap();
    assert!(!report.no_effect.is_empty());
    assert!(
        report
            .no_effect
            .iter()
            .all(|n| n.contains(".mlp.") || n.contains(".ln2.")),
        "{:?}",
        report.no_effect
    );
    assert!(
        report
            .zero_outputs
            .iter()
            .any(|n| n == "blocks.0.hook_mlp_out"),
        "{:?}",
        report.zero_outputs
    );
    assert!(report.editable.iter().any(|n| n == "blocks.0.hook_mlp_out"));
    assert_eq!(
        report.editable.len() + report.no_effect.len(),
        report.fire_counts.len()
    );
    assert!(report.to_string().contains("no effect"), "{report}");
}

#[test]
fn eos_is_explicit_config_default_never_or_given_tokens() {
    let model = demo();
    let prompt = ids(&[&[0, 5, 9, 13, 5, 9]]);
    let run = |eos: Eos| {
        let opts = GenerateOptions {
            max_new_tokens: 6,
            eos,
            ..GenerateOptions::default()
        };
        let out = model.generate(&prompt, None, &opts).unwrap();
        out.to_vec2::<u32>().unwrap().remove(0)
    };
    let never = run(Eos::Never);
    assert_eq!(never.len(), 6 + 6, "never stops early");
    let first = never[6];
    // Stopping at the first generated token ends the sequence right there.
    assert_eq!(run(Eos::Tokens(vec![first])), never[..7]);
    // The default is the config's eos (0 for the demo model).
    assert_eq!(model.config().eos_token_id, Some(0));
    assert_eq!(run(Eos::FromConfig), run(Eos::Tokens(vec![0])));
}

#[test]
fn a_stopped_sequence_is_padded_with_its_own_stop_token() {
    let model = demo();
    let prompt = ids(&[&[0, 5, 9, 13, 5, 9], &[0, 21, 22, 23, 21, 22]]);
    let never = GenerateOptions {
        max_new_tokens: 4,
        eos: Eos::Never,
        ..GenerateOptions::default()
    };
    let free = model.generate(&prompt, None, &never).unwrap();
    let free = free.to_vec2::<u32>().unwrap();
    let stop_first = free[0][6];
    let opts = GenerateOptions {
        eos: Eos::Tokens(vec![stop_first]),
        ..never
    };
    let out = model.generate(&prompt, None, &opts).unwrap();
    let out = out.to_vec2::<u32>().unwrap();
    assert_eq!(out[0][6..], [stop_first; 4], "padded with its stop token");
    if !free[1][6..].contains(&stop_first) {
        assert_eq!(out[1], free[1], "the other sequence runs on");
    }
}
