//! Small models that the integration tests hook: the same shapes the original Python
//! library tests (one Linear, an autoencoder, a map of modules, nested blocks, a small
//! transformer block), plus the corner cases of the macro.
#![allow(dead_code)]

use auto_hook::prelude::*;
use candle_core::{DType, Device, Module, ModuleT, Result, Tensor};
use candle_nn::{Dropout, Embedding, LayerNorm, Linear, VarBuilder, VarMap};
use std::collections::{BTreeMap, HashMap};

/// A VarBuilder over fresh random weights.
pub fn random_vb() -> (VarMap, VarBuilder<'static>) {
    let map = VarMap::new();
    let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
    (map, vb)
}

pub fn randn(shape: &[usize]) -> Tensor {
    Tensor::randn(0f32, 1.0, shape, &Device::Cpu).expect("randn on cpu")
}

/// The decorator example: one Linear.
#[auto_hook]
#[derive(Debug, Clone)]
pub struct OneLinear {
    fc1: Linear,
}

#[auto_hook]
impl OneLinear {
    pub fn new(vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            fc1: candle_nn::linear(4, 3, vb.pp("fc1"))?,
        })
    }
}

#[auto_hook]
impl Module for OneLinear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc1.forward(x)
    }
}

/// The sparse autoencoder of the original library: four Tensor parameters.
#[auto_hook]
#[derive(Debug, Clone)]
pub struct AutoEncoder {
    #[auto_hook(rename = "W_enc")]
    w_enc: Tensor,
    #[auto_hook(rename = "W_dec")]
    w_dec: Tensor,
    b_enc: Tensor,
    b_dec: Tensor,
    /// Not a parameter: data.
    #[auto_hook(skip)]
    l1_coeff: Tensor,
}

#[auto_hook]
impl AutoEncoder {
    pub fn new(d_in: usize, d_hidden: usize) -> Result<Self> {
        Ok(Self {
            w_enc: randn(&[d_in, d_hidden]),
            w_dec: randn(&[d_hidden, d_in]),
            b_enc: randn(&[d_hidden]),
            b_dec: randn(&[d_in]),
            l1_coeff: Tensor::new(3e-4f32, &Device::Cpu)?,
        })
    }

    /// From given tensors (`Var`s to read parameter gradients, f64 for finite differences).
    pub fn from_tensors(w_enc: Tensor, w_dec: Tensor, b_enc: Tensor, b_dec: Tensor) -> Self {
        let l1_coeff = Tensor::new(3e-4f32, &Device::Cpu).expect("scalar");
        Self {
            w_enc,
            w_dec,
            b_enc,
            b_dec,
            l1_coeff,
        }
    }

    pub fn encoder_weight(&self) -> Tensor {
        self.w_enc.clone()
    }
}

#[auto_hook]
impl Module for AutoEncoder {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x_cent = x.broadcast_sub(&self.b_dec)?;
        let acts = x_cent
            .matmul(&self.w_enc)?
            .broadcast_add(&self.b_enc)?
            .relu()?;
        acts.matmul(&self.w_dec)?.broadcast_add(&self.b_dec)
    }
}

/// A small MLP with a manual hook point around relu.
#[auto_hook]
#[derive(Debug, Clone)]
pub struct Mlp {
    fc1: Linear,
    fc2: Linear,
    hook_relu: HookPoint,
}

#[auto_hook]
impl Mlp {
    pub fn new(d: usize, d_mlp: usize, vb: VarBuilder) -> Result<Self> {
        let fc1 = candle_nn::linear(d, d_mlp, vb.pp("fc1"))?;
        let fc2 = candle_nn::linear(d_mlp, d, vb.pp("fc2"))?;
        Ok(Self {
            fc1,
            fc2,
            hook_relu: HookPoint::new(),
        })
    }
}

#[auto_hook]
impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.hook_relu.forward(&self.fc1.forward(x)?.relu()?)?;
        self.fc2.forward(&h)
    }
}

/// A map-of-modules model (PyTorch's ModuleDict).
#[auto_hook]
pub struct Router {
    experts: HashMap<String, Linear>,
    gates: BTreeMap<String, Mlp>,
}

