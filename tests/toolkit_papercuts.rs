//! Papercuts met while doing TransformerLens-style work (issue 16, item 8): cache
//! options from any list of names, the layer from a hook's info, and a gradient cut by
//! a fused kernel reported as such.

use auto_hook::prelude::*;
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder, VarMap};

#[auto_hook]
struct FusedSoftmax {
    fc1: Linear,
    fc2: Linear,
}

#[auto_hook]
impl FusedSoftmax {
    fn new(vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            fc1: candle_nn::linear(4, 4, vb.pp("fc1"))?,
            fc2: candle_nn::linear(4, 2, vb.pp("fc2"))?,
        })
    }
}

#[auto_hook]
impl Module for FusedSoftmax {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // candle-nn's fused softmax has no backward: the graph is cut here.
        let p = candle_nn::ops::softmax_last_dim(&self.fc1.forward(x)?)?;
        self.fc2.forward(&p)
    }
}

fn model() -> (VarMap, FusedSoftmax) {
    let map = VarMap::new();
    let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
    let model = FusedSoftmax::new(vb).unwrap();
    (map, model)
}

fn input() -> Tensor {
    Tensor::new(&[[0.5f32, -1.0, 2.0, 0.25]], &Device::Cpu).unwrap()
}

#[test]
fn cache_options_come_from_arrays_and_vectors_of_str_and_string() {
    let (_map, model) = model();
    let x = input();
    let layer = 1;
    let owned: [String; 2] = [format!("fc{layer}.hook_point"), "fc2.hook_point".to_owned()];
    let (_, cache) = model.run_with_cache(owned, |m| m.forward(&x)).unwrap();
    assert_eq!(
        cache.names().collect::<Vec<_>>(),
        ["fc1.hook_point", "fc2.hook_point"]
    );
    let (_, cache) = model
        .run_with_cache(["fc2.hook_point"], |m| m.forward(&x))
        .unwrap();
    assert_eq!(cache.len(), 1);
    let (_, cache) = model
        .run_with_cache(vec!["fc1.hook_point"], |m| m.forward(&x))
        .unwrap();
    assert!(cache.contains("fc1.hook_point"));
    let names = [String::from("fc1.*")];
    let (_, cache) = model.run_with_cache(&names[..], |m| m.forward(&x)).unwrap();
    assert_eq!(cache.len(), 1);
}

#[test]
fn a_hook_reads_its_layer_from_the_hook_info() {
    #[auto_hook]
    struct Stack {
        layers: Vec<Linear>,
    }
    #[auto_hook]
    impl Stack {
        fn new(layers: Vec<Linear>) -> Self {
            Self { layers }
        }
    }
    #[auto_hook]
    impl Module for Stack {
        fn forward(&self, x: &Tensor) -> Result<Tensor> {
            self.layers.iter().try_fold(x.clone(), |x, l| l.forward(&x))
        }
    }
    let vb = VarBuilder::zeros(DType::F32, &Device::Cpu);
    let layers = (0..3)
        .map(|i| candle_nn::linear(4, 4, vb.pp(i.to_string())))
        .collect::<Result<Vec<_>>>()
        .unwrap();
    let model = Stack::new(layers);
    let mut seen = Vec::new();
    let hooks = Hooks::new().add("**", |_, hook| {
        seen.push((hook.name().to_owned(), hook.layer()))
    });
    model
        .run_with_hooks(hooks, |m| m.forward(&input()))
        .unwrap();
    assert_eq!(
        seen,
        [
            ("layers.0.hook_point".to_owned(), Some(0)),
            ("layers.1.hook_point".to_owned(), Some(1)),
            ("layers.2.hook_point".to_owned(), Some(2)),
            ("hook_point".to_owned(), None),
        ]
    );
}

#[test]
fn a_gradient_cut_by_a_fused_kernel_names_the_kernel_and_its_replacement() {
    let (_map, model) = model();
    let (out, cache) = model
        .run_with_cache(CacheOptions::all().with_grads(), |m| m.forward(&input()))
        .unwrap();
    out.sqr().unwrap().sum_all().unwrap().backward().unwrap();
    assert!(cache.grad("fc2.hook_point").is_ok());
    let err = cache.grad("fc1.hook_point").unwrap_err().to_string();
    assert!(
        err.contains("`fc2.hook_point`, which fired after it, has one"),
        "{err}"
    );
    assert!(err.contains("auto_hook::ops::softmax_last_dim"), "{err}");
    assert!(
        !err.contains("the loss does not depend on this activation"),
        "{err}"
    );
}
