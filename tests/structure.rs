//! Module or data by structure, types resolved where they are defined, and only points
//! that fire: the shapes of bert's `BertSelfOutput` and own `Dropout`, quantized llama's
//! tracing `QMatMul`, phi's forward-less `RotaryEmbedding`, with the overrides.
#![deny(warnings)]

use auto_hook::prelude::*;
use candle_core::{Device, Module, Result, Tensor};
use candle_nn::{LayerNorm, Linear};
use std::collections::BTreeMap;

type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

fn tensor(rows: usize, cols: usize, seed: u64) -> Result<Tensor> {
    let data: Vec<f32> = (0..rows * cols)
        .map(|i| (((i as u64 + 1) * (seed * 2 + 7919) % 1000) as f32 / 500.0) - 1.0)
        .collect();
    Tensor::from_vec(data, (rows, cols), &Device::Cpu)
}

fn linear(d: usize, seed: u64) -> Result<Linear> {
    Ok(Linear::new(tensor(d, d, seed)?, None))
}

/// Every point that fired in one forward, with its count.
fn fire_counts<M: HookedRoot>(
    model: &M,
    run: impl FnOnce(&M) -> Result<Tensor>,
) -> std::result::Result<BTreeMap<String, usize>, Box<dyn std::error::Error>> {
    let counts = std::cell::RefCell::new(BTreeMap::new());
    let hooks = Hooks::new().add("**", |_, h| {
        *counts.borrow_mut().entry(h.name().to_owned()).or_insert(0) += 1;
    });
    model.run_with_hooks(hooks, run)?;
    Ok(counts.into_inner())
}

// bert's own dropout: same name as candle-nn's, plain values, an inherent forward.
#[auto_hook]
struct Dropout {
    #[allow(dead_code)]
    pr: f64,
}

#[auto_hook]
impl Dropout {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.clone())
    }
}

// quantized llama's tracing wrapper: same name as candle's `QMatMul`, holds a module.
#[auto_hook]
struct QMatMul {
    inner: Linear,
}

#[auto_hook]
impl QMatMul {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.inner.forward(x)
    }
}

// named like a result, holds modules: a module.
#[auto_hook]
struct SelfOutput {
    dense: Linear,
    layer_norm: LayerNorm,
    dropout: Dropout,
}

#[auto_hook]
impl SelfOutput {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.dropout.forward(&self.dense.forward(x)?)?;
        self.layer_norm.forward(&(h + x)?)
    }
}

// phi's rotary embedding: parameters, no forward (its method is `apply`).
#[auto_hook]
struct RotaryEmbedding {
    sin: Tensor,
    cos: Tensor,
}

#[auto_hook]
impl RotaryEmbedding {
    fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let s = self.sin.narrow(0, 0, 1)?;
        x.broadcast_mul(&s)?.broadcast_add(&self.cos)
    }
}

#[auto_hook]
struct Layer {
    out: SelfOutput,
    q: QMatMul,
    rotary: RotaryEmbedding,
}

