//! Every test model passes the conformance checks, and lists exactly the expected names.

mod common;

use auto_hook::prelude::*;
use candle_core::{Device, Module, ModuleT, Tensor};
use common::conformance::assert_conformance;
use common::models::*;

#[test]
fn one_linear_lists_own_and_fc1_points_and_conforms() {
    let (_map, vb) = random_vb();
    let model = OneLinear::new(vb).unwrap();
    assert_eq!(OneLinear::hook_names(), ["hook_point", "fc1.hook_point"]);
    assert_eq!(
        model.hook_dict().names().collect::<Vec<_>>(),
        ["hook_point", "fc1.hook_point"]
    );
    let x = randn(&[2, 4]);
    assert_conformance(&model, |m| m.forward(&x), &[], &[]);
}

#[test]
fn autoencoder_parameters_fire_once_per_arithmetic_use() {
    let model = AutoEncoder::new(6, 12).unwrap();
    assert_eq!(
        AutoEncoder::hook_names(),
        [
            "hook_point",
            "W_enc.hook_point",
            "W_dec.hook_point",
            "b_enc.hook_point",
            "b_dec.hook_point"
        ]
    );
    let x = randn(&[3, 6]);
    // b_dec is used twice: x - b_dec and ... + b_dec.
    assert_conformance(&model, |m| m.forward(&x), &[("b_dec.hook_point", 2)], &[]);
    // `self.w_enc.clone()` in an annotated method still clones the tensor.
    let w: Tensor = model.encoder_weight();
    assert_eq!(w.dims(), [6, 12]);
}

#[test]
fn map_of_modules_names_elements_by_sorted_key() {
    let (_map, vb) = random_vb();
    let model = Router::new(vb).unwrap();
    assert_eq!(
        Router::hook_names(),
        [
            "hook_point",
            "experts.*.hook_point",
            "gates.*.hook_point",
            "gates.*.fc1.hook_point",
            "gates.*.fc2.hook_point",
            "gates.*.hook_relu"
        ]
    );
    let names = model.hook_point_names();
    assert_eq!(
        names,
        [
            "hook_point",
            "experts.down.hook_point",
            "experts.gate.hook_point",
            "experts.up.hook_point",
            "gates.a.hook_point",
            "gates.a.fc1.hook_point",
            "gates.a.fc2.hook_point",
            "gates.a.hook_relu",
            "gates.b.hook_point",
            "gates.b.fc1.hook_point",
            "gates.b.fc2.hook_point",
            "gates.b.hook_relu",
        ]
    );
    let x = randn(&[2, 4]);
    assert_conformance(&model, |m| m.forward(&x), &[], &[]);
}

#[test]
fn transformer_block_with_mask_argument_conforms() {
    let (_map, vb) = random_vb();
    let block = Block::new(16, 4, vb).unwrap();
    assert_eq!(
        Block::hook_names(),
        [
            "hook_point",
            "ln1.hook_point",
            "attn.hook_point",
            "attn.q.hook_point",
            "attn.k.hook_point",
            "attn.v.hook_point",
            "attn.o.hook_point",
            "attn.hook_pattern",
            "ln2.hook_point",
            "mlp.hook_point",
            "mlp.fc1.hook_point",
            "mlp.fc2.hook_point",
            "mlp.hook_relu",
        ]
    );
    let x = randn(&[2, 5, 16]);
    let mask = causal_mask(5);
    assert_conformance(&block, |m| m.forward(&x, &mask), &[], &[]);
}

#[test]
fn nested_vec_of_blocks_conforms_and_names_layers_by_index() {
    let (_map, vb) = random_vb();
    let model = Stack::new(3, vb).unwrap();
    assert!(Stack::hook_names().contains(&"layers.*.attn.q.hook_point".to_owned()));
    let names = model.hook_point_names();
    assert_eq!(names.len(), 3 + 3 * 13);
    assert_eq!(
        &names[..4],
        [
            "hook_point",
            "embed.hook_point",
            "layers.0.hook_point",
            "layers.0.ln1.hook_point"
        ]
    );
    assert_eq!(
        names.last().map(String::as_str),
        Some("ln_final.hook_point")
    );
    let tokens = Tensor::new(&[[1u32, 5, 7, 2], [3, 3, 9, 0]], &Device::Cpu).unwrap();
    // candle-nn's fused LayerNorm (ln_final) has no backward: gradients stop there.
    let no_backward = ["fused kernels have no backward"];
    assert_conformance(
        &model,
        |m| m.forward(&tokens).map(|(x, _)| x),
        &[],
        &no_backward,
    );
}

