//! `#[auto_hook]` on code written without it in mind: candle-transformers' shapes of
//! structs and forwards (configs, enums, foreign fields, caches, `&mut self` forwards,
//! literals anywhere) and the seed's AutoEncoder in operator form.
#![deny(warnings)]

use auto_hook::prelude::*;
use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::{Activation, Linear, VarBuilder};
use std::collections::HashMap;

type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

fn randn(shape: &[usize], seed: u64) -> Result<Tensor> {
    // Deterministic values without an RNG dependency.
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n)
        .map(|i| (((i as u64 + 1) * (seed * 2 + 7919) % 1000) as f32 / 500.0) - 1.0)
        .collect();
    Tensor::from_vec(data, shape, &Device::Cpu)
}

/// Counts firings per name.
fn counting(counts: &std::cell::RefCell<HashMap<String, usize>>) -> Hooks<'_> {
    Hooks::new().add("**", move |_x: &Tensor, info: &HookInfo| {
        *counts
            .borrow_mut()
            .entry(info.name().to_owned())
            .or_default() += 1;
    })
}

// The seed's AutoEncoder, ported line by line in operator form.
#[auto_hook]
#[allow(non_snake_case)]
struct AutoEncoder {
    W_enc: Tensor,
    W_dec: Tensor,
    b_enc: Tensor,
    b_dec: Tensor,
}

#[auto_hook]
#[allow(non_snake_case)]
impl AutoEncoder {
    fn new(d_mlp: usize, d_hidden: usize) -> Result<Self> {
        let W_enc = randn(&[d_mlp, d_hidden], 1)?;
        let W_dec = randn(&[d_hidden, d_mlp], 2)?;
        // Shaped [1, d]: candle's operators do not broadcast.
        let b_enc = randn(&[1, d_hidden], 3)?;
        let b_dec = randn(&[1, d_mlp], 4)?;
        Ok(Self {
            W_enc,
            W_dec,
            b_enc,
            b_dec,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x_cent = (x - &self.b_dec)?;
        let acts = (x_cent.matmul(&self.W_enc)? + &self.b_enc)?.relu()?;
        let x_reconstruct = (acts.matmul(&self.W_dec)? + &self.b_dec)?;
        Ok(x_reconstruct)
    }
}

fn autoencoder_by_hand(x: &Tensor) -> Result<Tensor> {
    let (w_enc, w_dec) = (randn(&[4, 8], 1)?, randn(&[8, 4], 2)?);
    let (b_enc, b_dec) = (randn(&[1, 8], 3)?, randn(&[1, 4], 4)?);
    let acts = x
        .broadcast_sub(&b_dec)?
        .matmul(&w_enc)?
        .broadcast_add(&b_enc)?
        .relu()?;
    acts.matmul(&w_dec)?.broadcast_add(&b_dec)
}

#[test]
fn autoencoder_in_operator_form_fires_every_parameter_and_is_bit_identical() -> TestResult {
    let model = AutoEncoder::new(4, 8)?;
    let x = randn(&[1, 4], 9)?;
    assert_eq!(
        model.hook_point_names(),
        [
            "hook_point",
            "W_enc.hook_point",
            "W_dec.hook_point",
            "b_enc.hook_point",
            "b_dec.hook_point"
        ]
    );
    let counts = Default::default();
    let out = model.run_with_hooks(counting(&counts), |m| m.forward(&x))?;
    let counts = counts.into_inner();
    assert_eq!(counts["b_dec.hook_point"], 2, "b_dec is read twice");
    for name in [
        "hook_point",
        "W_enc.hook_point",
        "W_dec.hook_point",
        "b_enc.hook_point",
    ] {
        assert_eq!(counts[name], 1, "{name}");
    }
    let expected = autoencoder_by_hand(&x)?;
    assert_eq!(out.to_vec2::<f32>()?, expected.to_vec2::<f32>()?);
    let identity = Hooks::new().add("**", |x: &Tensor, _: &HookInfo| x.clone());
    let same = model.run_with_hooks(identity, |m| m.forward(&x))?;
    assert_eq!(same.to_vec2::<f32>()?, expected.to_vec2::<f32>()?);
    for name in ["W_enc", "W_dec", "b_enc", "b_dec"] {
        let edit = Hooks::new().add(format!("{name}.hook_point"), |x: &Tensor, _: &HookInfo| {
            x + 0.5
        });
        let edited = model.run_with_hooks(edit, |m| m.forward(&x))?;
        let diff = (edited - &expected)?.abs()?.sum_all()?.to_scalar::<f32>()?;
        assert!(diff > 1e-3, "editing {name} changed nothing");
    }
    Ok(())
}

// A config as candle-transformers writes them: data, left as it is.
#[auto_hook]
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub hidden_size: usize,
    pub hidden_act: Activation,
    pub rope: RopeKind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RopeKind {
    Default,
    Llama3,
}

#[auto_hook]
impl Config {
    pub fn tiny() -> Self {
        Self {
            rope: RopeKind::Default,
            hidden_size: 4,
            hidden_act: Activation::Silu,
        }
    }
}

/// Not a module and not annotated (like `tracing::Span`).
#[derive(Debug, Clone, Default)]
pub struct Span {
    pub name: &'static str,
}

#[auto_hook]
#[derive(Debug, Clone)]
pub struct Mlp {
    up: Linear,
    act_fn: Activation,
    span: Span,
}

#[auto_hook]
impl Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let _ = self.span.name;
        x.apply(&self.up)?.apply(&self.act_fn)
    }
}

