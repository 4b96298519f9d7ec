//! Attribution by activation × gradient: which hook point matters most for one output.
//! Gradients come from `run_with_cache` with `with_grads()`; the model is built with
//! auto_hook's differentiable LayerNorm so gradients reach every point.
//!
//! cargo run --release --example gradients

use auto_hook::prelude::*;
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder, VarMap};

#[auto_hook]
struct Block {
    ln: auto_hook::nn::LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

#[auto_hook]
impl Block {
    fn new(d: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            ln: auto_hook::nn::layer_norm(d, 1e-5, vb.pp("ln"))?,
            fc1: candle_nn::linear(d, 4 * d, vb.pp("fc1"))?,
            fc2: candle_nn::linear(4 * d, d, vb.pp("fc2"))?,
        })
    }
}

#[auto_hook]
impl Module for Block {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x + self
            .fc2
            .forward(&self.fc1.forward(&self.ln.forward(x)?)?.gelu()?)?
    }
}

#[auto_hook]
struct Classifier {
    blocks: Vec<Block>,
    head: Linear,
}

#[auto_hook]
impl Classifier {
    fn new(d: usize, n_classes: usize, vb: VarBuilder) -> Result<Self> {
        let blocks = (0..3)
            .map(|i| Block::new(d, vb.pp(format!("blocks.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            blocks,
            head: candle_nn::linear(d, n_classes, vb.pp("head"))?,
        })
    }
}

#[auto_hook]
impl Module for Classifier {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for block in &self.blocks {
            h = block.forward(&h)?;
        }
        self.head.forward(&h)
    }
}

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let varmap = VarMap::new();
    let model = Classifier::new(
        16,
        4,
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
    )?;
    let x = Tensor::randn(0f32, 1.0, (1, 16), &Device::Cpu)?;

    let (logits, cache) =
        model.run_with_cache(CacheOptions::all().with_grads(), |m| m.forward(&x))?;
    let target = logits.flatten_all()?.argmax(0)?.to_scalar::<u32>()? as usize;
    println!(
        "logits {:?}; attributing class {target}",
        logits.flatten_all()?.to_vec1::<f32>()?
    );
    logits.flatten_all()?.get(target)?.backward()?;

    // activation · gradient, summed over the point: the first-order effect of the whole
    // activation on the chosen logit.
    let mut scores = Vec::new();
    for (name, act) in cache.iter() {
        let grad = cache.grad(name)?;
        scores.push((
            name.to_owned(),
            (act * grad)?.sum_all()?.to_scalar::<f32>()?,
        ));
    }
    scores.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
    println!("\n{:<26} {:>10}", "hook point", "act·grad");
    for (name, score) in &scores {
        println!("{name:<26} {score:>10.4}");
    }
    println!("\nmost important point for class {target}: {}", scores[0].0);

    // Backward hooks edit gradients: zero the gradient through blocks.1's MLP and see
    // how much of the input's gradient goes away.
    let input_grad = |hooks: Hooks| -> std::result::Result<f32, Box<dyn std::error::Error>> {
        let (out, cache) = model.run_with_cache(
            CacheOptions::names("blocks.0.ln.hook_point").with_grads(),
            |m| m.run_with_hooks(hooks, |m| m.forward(&x)),
        )?;
        out.flatten_all()?.get(target)?.backward()?;
        Ok(cache
            .grad("blocks.0.ln.hook_point")?
            .abs()?
            .sum_all()?
            .to_scalar::<f32>()?)
    };
    let full = input_grad(Hooks::new())?;
    let cut = input_grad(Hooks::new().backward("blocks.1.fc2.hook_point", |g, _| g.zeros_like()))?;
    println!(
        "|grad| at blocks.0.ln: {full:.4} with every path, {cut:.4} with blocks.1's MLP path cut"
    );
    Ok(())
}
