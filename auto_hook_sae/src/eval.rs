//! Evaluation: reconstruction quality, sparsity, and downstream scores with the SAE
//! spliced into the model.

use crate::error::{Error, Result};
use crate::sae::Sae;
use crate::train::explained_variance;
use auto_hook::{HookInfo, HookedRoot, Hooks};
use candle_core::{DType, Tensor, D};

/// Reconstruction and sparsity metrics over a set of activation rows.
#[derive(Debug, Clone, PartialEq)]
pub struct ReconstructionMetrics {
    /// Mean squared error per element.
    pub mse: f64,
    /// `1 - Σ‖x - x̂‖² / Σ‖x - mean(x)‖²`.
    pub explained_variance: f64,
    /// Mean number of active latents per row.
    pub l0: f64,
    /// Latents that never fired.
    pub dead: usize,
    /// Latents that fired on more than `dense_threshold` of the rows.
    pub dense: usize,
    /// Firing frequency of each latent.
    pub density: Vec<f64>,
    /// Rows evaluated.
    pub rows: usize,
}

/// Metrics of `sae` on the rows `x` `[n, d_in]`; a latent is dense when it fires on more
/// than `dense_threshold` of the rows (SAELens's dashboards use 0.1).
///
/// ```
/// use auto_hook_sae::{reconstruction_metrics, Architecture, Sae, SaeConfig};
/// use candle_core::{Device, Tensor};
/// let sae = Sae::init(&SaeConfig::new(8, 32, Architecture::TopK { k: 3 }), Some(0.1), 0, &Device::Cpu)?;
/// let x = Tensor::randn(0f32, 1.0, (100, 8), &Device::Cpu)?;
/// let m = reconstruction_metrics(&sae, &x, 0.1)?;
/// assert!(m.l0 <= 3.0 && m.rows == 100);
/// # Ok::<(), auto_hook_sae::Error>(())
/// ```
pub fn reconstruction_metrics(
    sae: &Sae,
    x: &Tensor,
    dense_threshold: f64,
) -> Result<ReconstructionMetrics> {
    let (x2, _) = sae.flatten_input(x)?;
    let f = sae.encode(&x2)?;
    let recon = sae.forward(&x2)?;
    let rows = x2.dim(0)?;
    let mse = (&recon - &x2)?
        .sqr()?
        .mean_all()?
        .to_dtype(DType::F64)?
        .to_scalar::<f64>()?;
    let active = f.ne(0.0)?.to_dtype(DType::F64)?;
    let l0 = active.sum(1)?.mean_all()?.to_scalar::<f64>()?;
    let density: Vec<f64> = (active.sum(0)? / rows as f64)?.to_vec1::<f64>()?;
    Ok(ReconstructionMetrics {
        mse,
        explained_variance: explained_variance(&x2, &recon)?,
        l0,
        dead: density.iter().filter(|d| **d == 0.0).count(),
        dense: density.iter().filter(|d| **d > dense_threshold).count(),
        density,
        rows,
    })
}

/// Next-token losses and divergences with the SAE spliced in, against the clean model
/// and against zero-ablating the hook.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DownstreamScores {
    /// Cross-entropy of the clean model (nats per predicted token).
    pub ce_clean: f64,
    /// Cross-entropy with the SAE's reconstruction in place of the activation.
    pub ce_sae: f64,
    /// Cross-entropy with the activation zeroed.
    pub ce_zero: f64,
    /// `(ce_zero - ce_sae) / (ce_zero - ce_clean)`: 1 is a perfect reconstruction.
    pub ce_loss_score: f64,
    /// Mean KL(clean ‖ spliced) per position (every position, as SAELens).
    pub kl_sae: f64,
    /// Mean KL(clean ‖ zero-ablated) per position.
    pub kl_zero: f64,
    /// `(kl_zero - kl_sae) / kl_zero`.
    pub kl_score: f64,
}

/// Runs `logits_of` (e.g. `|m, ids| m.forward(ids, None)`, logits `[batch, pos, vocab]`)
/// on held-out `tokens` `[batch, pos]` three times: clean, with `sae` spliced in at
/// `hook`, and with `hook` zeroed. As SAELens's `get_recons_loss`: cross-entropy (natural
/// log, of the model's output logits: Gemma 2's are soft-capped) averages over every
/// predicted token, KL(clean ‖ other) over every position (the last one too).
pub fn downstream_scores<M: HookedRoot, E: Into<auto_hook::Error>>(
    model: &M,
    sae: &Sae,
    hook: &str,
    tokens: &Tensor,
    logits_of: impl Fn(&M, &Tensor) -> std::result::Result<Tensor, E>,
) -> Result<DownstreamScores> {
    downstream_scores_ignoring(model, sae, hook, tokens, &[], logits_of)
}