/// Built outside `impl Mlp`, in an annotated free function.
#[auto_hook]
fn mlp(cfg: &Config, vb: VarBuilder) -> Result<Mlp> {
    let up = candle_nn::linear(cfg.hidden_size, cfg.hidden_size, vb.pp("up"))?;
    Ok(Mlp {
        up,
        act_fn: cfg.hidden_act,
        span: Span::default(),
    })
}

// A block with a KV cache inside, a `&mut self` forward, an RmsNorm weight used as
// `&self.weight + 1.0`, a mask cache keyed by tuples, and an enum field.
#[auto_hook]
pub struct Block {
    mlp: Mlp,
    weight: Tensor,
    rope: RopeKind,
    kv_cache: Option<(Tensor, Tensor)>,
    masks: HashMap<(usize, usize), Tensor>,
    calls: usize,
}

#[auto_hook]
impl Block {
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let mlp = Mlp {
            up: candle_nn::linear(cfg.hidden_size, cfg.hidden_size, vb.pp("mlp.up"))?,
            act_fn: cfg.hidden_act,
            span: Span { name: "mlp" },
        };
        Ok(Self {
            mlp,
            weight: vb.get(cfg.hidden_size, "weight")?,
            rope: cfg.rope,
            kv_cache: None,
            masks: HashMap::new(),
            calls: 0,
        })
    }

    pub fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        self.calls += 1;
        let h = self.mlp.forward(x)?;
        let h = h.broadcast_mul(&(&self.weight + 1.0)?)?;
        let kv = match &self.kv_cache {
            None => h.clone(),
            Some((k, _)) => Tensor::cat(&[k, &h], 0)?,
        };
        self.kv_cache = Some((kv.clone(), kv));
        let n = h.dim(0)?;
        if let std::collections::hash_map::Entry::Vacant(e) = self.masks.entry((n, n)) {
            e.insert(Tensor::ones((n, n), DType::F32, x.device())?);
        }
        if self.rope == RopeKind::Llama3 {
            return h * 2.0;
        }
        Ok(h)
    }
}

#[test]
fn data_structs_stay_data_and_literals_compile_anywhere() -> TestResult {
    let cfg = Config::tiny();
    assert_eq!(cfg, cfg.clone(), "PartialEq still derives");
    let act: Activation = cfg.hidden_act;
    assert!(matches!(act, Activation::Silu));
    let varmap = candle_nn::VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let m = mlp(&cfg, vb.pp("free"))?;
    assert_eq!(
        m.hook_point_names(),
        ["hook_point", "up.hook_point", "act_fn.hook_point"]
    );
    let block = Block::new(&cfg, vb)?;
    // The type's listing (compile time) sees through the probed field `mlp` too.
    assert_eq!(Block::hook_names(), block.hook_point_names());
    assert_eq!(hook_name!(Block, "mlp.up.hook_point"), "mlp.up.hook_point");
    assert_eq!(
        block.hook_point_names(),
        [
            "hook_point",
            "mlp.hook_point",
            "mlp.up.hook_point",
            "mlp.act_fn.hook_point",
            "weight.hook_point"
        ]
    );
    Ok(())
}

