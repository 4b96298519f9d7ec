//! Interventions as hooks: attention knockout, head and neuron ablation (zero or mean),
//! and contrastive steering vectors.

use crate::error::{check_index, Error, Result};
use crate::model::{LensModel, Point};
use auto_hook::{ActivationCache, HookedRoot, Hooks};
use candle_core::{DType, Tensor, D};
use std::collections::BTreeMap;

/// Attention knockout: blocked query → key edges get a score of −∞ before the softmax
/// (at `attn.hook_attn_scores`), so the query's attention is spread over the keys it
/// still sees. Blocking every key a query sees is an error (its pattern would be NaN).
///
/// ```
/// use auto_hook::prelude::*;
/// use auto_hook_analysis::Knockout;
/// let model = auto_hook_models::load("../models/induction-2l", candle_core::DType::F32, &candle_core::Device::Cpu)?;
/// let ids = candle_core::Tensor::new(&[[0u32, 5, 9, 5]], &candle_core::Device::Cpu)?;
/// let hooks = Knockout::new().block(1, None, 3, 2).hooks(&model)?; // layer 1, every head: 3 ↛ 2
/// let (_, cache) = model.run_with_hooks(hooks,
///     |m| m.run_with_cache("blocks.1.attn.hook_pattern", |m| m.forward(&ids, None)))?;
/// let p = cache.get("blocks.1.attn.hook_pattern")?.get(0)?.get(0)?.get(3)?.to_vec1::<f32>()?;
/// assert_eq!(p[2], 0.0);
/// assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Knockout {
    /// `(layer, head or every head, query, key)`.
    edges: Vec<(usize, Option<usize>, usize, usize)>,
}

impl Knockout {
    /// No edge blocked.
    pub fn new() -> Self {
        Self::default()
    }

    /// Blocks `query → key` in `layer`, for one head or (`None`) every head.
    pub fn block(mut self, layer: usize, head: Option<usize>, query: usize, key: usize) -> Self {
        self.edges.push((layer, head, query, key));
        self
    }

    /// Blocks every query in `queries` from every key in `keys`.
    pub fn block_all(
        mut self,
        layer: usize,
        head: Option<usize>,
        queries: std::ops::Range<usize>,
        keys: std::ops::Range<usize>,
    ) -> Self {
        for q in queries {
            for k in keys.clone() {
                self.edges.push((layer, head, q, k));
            }
        }
        self
    }

    /// The hooks that apply this knockout to runs of `model`.
    pub fn hooks<M: LensModel>(&self, model: &M) -> Result<Hooks<'static>> {
        let mut by_layer: BTreeMap<usize, Vec<(Option<usize>, usize, usize)>> = BTreeMap::new();
        for &(layer, head, q, k) in &self.edges {
            check_index("layer", layer, model.n_layers())?;
            if let Some(h) = head {
                check_index("head", h, model.n_heads())?;
            }
            by_layer.entry(layer).or_default().push((head, q, k));
        }
        let mut hooks = Hooks::new();
        for (layer, edges) in by_layer {
            let name = model.hook_name(Point::AttnScores(layer));
            hooks = hooks.add(name, move |scores, info| {
                block_edges(scores, &edges, info.name())
            });
        }
        Ok(hooks)
    }
}

/// `scores` `[batch, head, q, k]` with the edges set to −∞.
fn block_edges(
    scores: &Tensor,
    edges: &[(Option<usize>, usize, usize)],
    name: &str,
) -> candle_core::Result<Tensor> {
    let (_, h, q_len, k_len) = scores.dims4()?;
    let mut mask = vec![0f32; h * q_len * k_len];
    for &(head, q, k) in edges {
        check_index("query position", q, q_len)?;
        check_index("key position", k, k_len)?;
        let heads = head.map_or(0..h, |x| x..x + 1);
        for hh in heads {
            mask[(hh * q_len + q) * k_len + k] = f32::NEG_INFINITY;
        }
    }
    let mask =
        Tensor::from_vec(mask, (1, h, q_len, k_len), scores.device())?.to_dtype(scores.dtype())?;
    let blocked = scores.broadcast_add(&mask)?;
    let row_max: Vec<f32> = blocked
        .max(D::Minus1)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1()?;
    if row_max.contains(&f32::NEG_INFINITY) {
        return Err(Error::Input(format!(
            "knockout at `{name}` blocks every key some query sees: its attention would be NaN"
        ))
        .into());
    }
    Ok(blocked)
}

/// What an ablated head or neuron is set to.
#[derive(Debug, Clone, Copy)]
pub enum Ablation<'c> {
    /// Zero.
    Zero,
    /// Its mean over the batch and positions of a reference run's cache (which must
    /// hold the ablated points: `attn.hook_z` for heads, `mlp.hook_post` for neurons).
    Mean(&'c ActivationCache),
}

