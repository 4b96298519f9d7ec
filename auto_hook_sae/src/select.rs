//! The one top-k / batch-top-k selection, on flat f32 scores: inference
//! ([`crate::activation`]), the autograd reference and the analytic training step all
//! select through it.

use rayon::prelude::*;

/// Rows per parallel block of the passes over the latents (fixed, so results do not
/// depend on the thread count).
pub(crate) const BLOCK_ROWS: usize = 256;

/// Scores in the bucket of the batch top-k's cut, with their flat index.
type Boundary = Vec<(f32, usize)>;

/// A 0/1 mask `[n, d]` (row-major) with ones at the kept latents of each row.
pub(crate) fn mask(kept: &[Vec<usize>], d: usize) -> Vec<f32> {
    let mut mask = vec![0f32; kept.len() * d];
    for (row, js) in mask.chunks_exact_mut(d.max(1)).zip(kept) {
        js.iter().for_each(|&j| row[j] = 1.0);
    }
    mask
}

/// BatchTopK's selection: per row, the (ascending) latents among the `k · n` largest
/// positive scores of the batch (which of exactly tied scores is kept is
/// unspecified), and the smallest kept score.
///
/// A radix select: positive f32 scores order as their bit patterns, so one pass counts
/// them per 16-bit prefix, the prefix holding the cut is found from the top, and only
/// the scores with that prefix are sorted out exactly.
pub(crate) fn batch(
    h: &[f32],
    d: usize,
    scale: Option<&[f32]>,
    k: f64,
) -> (Vec<Vec<usize>>, Option<f64>) {
    let n = h.len() / d.max(1);
    let ones = vec![1f32; d];
    let scale = scale.unwrap_or(&ones);
    // Branch-free passes (the sign of a score is a coin flip): negative scores (sign
    // bit set) land in the last bucket, zero (and positive scores below 1e-40) in the
    // first; neither is kept.
    const OUT: usize = 1 << 15;
    let prefix = |s: f32| ((s.to_bits() >> 16) as usize).min(OUT);
    let block = BLOCK_ROWS * d;
    let counts = h
        .par_chunks(block)
        .fold(
            || vec![0u32; OUT + 1],
            |mut counts, rows| {
                for row in rows.chunks_exact(d) {
                    for (&v, &c) in row.iter().zip(scale) {
                        counts[prefix(v * c)] += 1;
                    }
                }
                counts
            },
        )
        .reduce_with(|mut a, b| {
            a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
            a
        })
        .unwrap_or_else(|| vec![0u32; OUT + 1]);
    let positive = h.len() - (counts[OUT] + counts[0]) as usize;
    let count = ((k * n as f64) as usize).min(positive);
    if count == 0 {
        return (vec![Vec::new(); n], None);
    }
    // The prefix `cut` holding the count-th largest score, and how many lie above it.
    let (mut cut, mut above) = (OUT - 1, 0usize);
    while above + (counts[cut] as usize) < count {
        above += counts[cut] as usize;
        cut -= 1;
    }
    // Per block of rows: the kept latents of each row above the cut, and the scores
    // (with their flat index) in the cut's bucket.
    let parts: Vec<(Vec<Vec<usize>>, Boundary)> = h
        .par_chunks(block)
        .enumerate()
        .map(|(b, rows)| {
            let (mut kept, mut boundary) = (Vec::new(), Vec::new());
            for (i, row) in rows.chunks_exact(d).enumerate() {
                let mut kept_row = Vec::new();
                for (j, (&v, &c)) in row.iter().zip(scale).enumerate() {
                    let s = v * c;
                    let p = prefix(s);
                    if (p >= cut) & (p < OUT) {
                        if p > cut {
                            kept_row.push(j);
                        } else {
                            boundary.push((s, (b * BLOCK_ROWS + i) * d + j));
                        }
                    }
                }
                kept.push(kept_row);
            }
            (kept, boundary)
        })
        .collect();
    let mut kept = Vec::with_capacity(n);
    let mut boundary: Vec<(f32, usize)> = Vec::with_capacity(counts[cut] as usize);
    for (k, b) in parts {
        kept.extend(k);
        boundary.extend(b);
    }
    let wanted = count - above;
    if wanted < boundary.len() {
        boundary.select_nth_unstable_by(wanted - 1, |a, b| b.0.total_cmp(&a.0));
    }
    let boundary = &boundary[..wanted];
    let floor = boundary.iter().map(|b| b.0).fold(f32::INFINITY, f32::min);
    for &(_, i) in boundary {
        kept[i / d].push(i % d);
    }
    kept.iter_mut().for_each(|row| row.sort_unstable());
    (kept, Some(floor as f64))
}

