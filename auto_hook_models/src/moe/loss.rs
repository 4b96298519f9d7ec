//! Mixtral's load-balancing loss (Hugging Face's `load_balancing_loss_func`).

use crate::error::{Error, Result};
use crate::moe::{softmax_f32, top_k};
use crate::transformer::HookedTransformer;
use auto_hook::ActivationCache;
use candle_core::{DType, Tensor};

/// Hugging Face's `load_balancing_loss_func` (Switch Transformer eqs. 4–6) over the
/// router logits of every layer (`[batch·pos, n_experts]` each, in layer order):
/// `n_experts · Σ_e f_e · P_e`, where `f_e` is the fraction of top-`k` assignments that
/// go to expert `e` and `P_e` its mean router probability, over all layers' rows.
/// `attention_mask` (`[batch, pos]`, 1 = token) leaves padding out. A scalar f32 tensor,
/// differentiable through `P_e`; a training loss adds `router_aux_loss_coef` times it.
///
/// ```
/// use candle_core::{Device, Tensor};
/// // Two tokens, two experts, top-1: a perfectly balanced router gives 1.0.
/// let logits = Tensor::new(&[[1f32, 0.], [0., 1.]], &Device::Cpu)?;
/// let loss = auto_hook_models::router_aux_loss(&[logits], 1, None)?;
/// assert!((loss.to_scalar::<f32>()? - 1.0).abs() < 1e-6);
/// # Ok::<(), auto_hook_models::Error>(())
/// ```
pub fn router_aux_loss(
    router_logits: &[Tensor],
    top_k_experts: usize,
    attention_mask: Option<&Tensor>,
) -> Result<Tensor> {
    let first = router_logits.first().ok_or_else(|| {
        Error::Input("router_aux_loss needs the logits of at least one layer".into())
    })?;
    let (rows, n_experts) = first.dims2()?;
    if top_k_experts == 0 || top_k_experts > n_experts {
        return Err(Error::Input(format!(
            "top_k {top_k_experts} must be between 1 and the {n_experts} experts"
        )));
    }
    let device = first.device();
    let mask = match attention_mask {
        Some(m) if m.elem_count() == rows => m.reshape((rows, 1))?.to_dtype(DType::F32)?,
        Some(m) => {
            return Err(Error::Input(format!(
                "attention_mask has shape {:?}; the router logits have {rows} rows",
                m.dims()
            )))
        }
        None => Tensor::ones((rows, 1), DType::F32, device)?,
    };
    let experts = Tensor::arange(0u32, n_experts as u32, device)?.reshape((1, 1, n_experts))?;
    let mut assigned = Tensor::zeros(n_experts, DType::F32, device)?;
    let mut prob = Tensor::zeros(n_experts, DType::F32, device)?;
    for (layer, logits) in router_logits.iter().enumerate() {
        if logits.dims() != [rows, n_experts] {
            return Err(Error::Input(format!(
                "router logits of layer {layer} have shape {:?}; layer 0's have [{rows}, {n_experts}]",
                logits.dims()
            )));
        }
        let probs = softmax_f32(logits)?.to_dtype(DType::F32)?;
        let (indices, _) = top_k(&probs, top_k_experts)?;
        let one_hot = indices
            .unsqueeze(2)?
            .broadcast_eq(&experts)?
            .to_dtype(DType::F32)?
            .sum(1)?;
        assigned = (assigned + one_hot.broadcast_mul(&mask)?.sum(0)?)?;
        prob = (prob + probs.broadcast_mul(&mask)?.sum(0)?)?;
    }
    let total = (mask.sum_all()? * router_logits.len() as f64)?;
    let f = assigned.broadcast_div(&total)?;
    let p = prob.broadcast_div(&total)?;
    Ok(((f * p)?.sum_all()? * n_experts as f64)?)
}

impl HookedTransformer {
    /// [`router_aux_loss`] from a run's cache, which must hold every layer's
    /// `blocks.{i}.mlp.router.hook_point` (cache `"blocks.*.mlp.router.hook_point"`).
    ///
    /// ```no_run
    /// use auto_hook::prelude::*;
    /// # let model = auto_hook_models::load("mixtral", candle_core::DType::F32, &candle_core::Device::Cpu)?;
    /// # let ids = candle_core::Tensor::zeros((1, 4), candle_core::DType::U32, &candle_core::Device::Cpu)?;
    /// let (_logits, cache) = model.run_with_cache("blocks.*.mlp.router.hook_point", |m| m.forward(&ids, None))?;
    /// let aux = model.router_aux_loss(&cache, None)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn router_aux_loss(
        &self,
        cache: &ActivationCache,
        attention_mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let moe = self.config().moe.as_ref().ok_or_else(|| {
            Error::Input(format!(
                "router_aux_loss: `{}` has no mixture-of-experts layers",
                self.config().model_type
            ))
        })?;
        let logits = (0..self.config().n_layers)
            .map(|i| {
                let name = format!("blocks.{i}.mlp.router.hook_point");
                cache
                    .get(&name)
                    .cloned()
                    .map_err(|e| Error::Input(e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        router_aux_loss(&logits, moe.top_k, attention_mask)
    }
}
