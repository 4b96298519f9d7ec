//! candle-transformers' Mamba (a `&self` step forward with an external `State`, parameters
//! used through locals and method chains) hooked with no edits, both ways, against its
//! own model.

mod common;

use auto_hook::prelude::*;
use auto_hook_ct::check::{check_model, Stop};
use candle::{DType, Device, Tensor};
use candle_transformers::models::mamba as reference;

const CONFIG: &str =
    r#"{"d_model": 32, "n_layer": 2, "vocab_size": 60, "pad_vocab_size_multiple": 8}"#;

/// Three steps over one sequence (candle-transformers' Mamba step takes a batch of one:
/// its `B` broadcast fails for more), from a fresh state; the logits stacked.
fn steps(mut step: impl FnMut(&Tensor) -> candle::Result<Tensor>) -> candle::Result<Tensor> {
    let ids = common::tokens(&Device::Cpu)?.narrow(0, 0, 1)?;
    let logits = (0..3)
        .map(|t| step(&ids.narrow(1, t, 1)?.squeeze(1)?))
        .collect::<candle::Result<Vec<_>>>()?;
    Tensor::stack(&logits, 0)
}

macro_rules! mamba_checks {
    ($variant:ident) => {
        #[test]
        fn $variant() -> Result<(), Box<dyn std::error::Error>> {
            use auto_hook_ct::$variant::mamba as hooked;
            let dev = Device::Cpu;
            let cfg: hooked::Config = serde_json::from_str(CONFIG)?;
            let ref_cfg: reference::Config = serde_json::from_str(CONFIG)?;
            let (mut model, ct) = common::build_pair(
                |vb| hooked::Model::new(&cfg, vb),
                |vb| reference::Model::new(&ref_cfg, vb),
            )?;
            let names = model.hook_point_names();
            assert!(
                names.contains(&"layers.0.mixer.a_log.hook_point".into()),
                "{names:?}"
            );
            let summary = check_model(
                &mut model,
                || {
                    let mut state = reference::State::new(1, &ref_cfg, DType::F32, &dev)?;
                    steps(|x| ct.forward(x, &mut state))
                },
                |m| {
                    let mut state = hooked::State::new(1, &cfg, DType::F32, &dev)?;
                    steps(|x| m.forward(x, &mut state))
                },
                Stop {
                    at: "layers.0.**",
                    never: "layers.1.",
                },
            )?;
            assert_eq!(summary.fire_counts.len(), names.len());
            // parameters fire once per step (read through locals, indexing, method chains)
            assert_eq!(summary.fire_counts["layers.0.mixer.a_log.hook_point"], 3);
            Ok(())
        }
    };
}

mamba_checks!(verbatim);
mamba_checks!(built);
