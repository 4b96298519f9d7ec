//! Activation patching sweeps (TransformerLens's `patching` module): run the corrupted
//! input once per cell with one piece of one activation taken from the clean run, and
//! measure how much of the clean behaviour comes back.

use crate::error::{Error, Result};
use crate::labels::{Axis, Labelled};
use crate::model::{LensModel, Point};
use auto_hook::{ActivationCache, HookedRoot, Hooks};
use candle_core::Tensor;
use indicatif::{ProgressBar, ProgressStyle};

/// A score of a tensor (logits or an activation).
pub type Score<'a> = Box<dyn Fn(&Tensor) -> candle_core::Result<f32> + 'a>;

/// What a patched run is scored by.
pub enum Metric<'a> {
    /// A function of the logits `[batch, pos, d_vocab]` (a logit difference, a loss).
    Logits(Score<'a>),
    /// A function of one activation: the forward stops as soon as it fired
    /// (`run_with_cache_stop_at`), and cells at points after it (by [`Point::order`]),
    /// which cannot change it, are not run (they get the unpatched value).
    Activation(Point, Score<'a>),
}

impl<'a> Metric<'a> {
    /// A metric of the logits.
    pub fn logits(f: impl Fn(&Tensor) -> candle_core::Result<f32> + 'a) -> Self {
        Metric::Logits(Box::new(f))
    }

    /// A metric of the activation at `point`.
    pub fn activation(point: Point, f: impl Fn(&Tensor) -> candle_core::Result<f32> + 'a) -> Self {
        Metric::Activation(point, Box::new(f))
    }
}

/// Activation patching of one clean / corrupted pair of inputs (same shape): each
/// sweep returns a [`Labelled`] grid of the metric with one cell's activation taken
/// from `clean` (a cache of the clean run holding the patched points). An indicatif
/// progress bar counts the patched forwards (drawn only on a terminal).
///
/// ```
/// use auto_hook::prelude::*;
/// use auto_hook_analysis::{logit_diff, Metric, Patching};
/// use candle_core::{Device, Tensor};
/// let model = auto_hook_models::load("../models/induction-2l", candle_core::DType::F32, &Device::Cpu)?;
/// let clean = Tensor::new(&[[0u32, 7, 9, 7]], &Device::Cpu)?;   // ... 7 → 9
/// let corrupt = Tensor::new(&[[0u32, 7, 11, 7]], &Device::Cpu)?; // ... 7 → 11
/// let (_, cache) = model.run_with_cache(CacheOptions::all(), |m| m.forward(&clean, None))?;
/// let (a, b) = (Tensor::new(&[9u32], &Device::Cpu)?, Tensor::new(&[11u32], &Device::Cpu)?);
/// let metric = Metric::logits(|l| logit_diff(l, -1, &a, &b)?.mean_all()?.to_scalar::<f32>());
/// let grid = Patching::new(&model, &corrupt, &cache, metric).resid_pre_by_pos()?;
/// assert_eq!(grid.tensor().dims(), [2, 4]); // [layer, pos]
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Patching<'a, M> {
    model: &'a M,
    corrupted: &'a Tensor,
    clean: &'a ActivationCache,
    metric: Metric<'a>,
    progress: bool,
    pos_labels: Option<Vec<String>>,
    corruption: Option<Corruption<'a>>,
}

/// Hooks added to every corrupted run (noise on the subject's embeddings, say).
type Corruption<'a> = Box<dyn for<'s> Fn(Hooks<'s>) -> Hooks<'s> + 'a>;

/// One sweep: the point patched in each layer, and which of its axes are cells.
struct Sweep {
    point: fn(usize) -> Point,
    /// `(axis name, tensor axis)`; the others are patched whole.
    cells: &'static [(&'static str, usize)],
}

impl<'a, M: LensModel> Patching<'a, M> {
    /// Patching `clean`'s activations into runs of `corrupted` token ids, scored by `metric`.
    pub fn new(
        model: &'a M,
        corrupted: &'a Tensor,
        clean: &'a ActivationCache,
        metric: Metric<'a>,
    ) -> Self {
        Self {
            model,
            corrupted,
            clean,
            metric,
            progress: true,
            pos_labels: None,
            corruption: None,
        }
    }