#[auto_hook]
impl Router {
    pub fn new(vb: VarBuilder) -> Result<Self> {
        let mut experts = HashMap::new();
        for name in ["gate", "up", "down"] {
            experts.insert(name.to_owned(), candle_nn::linear(4, 4, vb.pp(name))?);
        }
        let mut gates = BTreeMap::new();
        gates.insert("b".to_owned(), Mlp::new(4, 8, vb.pp("gates.b"))?);
        gates.insert("a".to_owned(), Mlp::new(4, 8, vb.pp("gates.a"))?);
        Ok(Self { experts, gates })
    }
}

#[auto_hook]
impl Module for Router {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut keys: Vec<&String> = self.experts.keys().collect();
        keys.sort();
        let mut out = x.clone();
        for k in keys {
            out = (out + self.experts[k].forward(x)?)?;
        }
        for gate in self.gates.values() {
            out = gate.forward(&out)?;
        }
        Ok(out)
    }
}

/// Multi-head self-attention with a mask argument and a manual `hook_pattern`.
#[auto_hook]
#[derive(Debug, Clone)]
pub struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    n_heads: usize,
    hook_pattern: HookPoint,
}

#[auto_hook]
impl Attention {
    pub fn new(d: usize, n_heads: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            q: candle_nn::linear(d, d, vb.pp("q"))?,
            k: candle_nn::linear(d, d, vb.pp("k"))?,
            v: candle_nn::linear(d, d, vb.pp("v"))?,
            o: candle_nn::linear(d, d, vb.pp("o"))?,
            n_heads,
            hook_pattern: HookPoint::new(),
        })
    }

    pub fn forward(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        let hd = d / self.n_heads;
        let split = |y: Tensor| {
            y.reshape((b, t, self.n_heads, hd))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = split(self.q.forward(x)?)?;
        let k = split(self.k.forward(x)?)?;
        let v = split(self.v.forward(x)?)?;
        let scores = (q.matmul(&k.t()?)? / (hd as f64).sqrt())?.broadcast_add(mask)?;
        let pattern = self
            .hook_pattern
            .forward(&auto_hook::ops::softmax_last_dim(&scores)?)?;
        let z = pattern.matmul(&v)?.transpose(1, 2)?.reshape((b, t, d))?;
        self.o.forward(&z)
    }
}

/// A pre-LayerNorm transformer block: attention with a mask, MLP, residuals. Built
/// with auto_hook's differentiable LayerNorm and softmax, so gradients reach every weight.
#[auto_hook]
#[derive(Debug, Clone)]
pub struct Block {
    ln1: auto_hook::nn::LayerNorm,
    attn: Attention,
    ln2: auto_hook::nn::LayerNorm,
    mlp: Mlp,
}

#[auto_hook]
impl Block {
    pub fn new(d: usize, n_heads: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            ln1: auto_hook::nn::layer_norm(d, 1e-5, vb.pp("ln1"))?,
            attn: Attention::new(d, n_heads, vb.pp("attn"))?,
            ln2: auto_hook::nn::layer_norm(d, 1e-5, vb.pp("ln2"))?,
            mlp: Mlp::new(d, 4 * d, vb.pp("mlp"))?,
        })
    }

    pub fn forward(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let h = (x + self.attn.forward(&self.ln1.forward(x)?, mask)?)?;
        &h + self.mlp.forward(&self.ln2.forward(&h)?)?
    }
}

/// A causal mask `[t, t]`: 0 on and below the diagonal, -inf above.
pub fn causal_mask(t: usize) -> Tensor {
    let data: Vec<f32> = (0..t * t)
        .map(|i| {
            if i % t > i / t {
                f32::NEG_INFINITY
            } else {
                0.0
            }
        })
        .collect();
    Tensor::from_vec(data, (t, t), &Device::Cpu).expect("mask")
}

/// A nested `Vec` of annotated blocks under an embedding, returning a tuple. Its final
/// norm is candle-nn's fused LayerNorm, which has no backward.
#[auto_hook]
pub struct Stack {
    embed: Embedding,
    layers: Vec<Block>,
    ln_final: LayerNorm,
    d_model: usize,
}

