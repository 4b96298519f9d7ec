//! Overhead of auto_hook on small transformer forwards (CPU, f32, batch 1).
//!
//! Every model is written once, in `define_models!`, and expanded twice: `plain` without
//! any attribute and `hooked` with `#[auto_hook]` on each struct and impl block. Both are
//! built from the same `VarMap`, so they share their weights, and a check outside the
//! timed code asserts that their outputs are bit-identical.
//!
//! Benchmark ids are `overhead/{config}/{variant}`:
//! - `plain`: the model without `#[auto_hook]`;
//! - `no_hooks`: the hooked model, plain `forward` call;
//! - `identity_all`: `run_with_hooks` with an identity hook on every point (`"**"`);
//! - `cache_all`: `run_with_cache(CacheOptions::all(), ..)`;
//! - `stop_at_first_block`: `run_with_cache_stop_at("blocks.0.**", ..)`.
//!
//! Run with `cargo bench -p auto_hook_dev --bench overhead`. After criterion, a full run also times paired
//! rounds (one forward per variant, random order) and writes the median ratio to `plain`
//! per config; `scripts/bench_ratios.py` turns both into the table of `BENCHMARKS.md`.

mod paired;

use auto_hook::nn::{LayerNorm, RmsNorm};
use auto_hook::prelude::*;
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Embedding, Linear, VarBuilder, VarMap};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode};
use paired::Run;
use std::collections::HashMap;
use std::time::Duration;

/// The two architectures of the benchmark.
#[derive(Clone, Copy, Debug)]
enum Arch {
    /// RmsNorm, rotary attention without biases, gated SiLU MLP.
    Llama,
    /// Token + position embeddings, LayerNorm, attention with biases, GELU MLP.
    Gpt2,
}

/// One benchmarked model size, with its criterion settings.
#[derive(Clone, Copy, Debug)]
struct Cfg {
    name: &'static str,
    arch: Arch,
    vocab: usize,
    d_model: usize,
    d_mlp: usize,
    n_layers: usize,
    n_heads: usize,
    seq: usize,
    sample_size: usize,
    warm_up: Duration,
    measurement: Duration,
    flat: bool,
    /// Rounds of the paired A/B comparison that follows criterion.
    paired_rounds: usize,
}

const CONFIGS: [Cfg; 3] = [
    Cfg {
        name: "tiny_llama",
        arch: Arch::Llama,
        vocab: 512,
        d_model: 64,
        d_mlp: 128,
        n_layers: 2,
        n_heads: 4,
        seq: 32,
        sample_size: 100,
        warm_up: Duration::from_secs(2),
        measurement: Duration::from_secs(8),
        flat: false,
        paired_rounds: 400,
    },
    Cfg {
        name: "tiny_gpt2",
        arch: Arch::Gpt2,
        vocab: 512,
        d_model: 128,
        d_mlp: 512,
        n_layers: 4,
        n_heads: 4,
        seq: 32,
        sample_size: 100,
        warm_up: Duration::from_secs(2),
        measurement: Duration::from_secs(8),
        flat: false,
        paired_rounds: 400,
    },
    Cfg {
        name: "gpt2_small",
        arch: Arch::Gpt2,
        vocab: 512,
        d_model: 768,
        d_mlp: 3072,
        n_layers: 12,
        n_heads: 12,
        seq: 64,
        sample_size: 30,
        warm_up: Duration::from_secs(3),
        measurement: Duration::from_secs(15),
        flat: true,
        paired_rounds: 60,
    },
];

/// `[t, t]`: 0 on and below the diagonal, -inf above.
fn causal_mask(t: usize, device: &Device) -> Result<Tensor> {
    let data: Vec<f32> = (0..t * t)
        .map(|i| {
            if i % t > i / t {
                f32::NEG_INFINITY
            } else {
                0.0
            }
        })
        .collect();
    Tensor::from_vec(data, (t, t), device)
}

/// Rotary tables `[seq, head_dim / 2]` (cos, sin), base 10000, row-major.
fn rope_tables(seq: usize, head_dim: usize) -> (Vec<f32>, Vec<f32>) {
    let half = head_dim / 2;
    let angles = (0..seq).flat_map(|p| {
        (0..half).map(move |i| p as f32 / 10000f32.powf(2.0 * i as f32 / head_dim as f32))
    });
    angles.map(|a| (a.cos(), a.sin())).unzip()
}