#[auto_hook]
impl Layer {
    fn new() -> Result<Self> {
        let d = 4;
        Ok(Self {
            out: SelfOutput {
                dense: linear(d, 1)?,
                layer_norm: LayerNorm::new(
                    Tensor::ones(d, candle_core::DType::F32, &Device::Cpu)?,
                    Tensor::zeros(d, candle_core::DType::F32, &Device::Cpu)?,
                    1e-5,
                ),
                dropout: Dropout { pr: 0.1 },
            },
            q: QMatMul {
                inner: linear(d, 2)?,
            },
            rotary: RotaryEmbedding {
                sin: tensor(2, d, 3)?,
                cos: tensor(1, d, 4)?,
            },
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.q.forward(&self.out.forward(x)?)?;
        self.rotary.apply(&h)
    }
}

#[test]
fn a_struct_named_like_a_result_with_module_fields_is_hooked_and_its_points_fire() -> TestResult {
    let layer = Layer::new()?;
    let names = layer.hook_point_names();
    for name in [
        "out.hook_point",
        "out.dense.hook_point",
        "out.layer_norm.hook_point",
    ] {
        assert!(
            names.contains(&name.to_owned()),
            "{name} missing from {names:?}"
        );
    }
    let x = tensor(3, 4, 9)?;
    let counts = fire_counts(&layer, |m| m.forward(&x))?;
    let silent: Vec<&String> = names.iter().filter(|n| !counts.contains_key(*n)).collect();
    assert!(silent.is_empty(), "listed but never fired: {silent:?}");
    Ok(())
}

#[test]
fn a_local_type_with_a_candle_name_is_the_files_own_not_candles() -> TestResult {
    let names = Layer::hook_names();
    // bert's own Dropout holds plain values: data, no point of its own.
    assert!(
        !names.iter().any(|n| n.starts_with("out.dropout")),
        "{names:?}"
    );
    // the tracing QMatMul is a hooked struct: its own output and its inner module.
    assert!(names.contains(&"q.hook_point".to_owned()), "{names:?}");
    assert!(
        names.contains(&"q.inner.hook_point".to_owned()),
        "{names:?}"
    );
    // an edit at the wrapper's point takes effect
    let layer = Layer::new()?;
    let x = tensor(3, 4, 9)?;
    let clean = layer.forward(&x)?;
    let zeroed = layer.run_with_hooks(
        Hooks::new().add("q.hook_point", |a, _| a.zeros_like()),
        |m| m.forward(&x),
    )?;
    let diff = (clean - zeroed)?.abs()?.sum_all()?.to_scalar::<f32>()?;
    assert!(diff > 0.0, "zeroing q.hook_point changed nothing");
    Ok(())
}

#[test]
fn a_struct_without_a_forward_lists_no_own_point_and_its_parameters_fire() -> TestResult {
    let names = Layer::hook_names();
    assert!(
        !names.contains(&"rotary.hook_point".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"rotary.sin.hook_point".to_owned()),
        "{names:?}"
    );
    let layer = Layer::new()?;
    let x = tensor(3, 4, 9)?;
    let counts = fire_counts(&layer, |m| m.forward(&x))?;
    assert_eq!(counts.get("rotary.sin.hook_point"), Some(&1), "{counts:?}");
    assert_eq!(counts.get("rotary.cos.hook_point"), Some(&1), "{counts:?}");
    assert_eq!(layer.hook_point_names().len(), counts.len(), "{counts:?}");
    Ok(())
}

// The overrides: a module left as data, and a tensor record named like state hooked.
#[auto_hook(data)]
struct Frozen {
    #[allow(dead_code)]
    proj: Linear,
}

#[auto_hook(module)]
struct KvState {
    k: Tensor,
}

#[auto_hook]
impl KvState {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.broadcast_add(&self.k)
    }
}

#[auto_hook]
fn kv_state() -> Result<KvState> {
    Ok(KvState {
        k: tensor(1, 2, 1)?,
    })
}

#[auto_hook]
struct Cache {
    #[allow(dead_code)]
    cos: Tensor,
}

#[test]
fn data_and_module_overrides_win_over_the_structure() -> TestResult {
    let frozen = Frozen {
        proj: linear(2, 1)?,
    };
    let _plain: &Linear = &frozen.proj; // not wrapped
    assert_eq!(KvState::hook_names(), ["hook_point", "k.hook_point"]);
    let state = kv_state()?;
    let counts = fire_counts(&state, |m| m.forward(&tensor(2, 2, 5)?))?;
    assert_eq!(counts.len(), 2, "{counts:?}");
    // a tensor record named like run-time state stays data: its field is a Tensor
    let cache = Cache {
        cos: tensor(1, 1, 1)?,
    };
    let _t: &Tensor = &cache.cos;
    Ok(())
}

// A layer with a branch its forward does not take here (`b` runs only when `use_b`).
#[auto_hook]
struct Branchy {
    a: Linear,
    b: Linear,
    use_b: bool,
}

#[auto_hook]
impl Branchy {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.a.forward(x)?;
        if self.use_b {
            self.b.forward(&h)
        } else {
            Ok(h)
        }
    }
}

#[auto_hook]
struct Stack {
    layers: Vec<Branchy>,
}