/// Per row, the (ascending) latents among those allowed by `only` (all when `None`)
/// with the `k` largest scores `h_ij · scale_j`. Without `only` (the main top-k), entries
/// with a non-positive score are dropped, as the relu after SAELens's top-k zeroes them;
/// with it (the aux-k selection of dead latents), they are kept. Which of exactly tied
/// scores is kept is unspecified.
pub(crate) fn rows(
    h: &[f32],
    d: usize,
    scale: Option<&[f32]>,
    k: usize,
    only: Option<&[bool]>,
) -> Vec<Vec<usize>> {
    h.par_chunks(BLOCK_ROWS * d)
        .flat_map_iter(|rows| match only.is_some() || k == 0 {
            true => select_nth(rows, d, scale, k, only),
            false => select_top(rows, d, scale, k),
        })
        .collect()
}

/// The main top-k of each row: [`rows`] without `only`.
fn select_top(h: &[f32], d: usize, scale: Option<&[f32]>, k: usize) -> Vec<Vec<usize>> {
    // The main top-k keeps the k largest positive scores. Per row: the maxima of 16
    // strided lanes are 16 distinct entries, so (for k ≤ 16) the k-th largest of them
    // bounds the row's k-th largest score from below; then one pass over a sorted list
    // of the best k so far, skipping blocks of 16 with no score at or above the bound
    // and above the current k-th best (vectorised tests).
    const BLOCK: usize = 16;
    let mut top: Vec<(f32, usize)> = Vec::with_capacity(k + 1);
    let mut scores = vec![0f32; d];
    let smallest_positive = f32::from_bits(1);
    h.chunks_exact(d)
        .map(|vals| {
            top.clear();
            match scale {
                Some(sc) => scores
                    .iter_mut()
                    .zip(vals.iter().zip(sc))
                    .for_each(|(o, (v, s))| *o = v * s),
                None => scores.copy_from_slice(vals),
            }
            let gate = lane_bound(&scores, k).max(smallest_positive);
            let mut floor = f32::NEG_INFINITY;
            for (b, block) in scores.chunks(BLOCK).enumerate() {
                let any = block
                    .iter()
                    .fold(false, |any, &s| any | ((s >= gate) & (s > floor)));
                if !any {
                    continue;
                }
                for (t, &s) in block.iter().enumerate() {
                    if s >= gate && s > floor {
                        let at = top.partition_point(|&(t, _)| t >= s);
                        top.insert(at, (s, b * BLOCK + t));
                        top.truncate(k);
                        if top.len() == k {
                            floor = top[k - 1].0;
                        }
                    }
                }
            }
            let mut kept: Vec<usize> = top.iter().map(|&(_, j)| j).collect();
            kept.sort_unstable();
            kept
        })
        .collect()
}

/// A lower bound for the `k`-th largest of `scores`: the `k`-th largest maximum of 16
/// strided lanes (−∞ when there are fewer than 16 scores or `k > 16`).
fn lane_bound(scores: &[f32], k: usize) -> f32 {
    const LANES: usize = 16;
    if k == 0 || k > LANES || scores.len() < LANES {
        return f32::NEG_INFINITY;
    }
    let mut lanes = [f32::NEG_INFINITY; LANES];
    for block in scores.chunks_exact(LANES) {
        for (m, &s) in lanes.iter_mut().zip(block) {
            *m = m.max(s);
        }
    }
    lanes.sort_unstable_by(|a, b| b.total_cmp(a));
    lanes[k - 1]
}