/// Emits each item after the attribute tokens in brackets.
macro_rules! with_attr {
    ([$($attr:tt)*]) => {};
    ([$($attr:tt)*] $item:item $($rest:item)*) => {
        $($attr)*
        $item
        with_attr!([$($attr)*] $($rest)*);
    };
}

/// The model source, written once: expanded in `mod plain` as written and in
/// `mod hooked` with `#[auto_hook]` on every struct and impl block.
macro_rules! define_models {
    ($($item:item)*) => {
        mod plain {
            use super::*;
            with_attr!([] $($item)*);
        }
        mod hooked {
            use super::*;
            with_attr!([#[auto_hook]] $($item)*);
        }
    };
}

define_models! {
    // -------------------------------------------------------------------- Llama

    pub struct LlamaAttention {
        q: Linear,
        k: Linear,
        v: Linear,
        o: Linear,
        n_heads: usize,
    }

    impl LlamaAttention {
        pub fn new(cfg: &Cfg, vb: VarBuilder) -> Result<Self> {
            let d = cfg.d_model;
            Ok(Self {
                q: candle_nn::linear_no_bias(d, d, vb.pp("q"))?,
                k: candle_nn::linear_no_bias(d, d, vb.pp("k"))?,
                v: candle_nn::linear_no_bias(d, d, vb.pp("v"))?,
                o: candle_nn::linear_no_bias(d, d, vb.pp("o"))?,
                n_heads: cfg.n_heads,
            })
        }

        pub fn forward(&self, x: &Tensor, mask: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
            let (b, t, d) = x.dims3()?;
            let hd = d / self.n_heads;
            let split = |y: Tensor| y.reshape((b, t, self.n_heads, hd))?.transpose(1, 2)?.contiguous();
            let q = auto_hook::ops::rope(&split(self.q.forward(x)?)?, cos, sin)?;
            let k = auto_hook::ops::rope(&split(self.k.forward(x)?)?, cos, sin)?;
            let v = split(self.v.forward(x)?)?;
            let scores = (q.matmul(&k.t()?)? * (1.0 / (hd as f64).sqrt()))?.broadcast_add(mask)?;
            let pattern = auto_hook::ops::softmax_last_dim(&scores)?;
            let z = pattern.matmul(&v)?.transpose(1, 2)?.reshape((b, t, d))?;
            self.o.forward(&z)
        }
    }

    pub struct LlamaMlp {
        gate: Linear,
        up: Linear,
        down: Linear,
    }

    impl LlamaMlp {
        pub fn new(cfg: &Cfg, vb: VarBuilder) -> Result<Self> {
            Ok(Self {
                gate: candle_nn::linear_no_bias(cfg.d_model, cfg.d_mlp, vb.pp("gate"))?,
                up: candle_nn::linear_no_bias(cfg.d_model, cfg.d_mlp, vb.pp("up"))?,
                down: candle_nn::linear_no_bias(cfg.d_mlp, cfg.d_model, vb.pp("down"))?,
            })
        }

        pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
            let gated = (self.gate.forward(x)?.silu()? * self.up.forward(x)?)?;
            self.down.forward(&gated)
        }
    }

    pub struct LlamaBlock {
        ln1: RmsNorm,
        attn: LlamaAttention,
        ln2: RmsNorm,
        mlp: LlamaMlp,
    }

    impl LlamaBlock {
        pub fn new(cfg: &Cfg, vb: VarBuilder) -> Result<Self> {
            Ok(Self {
                ln1: auto_hook::nn::rms_norm(cfg.d_model, 1e-5, vb.pp("ln1"))?,
                attn: LlamaAttention::new(cfg, vb.pp("attn"))?,
                ln2: auto_hook::nn::rms_norm(cfg.d_model, 1e-5, vb.pp("ln2"))?,
                mlp: LlamaMlp::new(cfg, vb.pp("mlp"))?,
            })
        }

        pub fn forward(&self, x: &Tensor, mask: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
            let h = (x + self.attn.forward(&self.ln1.forward(x)?, mask, cos, sin)?)?;
            &h + self.mlp.forward(&self.ln2.forward(&h)?)?
        }
    }

    pub struct Llama {
        embed: Embedding,
        blocks: Vec<LlamaBlock>,
        ln_final: RmsNorm,
        unembed: Linear,
        /// Rotary tables `[max_seq, head_dim / 2]`, row-major (data, not hooked).
        rope_cos: Vec<f32>,
        rope_sin: Vec<f32>,
        head_dim: usize,
    }

    impl Llama {
        pub fn new(cfg: &Cfg, vb: VarBuilder) -> Result<Self> {
            let head_dim = cfg.d_model / cfg.n_heads;
            let (rope_cos, rope_sin) = rope_tables(cfg.seq, head_dim);
            let blocks = (0..cfg.n_layers)
                .map(|i| LlamaBlock::new(cfg, vb.pp(format!("blocks.{i}"))))
                .collect::<Result<Vec<_>>>()?;
            Ok(Self {
                embed: candle_nn::embedding(cfg.vocab, cfg.d_model, vb.pp("embed"))?,
                blocks,
                ln_final: auto_hook::nn::rms_norm(cfg.d_model, 1e-5, vb.pp("ln_final"))?,
                unembed: candle_nn::linear_no_bias(cfg.d_model, cfg.vocab, vb.pp("unembed"))?,
                rope_cos,
                rope_sin,
                head_dim,
            })
        }

        /// Tokens `[batch, seq]` (u32) to logits `[batch, seq, vocab]`.
        pub fn forward(&self, tokens: &Tensor) -> Result<Tensor> {
            let (t, device) = (tokens.dim(1)?, tokens.device());
            let mask = causal_mask(t, device)?;
            let half = self.head_dim / 2;
            let cos = Tensor::from_slice(&self.rope_cos[..t * half], (t, half), device)?;
            let sin = Tensor::from_slice(&self.rope_sin[..t * half], (t, half), device)?;
            let mut x = self.embed.forward(tokens)?;
            for block in &self.blocks {
                x = block.forward(&x, &mask, &cos, &sin)?;
            }
            self.unembed.forward(&self.ln_final.forward(&x)?)
        }
    }

    // -------------------------------------------------------------------- GPT-2

    pub struct Gpt2Attention {
        q: Linear,
        k: Linear,
        v: Linear,
        o: Linear,
        n_heads: usize,
    }

    impl Gpt2Attention {
        pub fn new(cfg: &Cfg, vb: VarBuilder) -> Result<Self> {
            let d = cfg.d_model;
            Ok(Self {
                q: candle_nn::linear(d, d, vb.pp("q"))?,
                k: candle_nn::linear(d, d, vb.pp("k"))?,
                v: candle_nn::linear(d, d, vb.pp("v"))?,
                o: candle_nn::linear(d, d, vb.pp("o"))?,
                n_heads: cfg.n_heads,
            })
        }

        pub fn forward(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
            let (b, t, d) = x.dims3()?;
            let hd = d / self.n_heads;
            let split = |y: Tensor| y.reshape((b, t, self.n_heads, hd))?.transpose(1, 2)?.contiguous();
            let q = split(self.q.forward(x)?)?;
            let k = split(self.k.forward(x)?)?;
            let v = split(self.v.forward(x)?)?;
            let scores = (q.matmul(&k.t()?)? * (1.0 / (hd as f64).sqrt()))?.broadcast_add(mask)?;
            let pattern = auto_hook::ops::softmax_last_dim(&scores)?;
            let z = pattern.matmul(&v)?.transpose(1, 2)?.reshape((b, t, d))?;
            self.o.forward(&z)
        }
    }

    pub struct Gpt2Mlp {
        fc_in: Linear,
        fc_out: Linear,
    }

    impl Gpt2Mlp {
        pub fn new(cfg: &Cfg, vb: VarBuilder) -> Result<Self> {
            Ok(Self {
                fc_in: candle_nn::linear(cfg.d_model, cfg.d_mlp, vb.pp("fc_in"))?,
                fc_out: candle_nn::linear(cfg.d_mlp, cfg.d_model, vb.pp("fc_out"))?,
            })
        }

        pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
            self.fc_out.forward(&self.fc_in.forward(x)?.gelu()?)
        }
    }

    pub struct Gpt2Block {
        ln1: LayerNorm,
        attn: Gpt2Attention,
        ln2: LayerNorm,
        mlp: Gpt2Mlp,
    }

    impl Gpt2Block {
        pub fn new(cfg: &Cfg, vb: VarBuilder) -> Result<Self> {
            Ok(Self {
                ln1: auto_hook::nn::layer_norm(cfg.d_model, 1e-5, vb.pp("ln1"))?,
                attn: Gpt2Attention::new(cfg, vb.pp("attn"))?,
                ln2: auto_hook::nn::layer_norm(cfg.d_model, 1e-5, vb.pp("ln2"))?,
                mlp: Gpt2Mlp::new(cfg, vb.pp("mlp"))?,
            })
        }

        pub fn forward(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
            let h = (x + self.attn.forward(&self.ln1.forward(x)?, mask)?)?;
            &h + self.mlp.forward(&self.ln2.forward(&h)?)?
        }
    }

    pub struct Gpt2 {
        embed: Embedding,
        pos_embed: Embedding,
        blocks: Vec<Gpt2Block>,
        ln_final: LayerNorm,
        unembed: Linear,
    }

    impl Gpt2 {
        pub fn new(cfg: &Cfg, vb: VarBuilder) -> Result<Self> {
            let blocks = (0..cfg.n_layers)
                .map(|i| Gpt2Block::new(cfg, vb.pp(format!("blocks.{i}"))))
                .collect::<Result<Vec<_>>>()?;
            Ok(Self {
                embed: candle_nn::embedding(cfg.vocab, cfg.d_model, vb.pp("embed"))?,
                pos_embed: candle_nn::embedding(cfg.seq, cfg.d_model, vb.pp("pos_embed"))?,
                blocks,
                ln_final: auto_hook::nn::layer_norm(cfg.d_model, 1e-5, vb.pp("ln_final"))?,
                unembed: candle_nn::linear_no_bias(cfg.d_model, cfg.vocab, vb.pp("unembed"))?,
            })
        }

        /// Tokens `[batch, seq]` (u32) to logits `[batch, seq, vocab]`.
        pub fn forward(&self, tokens: &Tensor) -> Result<Tensor> {
            let (t, device) = (tokens.dim(1)?, tokens.device());
            let mask = causal_mask(t, device)?;
            let positions = Tensor::arange(0u32, t as u32, device)?;
            let mut x = self.embed.forward(tokens)?.broadcast_add(&self.pos_embed.forward(&positions)?)?;
            for block in &self.blocks {
                x = block.forward(&x, &mask)?;
            }
            self.unembed.forward(&self.ln_final.forward(&x)?)
        }
    }
}

