//! `#[auto_hook]` on a model of your own, in one screen: annotate a candle model, list
//! its hook points, edit an activation with a hook, cache activations, and stop a
//! forward early.
//!
//! cargo run --release --example annotate

use auto_hook::prelude::*;
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{LayerNorm, Linear, VarBuilder, VarMap};

/// A residual MLP block.
#[auto_hook]
pub struct Block {
    ln: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

#[auto_hook]
impl Block {
    pub fn new(d: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            ln: candle_nn::layer_norm(d, 1e-5, vb.pp("ln"))?,
            fc1: candle_nn::linear(d, 4 * d, vb.pp("fc1"))?,
            fc2: candle_nn::linear(4 * d, d, vb.pp("fc2"))?,
        })
    }
}

#[auto_hook]
impl Module for Block {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.fc1.forward(&self.ln.forward(x)?)?.gelu()?;
        x + self.fc2.forward(&h)?
    }
}

/// A stack of blocks and a readout.
#[auto_hook]
pub struct Model {
    blocks: Vec<Block>,
    readout: Linear,
}

#[auto_hook]
impl Model {
    pub fn new(d: usize, n_blocks: usize, vb: VarBuilder) -> Result<Self> {
        let blocks = (0..n_blocks)
            .map(|i| Block::new(d, vb.pp(format!("blocks.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            blocks,
            readout: candle_nn::linear(d, 2, vb.pp("readout"))?,
        })
    }
}

#[auto_hook]
impl Module for Model {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for block in &self.blocks {
            h = block.forward(&h)?;
        }
        self.readout.forward(&h)
    }
}

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let varmap = VarMap::new();
    let model = Model::new(
        16,
        3,
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
    )?;
    let x = Tensor::randn(0f32, 1.0, (1, 16), &Device::Cpu)?;

    println!("hook-name patterns of the type: {:?}", Model::hook_names());
    println!(
        "hook points of this model ({}):",
        model.hook_point_names().len()
    );
    for name in model.hook_point_names() {
        println!("  {name}");
    }

    let clean = model.forward(&x)?;
    println!("\nclean output:                 {}", fmt(&clean)?);

    // Edit one activation: zero the MLP hidden layer of block 1 (a compile-checked name).
    let ablate = Hooks::new().add(hook_name!(Model, "blocks.1.fc1.hook_point"), |act, _| {
        act.zeros_like()
    });
    let ablated = model.run_with_hooks(ablate, |m| m.forward(&x))?;
    println!("blocks.1.fc1 zero-ablated:    {}", fmt(&ablated)?);

    // Read without editing: a hook that returns () (or Ok(())) keeps the activation.
    let mut norms = Vec::new();
    let read = Hooks::new().add("blocks.*.hook_point", |act, hook| -> Result<()> {
        let norm = act.sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()?;
        norms.push((hook.name().to_owned(), norm));
        Ok(())
    });
    model.run_with_hooks(read, |m| m.forward(&x))?;
    for (name, norm) in &norms {
        println!("  residual norm at {name:<22} {norm:.3}");
    }

    // Cache every activation, then stack the residual stream across blocks.
    let (out, cache) = model.run_with_cache(CacheOptions::all(), |m| m.forward(&x))?;
    println!(
        "\ncached {} activations; output unchanged: {}",
        cache.len(),
        fmt(&out)? == fmt(&clean)?
    );
    println!(
        "stacked residual stream: {:?}",
        cache.stack("blocks.*.hook_point")?.dims()
    );

    // Stop early: only block 0 runs; nothing after its last hook point is computed.
    let early = model.run_with_cache_stop_at("blocks.0.**", |m| m.forward(&x))?;
    println!(
        "stop_at blocks.0.**: cached {:?}",
        early.names().collect::<Vec<_>>()
    );

    // A misspelled name is an error that suggests the nearest names.
    let err = model
        .run_with_hooks(
            Hooks::new().add("blocks.1.fc_1.hook_point", |_, _| ()),
            |m| m.forward(&x),
        )
        .unwrap_err();
    println!("\nmisspelled name -> {err}");
    Ok(())
}

fn fmt(t: &Tensor) -> Result<String> {
    let v = t.flatten_all()?.to_vec1::<f32>()?;
    Ok(v.iter()
        .map(|x| format!("{x:+.4}"))
        .collect::<Vec<_>>()
        .join(" "))
}