#[auto_hook]
impl Stack {
    pub fn new(n_layers: usize, vb: VarBuilder) -> Result<Self> {
        let layers = (0..n_layers)
            .map(|i| Block::new(16, 4, vb.pp(format!("layers.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            embed: candle_nn::embedding(32, 16, vb.pp("embed"))?,
            layers,
            ln_final: candle_nn::layer_norm(16, 1e-5, vb.pp("ln_final"))?,
            d_model: 16,
        })
    }

    /// Returns the final residual and the number of layers run.
    pub fn forward(&self, tokens: &Tensor) -> Result<(Tensor, usize)> {
        let mask = causal_mask(tokens.dim(1)?);
        let mut x = self.embed.forward(tokens)?;
        for layer in &self.layers {
            x = layer.forward(&x, &mask)?;
        }
        Ok((self.ln_final.forward(&x)?, self.layers.len()))
    }
}

/// Corner cases: Option, Box, arrays, ModuleT, generics, cfg'd fields.
#[auto_hook]
#[derive(Clone)]
pub struct Corners<M: Module + Clone> {
    maybe: Option<Linear>,
    absent: Option<Linear>,
    boxed: Box<Mlp>,
    pair: [Linear; 2],
    dropout: Dropout,
    inner: M,
    #[cfg(any())]
    compiled_out: Linear,
    bias: Option<Tensor>,
    /// Built but never used by the forward: its point never fires.
    spare: Option<Linear>,
}

#[auto_hook]
impl<M: Module + Clone + HookedModule> Corners<M> {
    pub fn new(inner: M, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            maybe: Some(candle_nn::linear(4, 4, vb.pp("maybe"))?),
            absent: None,
            boxed: Box::new(Mlp::new(4, 8, vb.pp("boxed"))?),
            pair: [
                candle_nn::linear(4, 4, vb.pp("p0"))?,
                candle_nn::linear(4, 4, vb.pp("p1"))?,
            ],
            dropout: Dropout::new(0.5),
            inner,
            bias: Some(randn(&[3])),
            spare: Some(candle_nn::linear(4, 4, vb.pp("spare"))?),
        })
    }
}

#[auto_hook]
impl<M: Module + Clone + HookedModule> ModuleT for Corners<M> {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut h = self
            .maybe
            .as_ref()
            .map_or(Ok(x.clone()), |m| m.forward(x))?;
        h = self.boxed.forward(&h)?;
        for p in &self.pair {
            h = p.forward(&h)?;
        }
        h = self.dropout.forward(&h, train)?;
        h = self.inner.forward(&h)?;
        match &self.bias {
            Some(b) => h.broadcast_add(b),
            None => Ok(h),
        }
    }
}

/// An optional bias used through `if let Some(b) = &self.bias`.
#[auto_hook]
pub struct Biased {
    weight: Tensor,
    bias: Option<Tensor>,
}

#[auto_hook]
impl Biased {
    pub fn new(with_bias: bool) -> Self {
        Self {
            weight: randn(&[4, 3]),
            bias: with_bias.then(|| randn(&[3])),
        }
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.matmul(&self.weight)?;
        if let Some(b) = &self.bias {
            return y.broadcast_add(b);
        }
        Ok(y)
    }
}

/// Two Linears `4 → 8 → 4` with a relu between and no point of its own making: its
/// points are `hook_point`, `fc1.hook_point` and `fc2.hook_point`. An annotated model that
/// is also a candle `Module`.
#[auto_hook]
pub struct TwoLinear {
    fc1: Linear,
    fc2: Linear,
}

#[auto_hook]
impl TwoLinear {
    pub fn new(vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            fc1: candle_nn::linear(4, 8, vb.pp("fc1"))?,
            fc2: candle_nn::linear(8, 4, vb.pp("fc2"))?,
        })
    }
}

#[auto_hook]
impl Module for TwoLinear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.fc2.forward(&self.fc1.forward(x)?.relu()?)
    }
}

/// One Linear `4 → 4` and a relu, with a `&mut self` forward (state kept in the model)
/// that counts its calls in `calls`.
#[auto_hook]
pub struct CountingLinear {
    fc: Linear,
    pub calls: usize,
}

#[auto_hook]
impl CountingLinear {
    pub fn new(vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            fc: candle_nn::linear(4, 4, vb.pp("fc"))?,
            calls: 0,
        })
    }

    pub fn forward(&mut self, x: &Tensor) -> Result<Tensor> {
        self.calls += 1;
        self.fc.forward(x)?.relu()
    }
}