/// Builds the plain and the hooked model of `cfg` from one set of random weights and
/// benchmarks the variants, one after the other. Forward variants use plain weight
/// tensors (as loaded from a checkpoint: inference, fused kernels); the backward variants
/// use `Var`s of the same values (training: differentiable kernels, see auto_hook::ops).
fn bench_config(c: &mut Criterion, cfg: &Cfg) {
    let device = Device::Cpu;
    let map = VarMap::new();
    let vars = VarBuilder::from_varmap(&map, DType::F32, &device);
    let ids: Vec<u32> = (0..cfg.seq)
        .map(|i| ((i * 7919 + 13) % cfg.vocab) as u32)
        .collect();
    let tokens = Tensor::from_vec(ids, (1, cfg.seq), &device).expect("tokens");
    macro_rules! models {
        ($plain:ty, $hooked:ty) => {{
            let plain_var = <$plain>::new(cfg, vars.clone()).expect("plain model");
            let hooked_var = <$hooked>::new(cfg, vars.clone()).expect("hooked model");
            let weights: HashMap<String, Tensor> = map
                .data()
                .lock()
                .expect("varmap")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_tensor().detach()))
                .collect();
            let vb = VarBuilder::from_tensors(weights, DType::F32, &device);
            let plain = <$plain>::new(cfg, vb.clone()).expect("plain model");
            let hooked = <$hooked>::new(cfg, vb).expect("hooked model");
            run_variants(
                c,
                cfg,
                &tokens,
                Models {
                    plain: |x: &Tensor| plain.forward(x),
                    hooked: &hooked,
                },
                Models {
                    plain: |x: &Tensor| plain_var.forward(x),
                    hooked: &hooked_var,
                },
                |m, x| m.forward(x),
            );
        }};
    }
    match cfg.arch {
        Arch::Llama => models!(plain::Llama, hooked::Llama),
        Arch::Gpt2 => models!(plain::Gpt2, hooked::Gpt2),
    }
}

