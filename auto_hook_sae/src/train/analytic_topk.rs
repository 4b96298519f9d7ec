//! Hand-derived gradients of topk and batchtopk training (CPU, f32): after the dense
//! encode, everything touches only the kept latents of each row. `f = h · mask`, so
//! `∂h = ∂f` on the kept entries; the aux-k term reconstructs the detached residual
//! `x − x̂` from the top `d_in / 2` dead latents of each row (no bias).
//!
//! TopK keeps the `k` largest positive scores `h_ij · ‖W_dec,j‖` (or `h_ij`) of each
//! row; BatchTopK the `k · n` largest of the whole batch, and reports the smallest kept
//! score for its threshold.

use super::analytic::{mse_grad, row_norms, Analytic, Grads, Scratch};
use super::kernels::{axpy, dot, BLOCK_ROWS};
use super::sae::SaeTrainer;
use crate::error::Result;
use rayon::prelude::*;

/// Per row, `(latent, ∂h)`.
type RowGrads = Vec<Vec<(usize, f32)>>;

/// Scores in the bucket of the batch top-k's cut, with their flat index.
type Boundary = Vec<(f32, usize)>;

impl SaeTrainer {
    /// TopK (`batch = false`, `k` per row) or BatchTopK (`k · n` over the batch).
    pub(crate) fn analytic_topk(
        &self,
        s: &mut Scratch,
        k: f64,
        batch: bool,
    ) -> Result<(Analytic, Grads)> {
        let (n, d_in, d_sae) = (s.n, s.d_in, s.d_sae);
        let norms = self
            .cfg
            .sae
            .rescale_acts_by_decoder_norm
            .then(|| row_norms(&s.w_dec, d_in));
        let (main, min_kept) = if batch {
            select_batch(&s.h, d_sae, norms.as_deref(), k)
        } else {
            (
                select(&s.h, d_sae, norms.as_deref(), k as usize, None),
                None,
            )
        };
        let recon = super::kernels::sized(&mut s.recon, n * d_in);
        for (i, o) in recon.chunks_exact_mut(d_in).enumerate() {
            o.copy_from_slice(&s.b_dec);
            for &j in &main[i] {
                axpy(o, s.h[i * d_sae + j], &s.w_dec[j * d_in..][..d_in]);
            }
        }
        let mse = mse_grad(&s.recon, &s.x, n, &mut s.g);
        let mut gh: RowGrads = vec![Vec::new(); n];
        let mut gw_dec = vec![0f32; d_sae * d_in];
        let mut fired = vec![0u32; d_sae];
        for i in 0..n {
            let gi = &s.g[i * d_in..][..d_in];
            for &j in &main[i] {
                fired[j] += 1;
                let w = &s.w_dec[j * d_in..][..d_in];
                gh[i].push((j, dot(w, gi)));
                axpy(&mut gw_dec[j * d_in..][..d_in], s.h[i * d_sae + j], gi);
            }
        }
        let aux = self.aux_grad(s, norms.as_deref(), &mut gh, &mut gw_dec);
        let mut gw_enc_t = vec![0f32; d_sae * d_in];
        let mut gb_enc = vec![0f32; d_sae];
        for (i, row) in gh.iter().enumerate() {
            let xi = &s.x_in[i * d_in..][..d_in];
            for &(j, v) in row {
                gb_enc[j] += v;
                axpy(&mut gw_enc_t[j * d_in..][..d_in], v, xi);
            }
        }
        let mut gw_enc = vec![0f32; d_in * d_sae];
        for (j, row) in gw_enc_t.chunks_exact(d_in).enumerate() {
            for (a, &v) in row.iter().enumerate() {
                gw_enc[a * d_sae + j] = v;
            }
        }
        s.set_weight_grads(gw_enc, gw_dec);
        let out = Analytic {
            grads: Default::default(),
            mse,
            aux,
            explained_variance: 0.0,
            fired,
            min_kept,
        };
        Ok((out, Grads::new(gb_enc, s)))
    }

    /// The aux-k loss (see [`SaeTrainer::aux_k_loss`]); adds its gradients to `gh` and
    /// `gw_dec`.
    fn aux_grad(
        &self,
        s: &Scratch,
        norms: Option<&[f32]>,
        gh: &mut RowGrads,
        gw_dec: &mut [f32],
    ) -> f64 {
        let dead = self.dead_mask();
        let n_dead = dead.iter().filter(|d| **d).count();
        if n_dead == 0 {
            return 0.0;
        }
        let (n, d_in, d_sae) = (s.n, s.d_in, s.d_sae);
        let k_aux = d_in / 2;
        let scale = (n_dead as f64 / k_aux.max(1) as f64).min(1.0);
        let c = self.cfg.aux_loss_coefficient * scale;
        let k_aux = k_aux.min(n_dead).max(1);
        let sel = select(&s.h, d_sae, norms, k_aux, Some(&dead));
        let mut total = 0f64;
        let mut diff = vec![0f32; d_in];
        let grad_scale = (2.0 * c / n as f64) as f32;
        for i in 0..n {
            // aux_recon − residual = aux_recon − (x − x̂)
            let (ri, xi) = (&s.recon[i * d_in..][..d_in], &s.x[i * d_in..][..d_in]);
            diff.iter_mut()
                .zip(ri.iter().zip(xi))
                .for_each(|(o, (r, x))| *o = r - x);
            for &j in &sel[i] {
                axpy(&mut diff, s.h[i * d_sae + j], &s.w_dec[j * d_in..][..d_in]);
            }
            total += diff.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>();
            diff.iter_mut().for_each(|v| *v *= grad_scale);
            for &j in &sel[i] {
                let v = dot(&s.w_dec[j * d_in..][..d_in], &diff);
                match gh[i].iter_mut().find(|(l, _)| *l == j) {
                    Some(e) => e.1 += v,
                    None => gh[i].push((j, v)),
                }
                axpy(&mut gw_dec[j * d_in..][..d_in], s.h[i * d_sae + j], &diff);
            }
        }
        c * total / n as f64
    }
}

/// BatchTopK's selection: per row, the (ascending) latents among the `k · n` largest
/// positive scores of the batch (as [`crate::activation::batch_topk_select`], up to
/// which of exactly tied scores is kept), and the smallest kept score.
///
/// A radix select: positive f32 scores order as their bit patterns, so one pass counts
/// them per 16-bit prefix, the prefix holding the cut is found from the top, and only
/// the scores with that prefix are sorted out exactly.
pub(crate) fn select_batch(
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

/// Per row, the (ascending) latents kept by [`crate::activation::topk_select`] with the
/// same arguments (up to which of exactly tied scores is kept).
pub(crate) fn select(
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

/// The main top-k of each row: [`select`] without `only`.
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

/// [`select`] as [`crate::activation::topk_select`] does it, with `select_nth_unstable`.
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
