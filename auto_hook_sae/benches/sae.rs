//! SAE training speed, in the configuration of the SAELens comparison (issue 10):
//! d_in 64, d_sae 512, 4096 tokens per step, f32, CPU.
//!
//! - `sae_step/{standard,topk,batchtopk,jumprelu}`: one optimisation step of the SAE alone (forward, loss,
//!   backward, clipping, Adam) on a fixed batch.
//! - `pipeline/{standard,topk,batchtopk,jumprelu}`: one step of the whole pipeline on the embedded induction
//!   model: model forwards stopped after block 0, the mixing buffer, the SAE step.
//!
//! cargo bench -p auto_hook_sae --bench sae   (SAELens's side: scripts/bench_sae_saelens.py)

use auto_hook::rng::Rng;
use auto_hook_models::HookedTransformer;
use auto_hook_sae::*;
use candle_core::{DType, Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::path::Path;

const TOKENS: usize = 4096;

fn sae_config(arch: Architecture) -> SaeTrainConfig {
    let mut cfg =
        SaeTrainConfig::new(SaeConfig::new(64, 512, arch).with_hook("blocks.0.hook_resid_post"));
    cfg.l1_coefficient = 1.0;
    cfg
}

fn archs() -> [(&'static str, Architecture); 4] {
    [
        ("standard", Architecture::Standard),
        ("topk", Architecture::TopK { k: 8 }),
        ("batchtopk", Architecture::BatchTopK { k: 8.0 }),
        ("jumprelu", Architecture::JumpRelu),
    ]
}

fn sae_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("sae_step");
    group
        .throughput(Throughput::Elements(TOKENS as u64))
        .sample_size(20);
    let x = Tensor::randn(0f32, 1.0, (TOKENS, 64), &Device::Cpu).unwrap();
    for (name, arch) in archs() {
        let mut trainer = SaeTrainer::new(sae_config(arch), &Device::Cpu).unwrap();
        let mut step = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                trainer.step(&x, step, 1_000_000).unwrap();
                step += 1;
            })
        });
    }
    group.finish();
}

fn forward(m: &HookedTransformer, ids: &Tensor) -> candle_core::Result<Tensor> {
    m.forward(ids, None)
}

fn pipeline(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/induction-2l");
    let model = auto_hook_models::load(dir, DType::F32, &Device::Cpu).unwrap();
    let mut rng = Rng::new(1);
    let ids: Vec<u32> = (0..4096 * 32).map(|_| rng.below(64) as u32).collect();
    let tokens = TokenSource::from_ids(&ids, 32, Some(0)).unwrap();
    let store = StoreConfig {
        store_batch_size_prompts: 32,
        n_batches_in_buffer: 8,
        train_batch_size_tokens: TOKENS,
        ..Default::default()
    };
    let mut group = c.benchmark_group("pipeline");
    group
        .throughput(Throughput::Elements(TOKENS as u64))
        .sample_size(20);
    for (name, arch) in archs() {
        let run = TrainRunConfig {
            total_training_steps: 1_000_000,
            ..Default::default()
        };
        let mut trainer = Trainer::new(
            &model,
            forward,
            tokens.clone(),
            store.clone(),
            vec![sae_config(arch)],
            run,
        )
        .unwrap();
        group.bench_function(name, |b| b.iter(|| trainer.step().unwrap()));
    }
    group.finish();
}

criterion_group!(benches, sae_step, pipeline);
criterion_main!(benches);
