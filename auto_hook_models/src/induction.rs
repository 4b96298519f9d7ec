//! Induction-head diagnostics, as in TransformerLens demos: repeated random tokens and
//! per-head scores read from cached attention patterns.
//!
//! ```
//! use auto_hook_models::induction::{
//!     duplicate_token_scores, induction_scores, previous_token_scores, repeated_tokens,
//! };
//! use candle_core::Tensor;
//! let tokens = repeated_tokens(2, 3, 16, 7)?; // [BOS] x1 x2 x3 x1 x2 x3
//! assert_eq!(tokens.dims(), &[2, 7]);
//! // A head that attends from each token of the repeat to the token after its first
//! // occurrence (and from elsewhere to position 0) scores 1.
//! let mut p = vec![0f32; 7 * 7];
//! for q in 0..7 {
//!     let k = if q >= 4 { q - 2 } else { 0 };
//!     p[q * 7 + k] = 1.0;
//! }
//! let pattern = Tensor::from_vec(p, (1, 1, 7, 7), &candle_core::Device::Cpu)?;
//! assert_eq!(induction_scores(&pattern, 3)?, vec![1.0]);
//! assert_eq!(duplicate_token_scores(&pattern, 3)?, vec![0.0]);
//! assert!(previous_token_scores(&pattern)?[0] < 0.5);
//! # Ok::<(), auto_hook_models::Error>(())
//! ```

use crate::{Error, Result};
use candle_core::{Device, Tensor};

/// `batch` sequences `[BOS] x1..xN x1..xN` (`N = half`) as u32 `[batch, 1 + 2 * half]`:
/// token 0 is BOS and the `x` are distinct tokens from `1..vocab`, drawn from a seeded
/// xorshift generator (same seed, same tokens).
pub fn repeated_tokens(batch: usize, half: usize, vocab: usize, seed: u64) -> Result<Tensor> {
    if half == 0 || half >= vocab {
        return Err(Error::Input(format!(
            "repeated_tokens needs 0 < half < vocab (half {half}, vocab {vocab})"
        )));
    }
    let mut state = seed | 1; // xorshift's state must not be zero
    let mut ids = Vec::with_capacity(batch * (1 + 2 * half));
    let mut pool: Vec<u32> = (1..vocab as u32).collect();
    for _ in 0..batch {
        for i in 0..half {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let j = i + (state % (pool.len() - i) as u64) as usize;
            pool.swap(i, j);
        }
        ids.push(0);
        ids.extend_from_slice(&pool[..half]);
        ids.extend_from_slice(&pool[..half]);
    }
    Ok(Tensor::from_vec(ids, (batch, 1 + 2 * half), &Device::Cpu)?)
}

/// Mean attention per head, `[batch, head, q, k]` → `[head][q][k]`.
fn mean_pattern(pattern: &Tensor) -> Result<Vec<Vec<Vec<f32>>>> {
    let (_, _, q, k) = pattern.dims4()?;
    if q != k {
        return Err(Error::Input(format!(
            "expected a full-sequence attention pattern, got {} query and {} key positions",
            q, k
        )));
    }
    Ok(pattern
        .to_dtype(candle_core::DType::F32)?
        .mean(0)?
        .to_vec3::<f32>()?)
}

/// [`mean_pattern`] of a pattern over `[BOS] + 2 x half` positions.
fn repeat_pattern(pattern: &Tensor, half: usize) -> Result<Vec<Vec<Vec<f32>>>> {
    let heads = mean_pattern(pattern)?;
    let positions = heads.first().map_or(0, Vec::len);
    if half == 0 || positions != 1 + 2 * half {
        return Err(Error::Input(format!(
            "a pattern over {positions} positions is not [BOS] + 2 x {half} tokens"
        )));
    }
    Ok(heads)
}

/// Induction score of each head from an attention pattern `[batch, head, q_pos, k_pos]`
/// of [`repeated_tokens`] with this `half`: the mean attention from each position `i`
/// of the repeat to `i - half + 1`, the token that followed the first occurrence of the
/// current token (TransformerLens' induction score).
pub fn induction_scores(pattern: &Tensor, half: usize) -> Result<Vec<f32>> {
    let heads = repeat_pattern(pattern, half)?;
    Ok(heads
        .iter()
        .map(|p| {
            (half + 1..=2 * half)
                .map(|i| p[i][i - half + 1])
                .sum::<f32>()
                / half as f32
        })
        .collect())
}

/// Duplicate-token score of each head, for [`repeated_tokens`] with this `half`: the
/// mean attention from each position `i` of the repeat to `i - half`, the first
/// occurrence of the current token.
pub fn duplicate_token_scores(pattern: &Tensor, half: usize) -> Result<Vec<f32>> {
    let heads = repeat_pattern(pattern, half)?;
    Ok(heads
        .iter()
        .map(|p| (half + 1..=2 * half).map(|i| p[i][i - half]).sum::<f32>() / half as f32)
        .collect())
}

/// Previous-token score of each head: the mean attention from each position to the one
/// before it (positions 1 onwards).
pub fn previous_token_scores(pattern: &Tensor) -> Result<Vec<f32>> {
    let heads = mean_pattern(pattern)?;
    Ok(heads
        .iter()
        .map(|p| (1..p.len()).map(|i| p[i][i - 1]).sum::<f32>() / (p.len() - 1).max(1) as f32)
        .collect())
}
