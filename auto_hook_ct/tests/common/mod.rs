//! Shared by the model tests: the input, and the two models on one set of weights.

use candle::{DType, Device, Result, Tensor};
use candle_nn::{VarBuilder, VarMap};

/// Two sequences of five token ids below 64.
pub fn tokens(dev: &Device) -> Result<Tensor> {
    Tensor::new(&[[1u32, 7, 3, 60, 12], [5, 5, 41, 0, 63]], dev)
}

/// Builds the hooked model once to create its variables, fills them with
/// [`auto_hook_ct::weights::fill`], then builds the hooked model and candle-transformers'
/// model from the same map, so both compute the same function.
pub fn build_pair<H, R>(
    hooked: impl Fn(VarBuilder) -> Result<H>,
    reference: impl Fn(VarBuilder) -> Result<R>,
) -> Result<(H, R)> {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    hooked(vb.clone())?;
    auto_hook_ct::weights::fill(&varmap, 42)?;
    Ok((hooked(vb.clone())?, reference(vb)?))
}

/// The `verbatim` and `built` tests of a model whose `forward(&mut self, ids, 0)` keeps a
/// KV cache that `clear_kv_cache` empties (Qwen2, Phi-3, Mistral, Gemma 2): both copies
/// against candle-transformers' `$module` on one set of weights ([`check_model`]), a
/// sample point `$point` listed, every listed point fired, and a stop after layer 0 of
/// `$layers`. `$model` is the type, `$($arg),*` the arguments of its `new` before the
/// config. The file must import `check_model`, `Stop`, `Device` and `reference`.
#[allow(unused_macros)]
macro_rules! kv_cache_model_checks {
    ($module:ident, $model:ident($($arg:expr),*), $point:literal, $layers:literal) => {
        kv_cache_model_checks!(@one verbatim, $module, $model($($arg),*), $point, $layers);
        kv_cache_model_checks!(@one built, $module, $model($($arg),*), $point, $layers);
    };
    (@one $variant:ident, $module:ident, $model:ident($($arg:expr),*), $point:literal, $layers:literal) => {
        #[test]
        fn $variant() -> Result<(), Box<dyn std::error::Error>> {
            use auto_hook_ct::$variant::$module as hooked;
            let cfg: hooked::Config = serde_json::from_str(CONFIG)?;
            let ref_cfg: reference::Config = serde_json::from_str(CONFIG)?;
            let (mut model, mut ct) = common::build_pair(
                |vb| hooked::$model::new($($arg,)* &cfg, vb),
                |vb| reference::$model::new($($arg,)* &ref_cfg, vb),
            )?;
            let names = model.hook_point_names();
            assert!(names.contains(&$point.into()), "{names:?}");
            let ids = common::tokens(&Device::Cpu)?;
            let summary = check_model(
                &mut model,
                || {
                    ct.clear_kv_cache();
                    ct.forward(&ids, 0)
                },
                |m| {
                    m.clear_kv_cache();
                    m.forward(&ids, 0)
                },
                Stop {
                    at: concat!($layers, ".0.**"),
                    never: concat!($layers, ".1."),
                },
            )?;
            assert_eq!(summary.fire_counts.len(), names.len());
            // zeroing the last layer's attention output changes the logits
            let edit = concat!($layers, ".1.self_attn.o_proj.hook_point");
            auto_hook_ct::check::check_edit(
                &mut model,
                |m| {
                    m.clear_kv_cache();
                    m.forward(&ids, 0)
                },
                edit,
            )?;
            Ok(())
        }
    };
}