#[auto_hook]
impl Stack {
    fn new() -> Result<Self> {
        let layer = |seed| -> Result<Branchy> {
            Ok(Branchy {
                a: linear(4, seed)?,
                b: linear(4, seed + 1)?,
                use_b: false,
            })
        };
        Ok(Self {
            layers: vec![layer(1)?, layer(3)?],
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.layers.iter().try_fold(x.clone(), |h, l| l.forward(&h))
    }
}

#[test]
fn stop_at_a_layer_glob_stops_after_the_last_matching_point_that_fires() -> TestResult {
    let model = Stack::new()?;
    let x = tensor(3, 4, 9)?;
    let later = std::cell::Cell::new(0);
    let hooks = Hooks::new().add("layers.1.**", |_, _| later.set(later.get() + 1));
    let cache = model.run_with_hooks(hooks, |m| {
        m.run_with_cache_stop_at("layers.0.**", |m| m.forward(&x))
            .map_err(candle_core::Error::wrap)
    })?;
    assert!(cache.contains("layers.0.a.hook_point"));
    assert!(cache.contains("layers.0.hook_point"));
    assert!(!cache.contains("layers.0.b.hook_point"), "b never ran");
    assert_eq!(later.get(), 0, "layer 1 ran after the stop");
    // a selected point that fires nowhere in the call is still an error
    let err = model
        .run_with_cache_stop_at("layers.0.b.hook_point", |m| m.forward(&x))
        .unwrap_err();
    assert!(err.to_string().contains("layers.0.b.hook_point"), "{err}");
    Ok(())
}

// Parameter reads that bypassed their point: `&*self.b`, `self.c.tensor()`, iterator
// adaptors over a `Vec<Tensor>` field.
#[auto_hook]
struct Reads {
    b: Tensor,
    c: Tensor,
    ws: Vec<Tensor>,
    vs: Vec<Tensor>,
}

#[auto_hook]
impl Reads {
    fn new() -> Result<Self> {
        Ok(Self {
            b: tensor(1, 4, 1)?,
            c: tensor(1, 4, 2)?,
            ws: vec![tensor(4, 4, 3)?, tensor(4, 4, 4)?, tensor(4, 4, 5)?],
            vs: vec![tensor(1, 4, 6)?, tensor(1, 4, 7)?, tensor(1, 4, 8)?],
        })
    }

    // `&*self.b` is the form under test
    #[allow(clippy::explicit_auto_deref)]
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.broadcast_add(&*self.b)?;
        let mut z = y.broadcast_mul(self.c.tensor())?;
        for w in self.ws.iter().skip(1) {
            z = z.matmul(w)?;
        }
        for (w, v) in self.ws.iter().zip(self.vs.iter()).take(1) {
            z = (z.matmul(w)? + 1.0)?.broadcast_add(v)?;
        }
        Ok(z)
    }
}

#[test]
fn deref_tensor_of_and_iterator_adaptor_reads_fire_their_parameters() -> TestResult {
    let model = Reads::new()?;
    let counts = fire_counts(&model, |m| m.forward(&tensor(2, 4, 9)?))?;
    assert_eq!(counts.get("b.hook_point"), Some(&1), "{counts:?}");
    assert_eq!(counts.get("c.hook_point"), Some(&1), "{counts:?}");
    assert_eq!(counts.get("ws.0.hook_point"), Some(&1), "zip: {counts:?}");
    assert_eq!(
        counts.get("ws.1.hook_point"),
        Some(&1),
        "skip(1): {counts:?}"
    );
    assert_eq!(
        counts.get("ws.2.hook_point"),
        Some(&1),
        "skip(1): {counts:?}"
    );
    assert_eq!(counts.get("vs.0.hook_point"), Some(&1), "zip: {counts:?}");
    Ok(())
}

// An enum whose variants hold hooked modules (candle-transformers' `MlpOrMoe`).
#[auto_hook]
#[derive(Clone)]
struct Expert {
    w: Linear,
}

#[auto_hook]
impl Expert {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.w.forward(x)
    }
}

#[auto_hook]
enum MlpOrMoe {
    Mlp(Expert),
    Moe {
        experts: Vec<Expert>,
        top: usize,
    },
    #[allow(dead_code)]
    Off,
}

#[auto_hook]
impl Module for MlpOrMoe {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Mlp(mlp) => mlp.forward(x),
            Self::Moe { experts, top } => experts[*top].forward(x),
            Self::Off => Ok(x.clone()),
        }
    }
}

#[auto_hook]
struct Block {
    mlp: MlpOrMoe,
    shared: std::sync::Arc<Expert>,
}