/// A plain model's forward and its hooked twin.
struct Models<'h, P, H> {
    plain: P,
    hooked: &'h H,
}

fn loss(out: &Tensor) -> Result<Tensor> {
    out.sqr()?.sum_all()
}

/// The backward variants compute the same weight gradients (checked outside the timing).
fn check_backward<H: HookedRoot, V: Fn(&Tensor) -> Result<Tensor>>(
    cfg: &Cfg,
    tokens: &Tensor,
    training: &Models<'_, V, H>,
    forward: &impl Fn(&H, &Tensor) -> Result<Tensor>,
) {
    let out = (training.plain)(tokens).expect("plain forward");
    let plain_grads = loss(&out)
        .and_then(|l| l.backward())
        .expect("plain backward");
    let opts = CacheOptions::all().with_grads();
    let (out, cache) = training
        .hooked
        .run_with_cache(opts, |m| forward(m, tokens))
        .expect("grad cache run");
    let hooked_grads = loss(&out)
        .and_then(|l| l.backward())
        .expect("hooked backward");
    let (mut compared, mut cached) = (0, 0);
    for (name, _) in cache.iter() {
        cached += usize::from(cache.grad(name).is_ok());
    }
    for node in out.sorted_nodes().into_iter().filter(|t| t.is_variable()) {
        let (a, b) = (plain_grads.get(node), hooked_grads.get(node));
        if let (Some(a), Some(b)) = (a, b) {
            let diff = (a - b)
                .and_then(|d| d.abs()?.max_all()?.to_scalar::<f32>())
                .expect("diff");
            let scale = a
                .abs()
                .and_then(|d| d.max_all()?.to_scalar::<f32>())
                .expect("scale");
            assert!(
                diff <= 1e-5 * scale.max(1.0),
                "{}: weight gradients differ with a gradient cache",
                cfg.name
            );
            compared += 1;
        }
    }
    assert!(
        compared > 0 && cached == cache.len(),
        "{}: {compared} weights, {cached} cached grads",
        cfg.name
    );
}