    /// Corrupts every run (baseline and patched) with hooks added by `corrupt`, for a
    /// corruption that is not a change of tokens: causal tracing's noise on the
    /// subject's embeddings (Meng et al. 2022) runs the clean tokens with
    /// `|h| h.add("hook_embed", ..)`. The hooks must do the same in every run (a
    /// fixed noise tensor, not a fresh draw).
    pub fn corrupt_with(mut self, corrupt: impl for<'s> Fn(Hooks<'s>) -> Hooks<'s> + 'a) -> Self {
        self.corruption = Some(Box::new(corrupt));
        self
    }

    /// Shows (default) or hides the progress bar.
    pub fn progress(mut self, show: bool) -> Self {
        self.progress = show;
        self
    }

    /// Labels for the position axis (the prompt's tokens, say) instead of indices.
    pub fn pos_labels(mut self, labels: Vec<String>) -> Self {
        self.pos_labels = Some(labels);
        self
    }

    /// The metric of the corrupted run with nothing patched.
    pub fn baseline(&self) -> Result<f32> {
        self.measure(Hooks::new())
    }

    /// The residual stream entering each layer, one position at a time: `[layer, pos]`.
    pub fn resid_pre_by_pos(&self) -> Result<Labelled> {
        self.sweep(&Sweep {
            point: Point::ResidPre,
            cells: &[("pos", 1)],
        })
    }

    /// Each layer's attention output, one position at a time: `[layer, pos]`.
    pub fn attn_out_by_pos(&self) -> Result<Labelled> {
        self.sweep(&Sweep {
            point: Point::AttnOut,
            cells: &[("pos", 1)],
        })
    }

    /// Each layer's MLP output, one position at a time: `[layer, pos]`.
    pub fn mlp_out_by_pos(&self) -> Result<Labelled> {
        self.sweep(&Sweep {
            point: Point::MlpOut,
            cells: &[("pos", 1)],
        })
    }

    /// Each head's output (`hook_z`) at every position at once: `[layer, head]`.
    pub fn heads_all_pos(&self) -> Result<Labelled> {
        self.sweep(&Sweep {
            point: Point::Z,
            cells: &[("head", 2)],
        })
    }

    /// Each head's output (`hook_z`) one position at a time: `[layer, pos, head]`.
    pub fn heads_by_pos(&self) -> Result<Labelled> {
        self.sweep(&Sweep {
            point: Point::Z,
            cells: &[("pos", 1), ("head", 2)],
        })
    }

    /// Each head's queries at every position: `[layer, head]`.
    pub fn head_q_all_pos(&self) -> Result<Labelled> {
        self.sweep(&Sweep {
            point: Point::Q,
            cells: &[("head", 2)],
        })
    }

    /// Each key head's keys at every position: `[layer, kv_head]`.
    pub fn head_k_all_pos(&self) -> Result<Labelled> {
        self.sweep(&Sweep {
            point: Point::K,
            cells: &[("head", 2)],
        })
    }

    /// Each value head's values at every position: `[layer, kv_head]`.
    pub fn head_v_all_pos(&self) -> Result<Labelled> {
        self.sweep(&Sweep {
            point: Point::V,
            cells: &[("head", 2)],
        })
    }

    /// Each head's attention pattern (all query positions): `[layer, head]`.
    pub fn head_pattern_all_pos(&self) -> Result<Labelled> {
        self.sweep(&Sweep {
            point: Point::Pattern,
            cells: &[("head", 1)],
        })
    }

    /// Runs the corrupted input with `hooks` and scores it.
    fn measure(&self, hooks: Hooks<'_>) -> Result<f32> {
        let hooks = match &self.corruption {
            Some(corrupt) => corrupt(hooks),
            None => hooks,
        };
        let value = match &self.metric {
            Metric::Logits(f) => {
                let logits = self
                    .model
                    .run_with_hooks(hooks, |m| m.logits(self.corrupted))?;
                f(&logits)?
            }
            Metric::Activation(point, f) => {
                let name = self.model.hook_name(*point);
                let cache = self.model.run_with_hooks(hooks.may_not_fire(), |m| {
                    m.run_with_cache_stop_at(name.as_str(), |m| m.logits(self.corrupted))
                })?;
                f(cache.get(&name)?)?
            }
        };
        Ok(value)
    }

    /// Whether patching `patched` can change the metric (an activation metric at an
    /// earlier point cannot see it).
    fn reaches_metric(&self, patched: Point) -> bool {
        match &self.metric {
            Metric::Logits(_) => true,
            Metric::Activation(point, _) => patched.order() <= point.order(),
        }
    }

    fn sweep(&self, sweep: &Sweep) -> Result<Labelled> {
        let n_layers = self.model.n_layers();
        let first = self.clean.get(&self.model.hook_name((sweep.point)(0)))?;
        let sizes: Vec<usize> = sweep
            .cells
            .iter()
            .map(|&(_, axis)| first.dim(axis))
            .collect::<candle_core::Result<_>>()?;
        let per_layer: usize = sizes.iter().product();
        let bar = self.bar((n_layers * per_layer) as u64);
        let mut baseline = None;
        let mut values = Vec::with_capacity(n_layers * per_layer);
        for layer in 0..n_layers {
            let name = self.model.hook_name((sweep.point)(layer));
            let clean = self.clean.get(&name)?;
            for cell in 0..per_layer {
                let index = unravel(cell, &sizes);
                let value = if self.reaches_metric((sweep.point)(layer)) {
                    let block: Vec<(usize, usize)> = sweep
                        .cells
                        .iter()
                        .zip(&index)
                        .map(|(&(_, axis), &i)| (axis, i))
                        .collect();
                    let hooks =
                        Hooks::new().add(name.as_str(), |x, _| patch_block(x, clean, &block));
                    self.measure(hooks)?
                } else if let Some(value) = baseline {
                    value
                } else {
                    let value = self.baseline()?;
                    baseline = Some(value);
                    value
                };
                values.push(value);
                bar.inc(1);
            }
        }
        bar.finish_and_clear();
        let mut shape = vec![n_layers];
        shape.extend(&sizes);
        let tensor = Tensor::from_vec(values, shape, &candle_core::Device::Cpu)?;
        let mut axes = vec![Axis::indices("layer", n_layers)];
        for (&(axis_name, _), &len) in sweep.cells.iter().zip(&sizes) {
            axes.push(self.axis(axis_name, len)?);
        }
        Labelled::new(tensor, axes)
    }

    fn axis(&self, name: &str, len: usize) -> Result<Axis> {
        match (&self.pos_labels, name) {
            (Some(labels), "pos") if labels.len() == len => Ok(Axis::new(name, labels.clone())),
            (Some(labels), "pos") => Err(Error::Input(format!(
                "{} position labels for {len} positions",
                labels.len()
            ))),
            _ => Ok(Axis::indices(name, len)),
        }
    }

    fn bar(&self, len: u64) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(len);
        if let Ok(style) =
            ProgressStyle::with_template("patching {bar:40} {pos}/{len} [{elapsed} < {eta}]")
        {
            bar.set_style(style);
        }
        bar
    }
}

/// Row-major index of cell `i` in a grid of `sizes`.
fn unravel(mut i: usize, sizes: &[usize]) -> Vec<usize> {
    let mut index = vec![0; sizes.len()];
    for (slot, &len) in index.iter_mut().zip(sizes).rev() {
        *slot = i % len;
        i /= len;
    }
    index
}

/// `x` with the block at `(axis, index)` pairs (each of length 1) taken from `clean`.
pub(crate) fn patch_block(
    x: &Tensor,
    clean: &Tensor,
    block: &[(usize, usize)],
) -> candle_core::Result<Tensor> {
    let Some((&(axis, at), rest)) = block.split_first() else {
        return clean.to_dtype(x.dtype());
    };
    if clean.dims() != x.dims() {
        return Err(Error::Input(format!(
            "the clean activation has shape {:?} and the corrupted one {:?}: clean and \
             corrupted inputs must have the same batch and length",
            clean.dims(),
            x.dims()
        ))
        .into());
    }
    let inner = patch_block(&x.narrow(axis, at, 1)?, &clean.narrow(axis, at, 1)?, rest)?;
    crate::pos::replace_slice(x, axis, at, &inner)
}