/// [`downstream_scores`] with SAELens's `ignore_tokens` (its `run_evals` ignores the
/// tokenizer's BOS, EOS and padding tokens by default): at positions holding one of
/// `ignore_tokens` the SAE leaves the activation as it is, and those positions are left
/// out of the averages (for cross-entropy, the positions that predict from them).
///
/// ```no_run
/// # fn demo(model: &auto_hook_models::HookedTransformer, sae: &auto_hook_sae::Sae, tokens: &candle_core::Tensor) -> auto_hook_sae::Result<()> {
/// let s = auto_hook_sae::downstream_scores_ignoring(model, sae, "blocks.12.hook_resid_post",
///     tokens, &[0, 1, 2], |m, ids| m.forward(ids, None))?; // Gemma's pad, eos, bos
/// println!("CE loss score {:.4}, KL {:.4}", s.ce_loss_score, s.kl_sae);
/// # Ok(()) }
/// ```
pub fn downstream_scores_ignoring<M: HookedRoot, E: Into<auto_hook::Error>>(
    model: &M,
    sae: &Sae,
    hook: &str,
    tokens: &Tensor,
    ignore_tokens: &[u32],
    logits_of: impl Fn(&M, &Tensor) -> std::result::Result<Tensor, E>,
) -> Result<DownstreamScores> {
    let keep = keep_mask(tokens, ignore_tokens)?;
    let clean = model.run_with_hooks(Hooks::new(), |m| logits_of(m, tokens))?;
    let splice = Hooks::new().add(hook.to_owned(), |x: &Tensor, info: &HookInfo| {
        let new = sae.splice_at(info.name(), x, false)?;
        if ignore_tokens.is_empty() {
            return Ok(new);
        }
        where_kept(&keep, &new, x)
    });
    let spliced = model.run_with_hooks(splice, |m| logits_of(m, tokens))?;
    let zero = Hooks::new().add(hook.to_owned(), |x: &Tensor, _: &HookInfo| x.zeros_like());
    let zeroed = model.run_with_hooks(zero, |m| logits_of(m, tokens))?;
    let t = tokens.dim(1)?;
    let (keep_ce, keep_kl) = (keep.narrow(1, 0, t - 1)?, keep);
    let targets = tokens.narrow(1, 1, t - 1)?.contiguous()?;
    let clean_lp = log_probs(&clean)?;
    let (spliced_lp, zeroed_lp) = (log_probs(&spliced)?, log_probs(&zeroed)?);
    let ce = |lp: &Tensor| masked_mean(&cross_entropy(lp, &targets)?, &keep_ce);
    let (ce_clean, ce_sae, ce_zero) = (ce(&clean_lp)?, ce(&spliced_lp)?, ce(&zeroed_lp)?);
    let kl_sae = masked_mean(&kl(&clean_lp, &spliced_lp)?, &keep_kl)?;
    let kl_zero = masked_mean(&kl(&clean_lp, &zeroed_lp)?, &keep_kl)?;
    Ok(DownstreamScores {
        ce_clean,
        ce_sae,
        ce_zero,
        ce_loss_score: (ce_zero - ce_sae) / (ce_zero - ce_clean),
        kl_sae,
        kl_zero,
        kl_score: (kl_zero - kl_sae) / kl_zero,
    })
}

/// `[batch, pos]` f32: 1 where the token is not ignored.
fn keep_mask(tokens: &Tensor, ignore_tokens: &[u32]) -> Result<Tensor> {
    if tokens.rank() != 2 || tokens.dim(1)? < 2 {
        return Err(Error::Shape {
            what: "tokens".into(),
            problem: format!(
                "expected [batch, pos] with pos >= 2, got {:?}",
                tokens.dims()
            ),
        });
    }
    let tokens = tokens.to_dtype(DType::U32)?;
    let mut keep = tokens.ones_like()?.to_dtype(DType::F32)?;
    for &t in ignore_tokens {
        keep = (keep * tokens.ne(t)?.to_dtype(DType::F32)?)?;
    }
    Ok(keep)
}

/// `new` where `keep` `[batch, pos]` is 1, `old` elsewhere (any trailing axes).
fn where_kept(keep: &Tensor, new: &Tensor, old: &Tensor) -> candle_core::Result<Tensor> {
    let mut mask = keep.ne(0f32)?;
    while mask.rank() < old.rank() {
        mask = mask.unsqueeze(mask.rank())?;
    }
    mask.broadcast_as(old.shape())?.where_cond(new, old)
}

/// Log-softmax over the vocabulary of every position, in f32.
fn log_probs(logits: &Tensor) -> Result<Tensor> {
    if logits.rank() != 3 {
        return Err(Error::Shape {
            what: "logits".into(),
            problem: format!("expected [batch, pos, vocab], got {:?}", logits.dims()),
        });
    }
    let logits = logits.to_dtype(DType::F32)?.contiguous()?;
    Ok(candle_nn::ops::log_softmax(&logits, D::Minus1)?)
}

/// `-log p(next token)` `[batch, pos - 1]`.
fn cross_entropy(log_probs: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let t = log_probs.dim(1)?;
    let picked = log_probs.narrow(1, 0, t - 1)?.contiguous()?.gather(
        &targets.to_dtype(DType::U32)?.unsqueeze(2)?.contiguous()?,
        2,
    )?;
    Ok(picked.squeeze(2)?.neg()?)
}

/// KL(p ‖ q) per position `[batch, pos]`.
fn kl(p_log: &Tensor, q_log: &Tensor) -> Result<Tensor> {
    let p = p_log.exp()?;
    Ok((p * (p_log - q_log)?)?.sum(D::Minus1)?)
}

/// Mean of `values` where `keep` is 1.
fn masked_mean(values: &Tensor, keep: &Tensor) -> Result<f64> {
    let n = keep.sum_all()?.to_scalar::<f32>()?;
    if n == 0.0 {
        return Err(Error::Invalid(
            "every position holds an ignored token: nothing to score".into(),
        ));
    }
    let total = (values * keep)?.sum_all()?.to_scalar::<f32>()?;
    Ok((total / n) as f64)
}
