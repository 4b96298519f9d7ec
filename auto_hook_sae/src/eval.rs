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
    /// Mean KL(clean ‖ spliced) per position.
    pub kl_sae: f64,
    /// Mean KL(clean ‖ zero-ablated) per position.
    pub kl_zero: f64,
    /// `(kl_zero - kl_sae) / kl_zero`.
    pub kl_score: f64,
}

/// Runs `logits_of` (e.g. `|m, ids| m.forward(ids, None)`, logits `[batch, pos, vocab]`)
/// on held-out `tokens` `[batch, pos]` three times: clean, with `sae` spliced in at
/// `hook`, and with `hook` zeroed; scores are averaged over every predicted position.
pub fn downstream_scores<M: HookedRoot, E: Into<auto_hook::Error>>(
    model: &M,
    sae: &Sae,
    hook: &str,
    tokens: &Tensor,
    logits_of: impl Fn(&M, &Tensor) -> std::result::Result<Tensor, E>,
) -> Result<DownstreamScores> {
    let clean = model.run_with_hooks(Hooks::new(), |m| logits_of(m, tokens))?;
    let spliced = model.run_with_hooks(sae.splice_hooks(hook, false), |m| logits_of(m, tokens))?;
    let zero = Hooks::new().add(hook.to_owned(), |x: &Tensor, _: &HookInfo| x.zeros_like());
    let zeroed = model.run_with_hooks(zero, |m| logits_of(m, tokens))?;
    let targets = tokens.narrow(1, 1, tokens.dim(1)? - 1)?.contiguous()?;
    let clean_lp = log_probs(&clean)?;
    let (ce_clean, ce_sae, ce_zero) = (
        cross_entropy(&clean_lp, &targets)?,
        cross_entropy(&log_probs(&spliced)?, &targets)?,
        cross_entropy(&log_probs(&zeroed)?, &targets)?,
    );
    let kl_sae = kl(&clean_lp, &log_probs(&spliced)?)?;
    let kl_zero = kl(&clean_lp, &log_probs(&zeroed)?)?;
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

/// Log-softmax of the logits of every position but the last (which predicts nothing).
fn log_probs(logits: &Tensor) -> Result<Tensor> {
    if logits.rank() != 3 {
        return Err(Error::Shape {
            what: "logits".into(),
            problem: format!("expected [batch, pos, vocab], got {:?}", logits.dims()),
        });
    }
    let t = logits.dim(1)?;
    let logits = logits
        .narrow(1, 0, t - 1)?
        .to_dtype(DType::F32)?
        .contiguous()?;
    Ok(candle_nn::ops::log_softmax(&logits, D::Minus1)?)
}

fn cross_entropy(log_probs: &Tensor, targets: &Tensor) -> Result<f64> {
    let picked = log_probs.gather(
        &targets.to_dtype(DType::U32)?.unsqueeze(2)?.contiguous()?,
        2,
    )?;
    Ok(-(picked.mean_all()?.to_scalar::<f32>()? as f64))
}

fn kl(p_log: &Tensor, q_log: &Tensor) -> Result<f64> {
    let p = p_log.exp()?;
    let kl = (p * (p_log - q_log)?)?.sum(D::Minus1)?;
    Ok(kl.mean_all()?.to_scalar::<f32>()? as f64)
}