#[test]
fn mut_self_forward_fires_the_own_point_and_keeps_its_cache() -> TestResult {
    let cfg = Config::tiny();
    let varmap = candle_nn::VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let mut block = Block::new(&cfg, vb)?;
    let fired = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = fired.clone();
    block.add_hook("**", move |_x: &Tensor, info: &HookInfo| {
        log.lock().unwrap().push(info.name().to_owned());
    })?;
    let x = randn(&[2, 4], 5)?;
    let first = block.forward(&x)?;
    let second = block.forward(&x)?;
    assert_eq!(first.to_vec2::<f32>()?, second.to_vec2::<f32>()?);
    assert_eq!(
        *fired.lock().unwrap(),
        [
            "mlp.up.hook_point",
            "mlp.act_fn.hook_point",
            "mlp.hook_point",
            "weight.hook_point",
            "hook_point"
        ]
        .repeat(2)
    );
    assert_eq!(
        block.kv_cache.as_ref().map(|(k, _)| k.dims()),
        Some(&[4, 4][..])
    );
    assert_eq!(block.calls, 2);
    Ok(())
}

// A table memoized from a parameter on first use, as falcon's rotary embedding does.
#[auto_hook]
pub struct Rotary {
    inv_freq: Tensor,
    cache: Option<(usize, Tensor)>,
}

#[auto_hook]
impl Rotary {
    fn new() -> Result<Self> {
        Ok(Self {
            inv_freq: randn(&[4], 11)?,
            cache: None,
        })
    }

    fn table(&mut self, n: usize) -> Result<Tensor> {
        if let Some((m, table)) = &self.cache {
            if *m == n {
                return Ok(table.clone());
            }
        }
        let t = Tensor::arange(0u32, n as u32, &Device::Cpu)?.to_dtype(DType::F32)?;
        let inv_freq = self.inv_freq.unsqueeze(0)?;
        let table = t.unsqueeze(1)?.broadcast_mul(&inv_freq)?.cos()?;
        self.cache = Some((n, table.clone()));
        Ok(table)
    }

    pub fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let table = self.table(x.dim(0)?)?;
        x.mul(&table)
    }
}

#[test]
fn a_per_call_edit_leaves_no_trace_in_a_memo_but_stays_in_state() -> TestResult {
    let x = randn(&[3, 4], 12)?;
    let clean = Rotary::new()?.forward(&x)?;
    let fired = std::cell::Cell::new(0);
    let zero_freq = || {
        Hooks::new().add("inv_freq.hook_point", |a: &Tensor, _| {
            fired.set(fired.get() + 1);
            a.zeros_like()
        })
    };
    // The very first run is edited: cos(0) = 1 everywhere, for this run only.
    let mut rotary = Rotary::new()?;
    let edited = rotary.run_with_hooks_mut(zero_freq(), |m| m.forward(&x))?;
    assert_eq!(edited.to_vec2::<f32>()?, x.to_vec2::<f32>()?);
    assert!(auto_hook::bit_identical(&rotary.forward(&x)?, &clean)?);
    let memo = rotary
        .cache
        .as_ref()
        .map(|(_, t)| t.clone())
        .expect("memoized");
    // With the memo filled, a hooked run still reaches the parameter, and leaves the memo.
    let again = rotary.run_with_hooks_mut(zero_freq(), |m| m.forward(&x))?;
    assert!(auto_hook::bit_identical(&again, &edited)?);
    assert_eq!(fired.get(), 2);
    let (_, kept) = rotary.cache.as_ref().expect("memo put back");
    assert!(auto_hook::bit_identical(kept, &memo)?);
    assert!(auto_hook::bit_identical(&rotary.forward(&x)?, &clean)?);

    // State computed from the input (a KV cache) keeps what the edited run wrote.
    let cfg = Config::tiny();
    let varmap = candle_nn::VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let mut block = Block::new(&cfg, vb)?;
    let zero_weight = Hooks::new().add("weight.hook_point", |a: &Tensor, _| a.zeros_like());
    block.run_with_hooks_mut(zero_weight, |m| m.forward(&randn(&[2, 4], 5)?))?;
    let (k, _) = block.kv_cache.as_ref().expect("written");
    assert_eq!(k.abs()?.sum_all()?.to_scalar::<f32>()?, 0.0);
    Ok(())
}

