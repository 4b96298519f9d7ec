//! Paired A/B rounds shared by the benchmarks (`benches/overhead.rs`,
//! `auto_hook_models/benches/llama.rs`). Criterion measures each variant in its own time
//! window, so drift between windows (a 2-core VM: about ±2%) hides a 1% difference;
//! timing every variant once per round, in a fresh random order, and comparing times
//! of the same round does not.

use std::path::{Path, PathBuf};
use std::time::Instant;

/// One timed run of a variant.
pub type Run<'a> = Box<dyn Fn() + 'a>;

/// Paired rounds run after criterion on a full `--bench` run only: not in test mode, not
/// with a filter or `--profile-time`.
pub fn enabled() -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    args.iter().any(|a| a == "--bench")
        && args
            .iter()
            .all(|a| a.starts_with("--") && a != "--profile-time" && a != "--test")
}

/// `times[variant][round]` in seconds: `rounds` rounds of one run per variant, in a fresh
/// (seeded) random order each round, so that what ran just before (allocator state,
/// caches) favours no variant.
pub fn time_rounds(variants: &[(&str, Run)], rounds: usize) -> Vec<Vec<f64>> {
    let n = variants.len();
    let mut times = vec![Vec::with_capacity(rounds); n];
    let mut order: Vec<usize> = (0..n).collect();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..rounds {
        for k in (1..n).rev() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            order.swap(k, (seed % (k as u64 + 1)) as usize);
        }
        for &i in &order {
            let start = Instant::now();
            (variants[i].1)();
            times[i].push(start.elapsed().as_secs_f64());
        }
    }
    times
}

/// Median of `times[variant] / times[baseline]` over rounds, with a 95% confidence
/// interval from order statistics: `(low, median, high)`.
pub fn ratio(times: &[Vec<f64>], variant: usize, baseline: usize) -> (f64, f64, f64) {
    let ratios = times[variant].iter().zip(&times[baseline]);
    median_ci(ratios.map(|(v, b)| v / b).collect())
}

/// `(low, median, high)` of `values`, the bounds a 95% interval for the median.
pub fn median_ci(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let m = values.len();
    let half_width = (0.98 * (m as f64).sqrt()).ceil() as usize;
    (
        values[(m / 2).saturating_sub(half_width)],
        values[m / 2],
        values[(m / 2 + half_width).min(m - 1)],
    )
}

/// The workspace's target folder (`CARGO_TARGET_DIR`, or `target` beside the workspace
/// root of `manifest_dir`).
pub fn target_dir(workspace_root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root.join("target"))
}

/// Writes the JSON object with `entries` (`"key": value` strings) to `dir/paired.json`,
/// read by `scripts/bench_ratios.py`; a failure is reported, not fatal.
pub fn write_json(dir: &Path, entries: &[String]) {
    let written = std::fs::create_dir_all(dir).and_then(|()| {
        std::fs::write(
            dir.join("paired.json"),
            format!("{{{}}}\n", entries.join(",\n ")),
        )
    });
    if let Err(e) = written {
        eprintln!("could not write {}: {e}", dir.join("paired.json").display());
    }
}