/// Hooks that ablate the heads `(layer, head)` at `attn.hook_z` (before `W_O`).
///
/// ```
/// use auto_hook::prelude::*;
/// use auto_hook_analysis::{ablate_heads, Ablation};
/// let model = auto_hook_models::load("../models/induction-2l", candle_core::DType::F32, &candle_core::Device::Cpu)?;
/// let ids = candle_core::Tensor::new(&[[0u32, 5, 9, 5]], &candle_core::Device::Cpu)?;
/// let hooks = ablate_heads(&model, &[(1, 0), (1, 2)], Ablation::Zero)?;
/// // The cache inside the hooked run sees the ablated values.
/// let (_, cache) = model.run_with_hooks(hooks,
///     |m| m.run_with_cache("blocks.1.attn.hook_z", |m| m.forward(&ids, None)))?;
/// let z = cache.get("blocks.1.attn.hook_z")?; // [batch, pos, head, d_head]
/// assert_eq!(z.narrow(2, 0, 1)?.abs()?.sum_all()?.to_scalar::<f32>()?, 0.0);
/// assert!(z.narrow(2, 1, 1)?.abs()?.sum_all()?.to_scalar::<f32>()? > 0.0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn ablate_heads<M: LensModel>(
    model: &M,
    heads: &[(usize, usize)],
    how: Ablation<'_>,
) -> Result<Hooks<'static>> {
    ablate(model, heads, how, Point::Z, ("head", model.n_heads()), 2)
}

/// Hooks that ablate MLP neurons `(layer, neuron)` at `mlp.hook_post`.
pub fn ablate_neurons<M: LensModel>(
    model: &M,
    neurons: &[(usize, usize)],
    how: Ablation<'_>,
) -> Result<Hooks<'static>> {
    let d_mlp = model.w_out(0)?.dim(0)?;
    ablate(model, neurons, how, Point::MlpPost, ("neuron", d_mlp), 2)
}

/// Replaces units `(layer, unit)` along `axis` of the point's activation.
fn ablate<M: LensModel>(
    model: &M,
    units: &[(usize, usize)],
    how: Ablation<'_>,
    point: fn(usize) -> Point,
    (what, n_units): (&'static str, usize),
    axis: usize,
) -> Result<Hooks<'static>> {
    let mut by_layer: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for &(layer, unit) in units {
        check_index("layer", layer, model.n_layers())?;
        check_index(what, unit, n_units)?;
        by_layer.entry(layer).or_default().push(unit);
    }
    let mut hooks = Hooks::new();
    for (layer, picked) in by_layer {
        let name = model.hook_name(point(layer));
        let keep: Vec<f32> = (0..n_units)
            .map(|u| f32::from(!picked.contains(&u)))
            .collect();
        let mean = match how {
            Ablation::Zero => None,
            Ablation::Mean(cache) => Some(unit_means(cache.get(&name)?, axis)?),
        };
        hooks = hooks.add(name, move |x, _| {
            let mut shape = vec![1; x.rank()];
            shape[axis] = n_units;
            let keep = Tensor::from_vec(keep.clone(), shape, x.device())?.to_dtype(x.dtype())?;
            let kept = x.broadcast_mul(&keep)?;
            match &mean {
                None => Ok(kept),
                Some(mean) => {
                    let fill = mean.to_dtype(x.dtype())?.broadcast_mul(&(1.0 - &keep)?)?;
                    kept.broadcast_add(&fill)
                }
            }
        });
    }
    Ok(hooks)
}

/// The mean over every axis before `axis` (batch, positions), keeping them as size 1.
fn unit_means(x: &Tensor, axis: usize) -> Result<Tensor> {
    let mut m = x.to_dtype(DType::F32)?;
    for a in 0..axis {
        m = m.mean_keepdim(a)?;
    }
    Ok(m)
}

/// A contrastive steering vector (activation addition, Turner et al. 2023; mean
/// difference as in contrastive activation addition): the mean of `point`'s activation
/// at the last token of each `positive` prompt minus the same over `negative`, `[d_model]`.
/// Each prompt is token ids `[1, pos]`; every forward stops at `point`.
pub fn steering_vector<M: LensModel>(
    model: &M,
    point: Point,
    positive: &[Tensor],
    negative: &[Tensor],
) -> Result<Tensor> {
    let mean = |prompts: &[Tensor]| -> Result<Tensor> {
        if prompts.is_empty() {
            return Err(Error::Input(
                "a steering vector needs prompts on both sides".into(),
            ));
        }
        let name = model.hook_name(point);
        let mut last = Vec::with_capacity(prompts.len());
        for ids in prompts {
            let cache = model.run_with_cache_stop_at(name.as_str(), |m| m.logits(ids))?;
            let act = cache.get(&name)?; // [1, pos, d]
            let p = act.dim(1)?;
            last.push(
                act.narrow(1, p - 1, 1)?
                    .flatten_all()?
                    .to_dtype(DType::F32)?,
            );
        }
        Ok(Tensor::stack(&last, 0)?.mean(0)?)
    };
    Ok((mean(positive)? - mean(negative)?)?)
}

/// A hook that adds `coeff * vector` (`[d_model]`) to every position of `point`'s
/// activation, in every forward of the run (generation steps included).
pub fn steer<M: LensModel>(
    model: &M,
    point: Point,
    vector: &Tensor,
    coeff: f64,
) -> Result<Hooks<'static>> {
    let add = (vector.to_dtype(DType::F32)? * coeff)?;
    Ok(Hooks::new().add(model.hook_name(point), move |x, _| {
        x.broadcast_add(&add.to_device(x.device())?.to_dtype(x.dtype())?)
    }))
}