#[test]
fn option_box_array_module_t_and_generic_fields_are_hooked() {
    let (_map, vb) = random_vb();
    let inner = OneLinear::new(vb.pp("inner")).unwrap();
    let model = Corners::new(inner, vb).unwrap();
    assert_eq!(
        Corners::<OneLinear>::hook_names(),
        [
            "hook_point",
            "maybe.hook_point",
            "absent.hook_point",
            "boxed.hook_point",
            "boxed.fc1.hook_point",
            "boxed.fc2.hook_point",
            "boxed.hook_relu",
            "pair.*.hook_point",
            "dropout.hook_point",
            "inner.hook_point",
            "inner.fc1.hook_point",
            "bias.hook_point",
            "spare.hook_point",
        ]
    );
    let names = model.hook_point_names();
    assert!(
        !names.contains(&"absent.hook_point".to_owned()),
        "a None field has no hook point"
    );
    assert!(names.contains(&"pair.1.hook_point".to_owned()));
    let x = randn(&[2, 4]);
    // `bias` is an Option<Tensor> used through `match &self.bias { Some(b) => .. }`: its
    // point fires. `spare` is never used: its point is listed but does not fire.
    let counted = std::cell::RefCell::new(Vec::new());
    let hooks = Hooks::new().add("**", |_, h| counted.borrow_mut().push(h.name().to_owned()));
    model
        .run_with_hooks(hooks, |m| m.forward_t(&x, false))
        .unwrap();
    let fired = counted.into_inner();
    for name in names.iter().filter(|n| *n != "spare.hook_point") {
        assert_eq!(
            fired.iter().filter(|f| *f == name).count(),
            1,
            "`{name}` fires once"
        );
    }
    assert!(!fired.contains(&"spare.hook_point".to_owned()));
}

// The same source compiled with and without the attribute, from a macro_rules! macro:
// generated code must resolve `self` and locals under the macro's hygiene.
macro_rules! define_scaled {
    ($module:ident, $(#[$attr:meta])*) => {
        mod $module {
            use super::*;
            use candle_core::{Module, Result, Tensor};

            $(#[$attr])*
            pub struct Scaled {
                pub fc: candle_nn::Linear,
                pub gain: Tensor,
            }

            $(#[$attr])*
            impl Scaled {
                pub fn new(vb: candle_nn::VarBuilder) -> Result<Self> {
                    Ok(Self { fc: candle_nn::linear(4, 4, vb.pp("fc"))?, gain: randn(&[4]) })
                }
                pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
                    self.fc.forward(x)?.broadcast_mul(&self.gain)
                }
            }
        }
    };
}

define_scaled!(plain_scaled,);
define_scaled!(hooked_scaled, #[auto_hook]);

#[test]
fn model_defined_inside_macro_rules_is_hooked_and_conforms() {
    let (_map, vb) = random_vb();
    let plain = plain_scaled::Scaled::new(vb.clone()).unwrap();
    let hooked = hooked_scaled::Scaled::new(vb).unwrap();
    let x = randn(&[2, 4]);
    let gain = plain.gain.clone();
    let hooked_out = hooked
        .run_with_hooks(Hooks::new().add("gain.hook_point", |_, _| ()), |m| {
            m.forward(&x)
        })
        .unwrap();
    assert_eq!(hooked_out.dims(), [2, 4]);
    assert_eq!(
        hooked.hook_point_names(),
        ["hook_point", "fc.hook_point", "gain.hook_point"]
    );
    let plain_out = plain.forward(&x).unwrap();
    let expected = plain.fc.forward(&x).unwrap().broadcast_mul(&gain).unwrap();
    assert!(common::conformance::same_bits(&plain_out, &expected));
    assert_conformance(&hooked, |m| m.forward(&x), &[], &[]);
}

#[test]
fn optional_parameter_fires_through_an_if_let_binding_and_is_absent_when_none() {
    let x = randn(&[2, 4]);
    let with = Biased::new(true);
    assert_eq!(
        with.hook_point_names(),
        ["hook_point", "weight.hook_point", "bias.hook_point"]
    );
    assert_conformance(&with, |m| m.forward(&x), &[], &[]);
    let without = Biased::new(false);
    assert_eq!(
        without.hook_point_names(),
        ["hook_point", "weight.hook_point"]
    );
    let (_, cache) = without
        .run_with_cache(CacheOptions::all(), |m| m.forward(&x))
        .unwrap();
    assert_eq!(
        cache.names().collect::<Vec<_>>(),
        ["weight.hook_point", "hook_point"]
    );
}