/// [`rows`] with `select_nth_unstable` (aux-k's masked selection, and `k = 0`).
fn select_nth(
    h: &[f32],
    d: usize,
    scale: Option<&[f32]>,
    k: usize,
    only: Option<&[bool]>,
) -> Vec<Vec<usize>> {
    let allowed: Vec<usize> = match only {
        Some(only) => (0..d).filter(|&j| only[j]).collect(),
        None => (0..d).collect(),
    };
    let k = k.min(allowed.len());
    let mut scores: Vec<(f32, usize)> = Vec::with_capacity(allowed.len());
    h.chunks_exact(d)
        .map(|vals| {
            scores.clear();
            scores.extend(
                allowed
                    .iter()
                    .map(|&j| (vals[j] * scale.map_or(1.0, |s| s[j]), j)),
            );
            if k < scores.len() {
                scores.select_nth_unstable_by(k, |a, b| b.0.total_cmp(&a.0));
            }
            let mut kept: Vec<usize> = scores[..k]
                .iter()
                .filter(|(s, _)| only.is_some() || *s > 0.0)
                .map(|&(_, j)| j)
                .collect();
            kept.sort_unstable();
            kept
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use auto_hook::rng::Rng;

    /// The reference: every score of each row sorted (descending), the first `k` kept.
    fn sorted_rows(
        h: &[f32],
        d: usize,
        scale: &[f32],
        k: usize,
        only: Option<&[bool]>,
    ) -> Vec<Vec<usize>> {
        h.chunks_exact(d)
            .map(|row| {
                let mut s: Vec<(f32, usize)> = (0..d)
                    .filter(|&j| only.is_none_or(|o| o[j]))
                    .map(|j| (row[j] * scale[j], j))
                    .collect();
                s.sort_by(|a, b| b.0.total_cmp(&a.0));
                let mut kept: Vec<usize> = s
                    .iter()
                    .take(k)
                    .filter(|(v, _)| only.is_some() || *v > 0.0)
                    .map(|&(_, j)| j)
                    .collect();
                kept.sort_unstable();
                kept
            })
            .collect()
    }

    fn normal(n: usize, mean: f32, seed: u64) -> Vec<f32> {
        let mut rng = Rng::new(seed);
        (0..n).map(|_| mean + rng.normal() as f32).collect()
    }

    /// 600 rows: several parallel blocks; centred and mostly negative scores (rows with
    /// fewer than k positive scores); k below, at and above the 16 lanes of the bound.
    #[test]
    fn row_top_k_keeps_the_k_largest_positive_scores_of_each_row() {
        let d = 40;
        let scale: Vec<f32> = (0..d).map(|i| 0.5 + (i % 7) as f32 * 0.1).collect();
        let ones = vec![1f32; d];
        let dead: Vec<bool> = (0..d).map(|j| j % 3 != 0).collect();
        for (seed, mean) in [(1, 0f32), (2, -2.0)] {
            let h = normal(600 * d, mean, seed);
            for k in [0, 1, 3, 8, 16, 17, 39, 40, 45] {
                for sc in [None, Some(&scale[..])] {
                    let want = sorted_rows(&h, d, sc.unwrap_or(&ones), k, None);
                    assert_eq!(super::rows(&h, d, sc, k, None), want, "k={k}");
                    // The aux-k selection among dead latents keeps negative scores too.
                    let want = sorted_rows(&h, d, sc.unwrap_or(&ones), k, Some(&dead));
                    assert_eq!(super::rows(&h, d, sc, k, Some(&dead)), want, "dead, k={k}");
                }
            }
        }
    }

    #[test]
    fn batch_top_k_keeps_the_largest_positive_scores_of_the_batch() {
        let (n, d) = (600, 40);
        let scale: Vec<f32> = (0..d).map(|i| 0.5 + (i % 7) as f32 * 0.1).collect();
        let h = normal(n * d, 0.0, 3);
        for k in [0.5, 2.0, 7.3, 40.0] {
            for sc in [None, Some(&scale[..])] {
                let score = |i: usize| h[i] * sc.map_or(1.0, |s| s[i % d]);
                let mut all: Vec<(f32, usize)> = (0..n * d).map(|i| (score(i), i)).collect();
                all.sort_by(|a, b| b.0.total_cmp(&a.0));
                let count = ((k * n as f64) as usize).min(all.iter().filter(|s| s.0 > 0.0).count());
                let mut want = vec![Vec::new(); n];
                for &(_, i) in &all[..count] {
                    want[i / d].push(i % d);
                }
                want.iter_mut().for_each(|r| r.sort_unstable());
                let (got, min) = super::batch(&h, d, sc, k);
                assert_eq!(got, want, "k={k}");
                assert_eq!(min, Some(all[count - 1].0 as f64), "k={k}");
            }
        }
    }

    #[test]
    fn the_mask_has_ones_at_the_kept_latents() {
        assert_eq!(
            super::mask(&[vec![0, 2], vec![], vec![1]], 3),
            [1., 0., 1., 0., 0., 0., 0., 1., 0.]
        );
    }
}
