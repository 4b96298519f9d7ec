//! SAE training speed at real sizes (issue 17): d_in 768 / d_sae 6144 and SmolLM2's
//! d_in 576 / d_sae 9216, 4096 tokens per step, f32, CPU, every architecture; and the
//! matrix products of a standard step alone, the machine's gemm rate for these shapes.
//!
//! - `sae_step_real/{d_in}x{d_sae}/{architecture}`: one `SaeTrainer::step` (forward, loss,
//!   backward, clipping, Adam, dead-feature tracking) on a fixed batch, after one untimed
//!   step; topk and batchtopk with k = 32; matryoshka_batchtopk with k = 32 and five levels, widths
//!   `d_sae / 16, / 8, / 4, / 2` and `d_sae` (halving, as the paper's nested dictionaries;
//!   SAELens's side the same), without the per-level aux-k loss (SAELens's default); the
//!   transcoders by `SaeTrainer::step_pair` towards a fixed random target of width
//!   d_out = d_in.
//! - `gemm/{m}x{k}x{n}`: one `[m, k] · [k, n]` product by the `gemm` crate (the kernel of
//!   candle's CPU matmul and of the SAE step), row-major operands, the output buffer
//!   reused, on candle's thread count; the shapes of the five products of a standard
//!   step (encode, decode, ∂f, ∂W_dec, ∂W_enc). Throughput is in FLOP.
//!
//! cargo bench -p auto_hook_sae --bench sae_real           (both threads)
//! RAYON_NUM_THREADS=1 cargo bench -p auto_hook_sae --bench sae_real
//! SAELens's and torch's side: scripts/bench_sae_saelens.py --real

use auto_hook::rng::Rng;
use auto_hook_sae::*;
use candle_core::{Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use std::time::Duration;

const TOKENS: usize = 4096;
const SIZES: [(usize, usize); 2] = [(768, 6144), (576, 9216)];

fn archs() -> [(&'static str, Architecture); 9] {
    let transcoder = |jumprelu, skip| Architecture::Transcoder { jumprelu, skip };
    [
        ("standard", Architecture::Standard),
        ("topk", Architecture::TopK { k: 32 }),
        ("batchtopk", Architecture::BatchTopK { k: 32.0 }),
        ("jumprelu", Architecture::JumpRelu),
        ("gated", Architecture::Gated),
        (
            "matryoshka_batchtopk",
            Architecture::MatryoshkaBatchTopK { k: 32.0 },
        ),
        // d_out = d_in, trained by `step_pair` towards a fixed random target
        ("transcoder", transcoder(false, false)),
        ("skip_transcoder", transcoder(false, true)),
        ("jumprelu_transcoder", transcoder(true, false)),
    ]
}

/// The matryoshka levels of the bench: `d_sae / 16, / 8, / 4, / 2, d_sae`.
fn matryoshka_widths(d_sae: usize) -> Vec<usize> {
    [16, 8, 4, 2, 1].map(|f| d_sae / f).to_vec()
}

fn sae_step_real(c: &mut Criterion) {
    let mut group = c.benchmark_group("sae_step_real");
    // Seconds per step: one step per sample, ten samples (criterion's minimum).
    group
        .throughput(Throughput::Elements(TOKENS as u64))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(10));
    for (d_in, d_sae) in SIZES {
        let x = Tensor::randn(0f32, 1.0, (TOKENS, d_in), &Device::Cpu).unwrap();
        let y = Tensor::randn(0f32, 1.0, (TOKENS, d_in), &Device::Cpu).unwrap();
        for (name, arch) in archs() {
            let pair = name.contains("transcoder");
            let run = |trainer: &mut SaeTrainer, step| {
                if pair {
                    trainer.step_pair(&x, &y, step, 1_000_000).unwrap();
                } else {
                    trainer.step(&x, step, 1_000_000).unwrap();
                }
            };
            // Built on the first call (criterion calls this once per sample): a
            // filtered-out bench makes no SAE. Its first step (buffers allocated and
            // first touched, Adam's moments) is untimed, as SAELens's side times steps
            // after one.
            let mut trainer = None;
            let mut step = 1;
            group.bench_function(format!("{d_in}x{d_sae}/{name}"), |b| {
                let trainer = trainer.get_or_insert_with(|| {
                    let mut sae =
                        SaeConfig::new(d_in, d_sae, arch).with_hook("blocks.0.hook_resid_post");
                    if pair {
                        sae = sae.with_hook_out("blocks.0.hook_mlp_out", d_in);
                    }
                    let mut cfg = SaeTrainConfig::new(sae);
                    if let Architecture::MatryoshkaBatchTopK { .. } = arch {
                        cfg.matryoshka_widths = matryoshka_widths(d_sae);
                    }
                    let mut trainer = SaeTrainer::new(cfg, &Device::Cpu).unwrap();
                    run(&mut trainer, 0);
                    trainer
                });
                b.iter(|| {
                    run(trainer, step);
                    step += 1;
                })
            });
        }
    }
    group.finish();
}

/// The `[m, k, n]` shapes of a standard step's five products (encode and ∂f share one).
fn product_shapes(d_in: usize, d_sae: usize) -> [(usize, usize, usize); 4] {
    [
        (TOKENS, d_in, d_sae),
        (TOKENS, d_sae, d_in),
        (d_sae, TOKENS, d_in),
        (d_in, TOKENS, d_sae),
    ]
}

fn gemm_rate(c: &mut Criterion) {
    let mut group = c.benchmark_group("gemm");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(3));
    for (d_in, d_sae) in SIZES {
        for (m, k, n) in product_shapes(d_in, d_sae) {
            // Made on the first call, as the SAEs above.
            let mut buffers = None;
            group.throughput(Throughput::Elements((2 * m * k * n) as u64));
            group.bench_function(format!("{m}x{k}x{n}"), |bench| {
                let (a, b, dst) = buffers.get_or_insert_with(|| {
                    let mut rng = Rng::new(0);
                    let a: Vec<f32> = (0..m * k).map(|_| rng.normal() as f32).collect();
                    let b: Vec<f32> = (0..k * n).map(|_| rng.normal() as f32).collect();
                    let mut dst = vec![0f32; m * n];
                    // One untimed product (the output's pages first touched), as
                    // torch's side takes the best after one.
                    product(&mut dst, &a, &b, (m, k, n));
                    (a, b, dst)
                });
                bench.iter(|| product(dst, a, b, (m, k, n)))
            });
        }
    }
    group.finish();
}

/// `dst = a · b`, row-major, as candle's CPU matmul calls the `gemm` crate.
fn product(dst: &mut [f32], a: &[f32], b: &[f32], (m, k, n): (usize, usize, usize)) {
    assert!(a.len() == m * k && b.len() == k * n && dst.len() == m * n);
    let threads = candle_core::utils::get_num_threads();
    let parallelism = match threads {
        1 => gemm::Parallelism::None,
        t => gemm::Parallelism::Rayon(t),
    };
    // SAFETY: the three buffers are exactly `m × k`, `k × n` and `m × n`, row-major
    // (asserted above), and the strides below describe that layout.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}

criterion_group!(benches, sae_step_real, gemm_rate);
criterion_main!(benches);