// Mamba's parameter forms: a local made by a view, an index, a method chain, a loop.
#[auto_hook]
pub struct Mixer {
    d: Tensor,
    a_log: Tensor,
    conv: [Tensor; 2],
    ws: Vec<Tensor>,
}

#[auto_hook]
impl Mixer {
    fn new() -> Result<Self> {
        Ok(Self {
            d: randn(&[4], 1)?,
            a_log: randn(&[4], 2)?,
            conv: [randn(&[4], 3)?, randn(&[4], 4)?],
            ws: vec![randn(&[4, 4], 5)?, randn(&[4, 4], 6)?],
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let d = self.d.to_dtype(DType::F32)?;
        let a = self.a_log.exp()?.neg()?;
        let mut h = self.conv[0].broadcast_mul(x)?;
        h = (h + self.conv[1].broadcast_mul(x)?)?;
        for w in self.ws.iter() {
            h = h.matmul(w)?;
        }
        h.broadcast_mul(&d)?
            .broadcast_add(&a)?
            .sum_keepdim(D::Minus1)
    }
}

#[test]
fn parameters_fire_through_locals_indexing_chains_and_loops() -> TestResult {
    let mixer = Mixer::new()?;
    let x = randn(&[3, 4], 7)?;
    let counts = Default::default();
    let shapes = std::cell::RefCell::new(HashMap::new());
    let hooks = counting(&counts).add("**", |t: &Tensor, info: &HookInfo| {
        shapes
            .borrow_mut()
            .insert(info.name().to_owned(), t.dims().to_vec());
    });
    let plain = mixer.forward(&x)?;
    let out = mixer.run_with_hooks(hooks, |m| m.forward(&x))?;
    assert_eq!(out.to_vec2::<f32>()?, plain.to_vec2::<f32>()?);
    let counts = counts.into_inner();
    for name in mixer.hook_point_names() {
        assert_eq!(counts.get(&name), Some(&1), "{name} fires once");
    }
    let shapes = shapes.into_inner();
    assert_eq!(shapes["d.hook_point"], [4], "the view of d itself");
    assert_eq!(shapes["a_log.hook_point"], [4], "exp(a_log)");
    assert_eq!(shapes["conv.1.hook_point"], [3, 4], "the product it feeds");
    assert_eq!(
        shapes["ws.1.hook_point"],
        [3, 4],
        "each loop element's matmul"
    );
    let zero_d = Hooks::new().add("d.hook_point", |t: &Tensor, _: &HookInfo| t.zeros_like());
    let edited = mixer.run_with_hooks(zero_d, |m| m.forward(&x))?;
    assert_ne!(edited.to_vec2::<f32>()?, plain.to_vec2::<f32>()?);
    Ok(())
}

// State: tensors stored after construction (Mamba's `State`), through `assign`.
#[auto_hook]
pub struct State {
    pub hs: Vec<Tensor>,
    pub prev: Vec<[Tensor; 2]>,
    pub pos: usize,
}

#[auto_hook]
impl State {
    pub fn new() -> Result<Self> {
        let z = Tensor::zeros((1, 2), DType::F32, &Device::Cpu)?;
        Ok(Self {
            hs: vec![z.clone()],
            prev: vec![[z.clone(), z]],
            pos: 0,
        })
    }
}

#[auto_hook]
pub struct Stepper {
    lin: Linear,
}

#[auto_hook]
impl Stepper {
    pub fn forward(&self, x: &Tensor, state: &mut State) -> Result<Tensor> {
        let y = self.lin.forward(x)?;
        state.prev[0][state.pos % 2] = y.clone();
        state.hs[0] = (&state.hs[0] + &y)?;
        state.pos += 1;
        Ok(y)
    }
}

#[auto_hook]
fn stepper() -> Result<Stepper> {
    let weight = Tensor::eye(2, DType::F32, &Device::Cpu)?;
    Ok(Stepper {
        lin: Linear::new(weight, None),
    })
}

#[test]
fn tensor_state_assigned_after_construction_compiles_and_updates() -> TestResult {
    let stepper = stepper()?;
    let mut state = State::new()?;
    let x = Tensor::new(&[[1f32, 2.0]], &Device::Cpu)?;
    stepper.forward(&x, &mut state)?;
    stepper.forward(&x, &mut state)?;
    assert_eq!(state.hs[0].to_vec2::<f32>()?, [[2.0, 4.0]]);
    assert_eq!(state.prev[0][1].to_vec2::<f32>()?, [[1.0, 2.0]]);
    assert_eq!(state.pos, 2);
    Ok(())
}

// Parameters passed to tensor functions, and selected from.
#[auto_hook]
pub struct Norm {
    weight: Tensor,
    prefix: Tensor,
    table: Tensor,
}

#[auto_hook]
impl Norm {
    fn forward(&self, x: &Tensor, ids: &Tensor) -> Result<Tensor> {
        let x = candle_nn::ops::rms_norm(x, &self.weight, 1e-5)?;
        let x = Tensor::cat(&[&self.prefix, &x], 0)?;
        x.broadcast_add(&self.table.index_select(ids, 0)?)
    }
}

#[test]
fn parameters_passed_to_tensor_functions_fire_on_the_result() -> TestResult {
    let norm = norm()?;
    let (x, ids) = (randn(&[2, 4], 3)?, Tensor::new(&[0u32], &Device::Cpu)?);
    let counts = Default::default();
    norm.run_with_hooks(counting(&counts), |m| m.forward(&x, &ids))?;
    let counts = counts.into_inner();
    for name in norm.hook_point_names() {
        assert_eq!(counts.get(&name), Some(&1), "{name} fires once");
    }
    Ok(())
}

#[auto_hook]
fn norm() -> Result<Norm> {
    Ok(Norm {
        weight: randn(&[4], 1)?,
        prefix: randn(&[1, 4], 2)?,
        table: randn(&[3, 4], 3)?,
    })
}

// Tuple structs are data; impls of types without the attribute (an enum of modules,
// as candle-transformers' `MlpOrMoe`) keep their forwards as they are.
#[auto_hook]
#[derive(Clone)]
pub struct Wrapper(Linear);

#[derive(Clone)]
pub enum MlpOrDense {
    Mlp(Box<Mlp>),
    Dense(Wrapper),
}

#[auto_hook]
impl Module for MlpOrDense {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Mlp(mlp) => mlp.forward(x),
            Self::Dense(Wrapper(linear)) => linear.forward(x),
        }
    }
}

#[test]
fn tuple_structs_and_enums_of_modules_pass_through() -> TestResult {
    let cfg = Config::tiny();
    let varmap = candle_nn::VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let mut inner = mlp(&cfg, vb.pp("m"))?;
    let fired = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = fired.clone();
    inner.add_hook("hook_point", move |_x: &Tensor, _: &HookInfo| {
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    })?;
    let dense = MlpOrDense::Dense(Wrapper(candle_nn::linear(4, 4, vb.pp("d"))?));
    let routed = MlpOrDense::Mlp(Box::new(inner));
    let x = randn(&[2, 4], 1)?;
    assert_eq!(dense.forward(&x)?.dims(), [2, 4]);
    assert_eq!(routed.forward(&x)?.dims(), [2, 4]);
    assert_eq!(
        fired.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "the Mlp inside the enum still fires its own point"
    );
    Ok(())
}