fn bits(t: &Tensor) -> Vec<u32> {
    let values = t
        .flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .expect("f32 output");
    values.into_iter().map(f32::to_bits).collect()
}

fn run_variants<
    H: HookedRoot,
    P: Fn(&Tensor) -> Result<Tensor>,
    V: Fn(&Tensor) -> Result<Tensor>,
>(
    c: &mut Criterion,
    cfg: &Cfg,
    tokens: &Tensor,
    inference: Models<'_, P, H>,
    training: Models<'_, V, H>,
    forward: impl Fn(&H, &Tensor) -> Result<Tensor>,
) {
    let (plain, hooked) = (&inference.plain, inference.hooked);
    let (plain_var, hooked_var) = (&training.plain, training.hooked);
    // Checks, outside the timed code.
    let expected = plain(tokens).expect("plain forward");
    assert_eq!(expected.dims(), [1, cfg.seq, cfg.vocab]);
    let unhooked = forward(hooked, tokens).expect("hooked forward");
    assert_eq!(
        bits(&expected),
        bits(&unhooked),
        "{}: plain and no_hooks outputs differ",
        cfg.name
    );
    let identity = hooked.run_with_hooks(Hooks::new().add("**", |x, _| x.clone()), |m| {
        forward(m, tokens)
    });
    assert_eq!(
        bits(&expected),
        bits(&identity.expect("identity run")),
        "{}: identity hooks changed the output",
        cfg.name
    );
    let (_, cache) = hooked
        .run_with_cache(CacheOptions::all(), |m| forward(m, tokens))
        .expect("cache run");
    let n_points = hooked.hook_dict().len();
    assert!(
        cache.len() >= n_points,
        "{}: {} cached of {n_points} points",
        cfg.name,
        cache.len()
    );
    let first = hooked
        .run_with_cache_stop_at("blocks.0.**", |m| forward(m, tokens))
        .expect("stop_at run");
    assert!(first.len() < cache.len());
    eprintln!(
        "{}: {n_points} hook points, stop_at_first_block caches {} of {} activations",
        cfg.name,
        first.len(),
        cache.len()
    );

    // The variants, each one forward (the backward ones: forward + backward); the same closures feed criterion and the
    // paired A/B rounds.
    check_backward(cfg, tokens, &training, &forward);
    let variants: [(&str, Run); 7] = [
        (
            "plain",
            Box::new(|| drop(black_box(plain(tokens).unwrap()))),
        ),
        (
            "no_hooks",
            Box::new(|| drop(black_box(forward(hooked, tokens).unwrap()))),
        ),
        (
            "identity_all",
            Box::new(|| {
                let hooks = Hooks::new().add("**", |x, _| x.clone());
                drop(black_box(
                    hooked
                        .run_with_hooks(hooks, |m| forward(m, tokens))
                        .unwrap(),
                ))
            }),
        ),
        (
            "cache_all",
            Box::new(|| {
                let run = hooked.run_with_cache(CacheOptions::all(), |m| forward(m, tokens));
                drop(black_box(run.unwrap()))
            }),
        ),
        (
            "backward_plain",
            Box::new(|| {
                let grads = loss(&plain_var(tokens).unwrap()).unwrap().backward();
                drop(black_box(grads.unwrap()))
            }),
        ),
        (
            "backward_cache",
            Box::new(|| {
                let opts = CacheOptions::all().with_grads();
                let (out, cache) = hooked_var
                    .run_with_cache(opts, |m| forward(m, tokens))
                    .unwrap();
                let grads = loss(&out).unwrap().backward().unwrap();
                drop(black_box((grads, cache)))
            }),
        ),
        (
            "stop_at_first_block",
            Box::new(|| {
                let run = hooked.run_with_cache_stop_at("blocks.0.**", |m| forward(m, tokens));
                drop(black_box(run.unwrap()))
            }),
        ),
    ];

    let mut group = c.benchmark_group("overhead");
    group
        .sample_size(cfg.sample_size)
        .warm_up_time(cfg.warm_up)
        .measurement_time(cfg.measurement);
    if cfg.flat {
        group.sampling_mode(SamplingMode::Flat);
    }
    for (variant, run) in &variants {
        group.bench_function(BenchmarkId::new(cfg.name, *variant), |b| b.iter(run));
    }
    group.finish();

    if paired::enabled() {
        paired_rounds(cfg, &variants);
    }
}

