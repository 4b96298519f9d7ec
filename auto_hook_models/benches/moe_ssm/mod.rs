//! Helpers of the Mixtral and Mamba benchmarks: seeded weights and the paired-rounds
//! report (see `auto_hook_dev/benches/paired`).

use crate::paired::{self, Run};
use candle_core::{Device, Result, Tensor};
use std::path::{Path, PathBuf};

/// xorshift64*: deterministic weights, the same checkpoint on every run.
pub struct Rng(pub u64);

impl Rng {
    /// Uniform in `[-1, 1)`.
    pub fn next(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
        bits as f32 / (1u64 << 23) as f32 - 1.0
    }

    /// A tensor of `shape`, uniform with standard deviation `std`, plus `offset`.
    pub fn tensor(&mut self, shape: &[usize], std: f32, offset: f32) -> Result<Tensor> {
        let n = shape.iter().product();
        let scale = std * 3f32.sqrt();
        let data: Vec<f32> = (0..n).map(|_| offset + self.next() * scale).collect();
        Tensor::from_vec(data, shape, &Device::Cpu)
    }

    /// `n` token ids below `vocab`.
    pub fn ids(&mut self, n: usize, vocab: usize) -> Vec<u32> {
        (0..n)
            .map(|_| ((self.next() + 1.0) * 0.5 * vocab as f32) as u32 % vocab as u32)
            .collect()
    }
}

pub fn target_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    paired::target_dir(manifest.parent().unwrap_or(manifest))
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()
}

/// The criterion group name: `base`, or `base_threadsN` under `RAYON_NUM_THREADS=N`.
pub fn group_name(base: &str) -> String {
    match std::env::var("RAYON_NUM_THREADS") {
        Ok(n) if !n.is_empty() => format!("{base}_threads{n}"),
        _ => base.to_owned(),
    }
}

/// `rounds` paired rounds of `variants`; prints each variant's median and, for each
/// `(variant, baseline)` of `pairs`, the median per-round ratio with a 95% CI; writes
/// them to `target/criterion/{group}/paired.json`.
pub fn paired_report(group: &str, variants: &[(&str, Run)], pairs: &[(&str, &str)], rounds: usize) {
    let times = paired::time_rounds(variants, rounds);
    let index = |name: &str| variants.iter().position(|(v, _)| *v == name).unwrap();
    let mut json = Vec::new();
    for (variant, _) in variants {
        let (_, mid, _) = paired::median_ci(times[index(variant)].clone());
        println!("{group}/{variant}: paired-round median {:.3} ms", mid * 1e3);
        json.push(format!("\"{variant}\": {{\"median_s\": {mid}}}"));
    }
    for (variant, baseline) in pairs {
        let (lo, mid, hi) = paired::ratio(&times, index(variant), index(baseline));
        println!(
            "{group}: {variant} / {baseline}: paired ratio {mid:.4} (95% CI {lo:.4}..{hi:.4}, {rounds} rounds)"
        );
        json.push(format!(
            "\"{variant}/{baseline}\": {{\"median\": {mid}, \"ci_low\": {lo}, \"ci_high\": {hi}, \"rounds\": {rounds}}}"
        ));
    }
    paired::write_json(&target_dir().join("criterion").join(group), &json);
}