#[auto_hook]
impl Block {
    fn new(mlp: MlpOrMoe, shared: std::sync::Arc<Expert>) -> Self {
        Self { mlp, shared }
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.shared.forward(&self.mlp.forward(x)?)
    }
}

#[auto_hook]
fn expert(seed: u64) -> Result<Expert> {
    Ok(Expert {
        w: linear(4, seed)?,
    })
}

#[test]
fn an_enum_of_modules_lists_every_variant_and_fires_the_taken_one() -> TestResult {
    assert_eq!(
        Block::hook_names(),
        [
            "hook_point",
            "mlp.Mlp.hook_point",
            "mlp.Mlp.w.hook_point",
            "mlp.Moe.experts.*.hook_point",
            "mlp.Moe.experts.*.w.hook_point",
            "shared.hook_point",
            "shared.w.hook_point",
        ]
    );
    let shared = std::sync::Arc::new(expert(5)?);
    let dense = Block::new(MlpOrMoe::Mlp(expert(1)?), shared.clone());
    let sparse = Block::new(
        MlpOrMoe::Moe {
            experts: vec![expert(2)?, expert(3)?],
            top: 1,
        },
        shared.clone(),
    );
    let x = tensor(2, 4, 9)?;
    for (block, taken) in [
        (&dense, "mlp.Mlp.w.hook_point"),
        (&sparse, "mlp.Moe.experts.1.w.hook_point"),
    ] {
        let names = block.hook_point_names();
        assert!(names.contains(&taken.to_owned()), "{names:?}");
        let counts = fire_counts(block, |m| m.forward(&x))?;
        assert_eq!(counts.get(taken), Some(&1), "{counts:?}");
        assert_eq!(counts.get("shared.w.hook_point"), Some(&1), "{counts:?}");
    }
    // two holders of one `Arc` get points of their own
    let (a, b) = (dense.hook_point_names(), sparse.hook_point_names());
    assert!(
        a.contains(&"shared.hook_point".to_owned()) && b.contains(&"shared.hook_point".to_owned())
    );
    let mut ids = Vec::new();
    auto_hook::walk(&dense, &mut |n, p| {
        if n == "shared.hook_point" {
            ids.push(p.id())
        }
    });
    auto_hook::walk(&sparse, &mut |n, p| {
        if n == "shared.hook_point" {
            ids.push(p.id())
        }
    });
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1], "the shared expert's point is shared");
    Ok(())
}

/// Not `Clone`: an `Arc` of it cannot be unshared, so its holders share one module.
#[auto_hook]
struct Scale {
    w: candle_nn::Linear,
}

#[auto_hook]
impl Module for Scale {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.w.forward(x)
    }
}

#[auto_hook]
fn scale(seed: u64) -> Result<Scale> {
    Ok(Scale {
        w: linear(4, seed)?,
    })
}

#[auto_hook]
struct Twice {
    first: std::sync::Arc<Scale>,
    second: std::sync::Arc<Scale>,
}

#[auto_hook]
impl Twice {
    fn new(shared: std::sync::Arc<Scale>) -> Self {
        Self {
            first: shared.clone(),
            second: shared,
        }
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.second.forward(&self.first.forward(x)?)
    }
}

#[test]
fn a_module_shared_by_two_fields_is_listed_once_and_fires_under_that_name() -> TestResult {
    let shared = std::sync::Arc::new(scale(7)?);
    let model = Twice::new(shared);
    assert_eq!(
        model.hook_point_names(),
        ["hook_point", "first.hook_point", "first.w.hook_point"]
    );
    let counts = fire_counts(&model, |m| m.forward(&tensor(2, 4, 3)?))?;
    assert_eq!(counts.get("first.w.hook_point"), Some(&2), "{counts:?}");
    assert_eq!(counts.get("first.hook_point"), Some(&2), "{counts:?}");
    // Two modules: each field under its own name.
    let apart = Twice {
        first: std::sync::Arc::new(scale(7)?),
        second: std::sync::Arc::new(scale(8)?),
        __auto_hook_point: auto_hook::HookPoint::new(),
    };
    assert!(apart
        .hook_point_names()
        .contains(&"second.w.hook_point".to_owned()));
    Ok(())
}