/// Runs `cfg.paired_rounds` paired rounds (see `paired`) and writes each variant's median
/// time ratio to its baseline, with a 95% confidence interval, to
/// `target/criterion/overhead/{config}/paired.json`, read by `scripts/bench_ratios.py`.
/// Backward variants compare with the plain forward + backward; the rest with plain.
fn paired_rounds(cfg: &Cfg, variants: &[(&str, Run)]) {
    let times = paired::time_rounds(variants, cfg.paired_rounds);
    let backward_plain = variants.iter().position(|(v, _)| *v == "backward_plain");
    let mut json = Vec::new();
    for (i, (variant, _)) in variants.iter().enumerate() {
        let baseline = match backward_plain {
            Some(b) if variant.starts_with("backward_") => b,
            _ => 0,
        };
        let (lo, mid, hi) = paired::ratio(&times, i, baseline);
        let m = cfg.paired_rounds;
        println!(
            "{}/{variant}: paired ratio vs its baseline {mid:.4} (95% CI {lo:.4}..{hi:.4}, {m} rounds)",
            cfg.name
        );
        json.push(format!(
            "\"{variant}\": {{\"median\": {mid}, \"ci_low\": {lo}, \"ci_high\": {hi}, \"rounds\": {m}}}"
        ));
    }
    let crate_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = paired::target_dir(crate_dir.parent().unwrap_or(crate_dir))
        .join("criterion/overhead")
        .join(cfg.name);
    paired::write_json(&dir, &json);
}

fn overhead(c: &mut Criterion) {
    for cfg in &CONFIGS {
        bench_config(c, cfg);
    }
}

criterion_group!(benches, overhead);
criterion_main!(benches);
