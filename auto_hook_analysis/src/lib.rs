//! TransformerLens's analysis vocabulary for hooked candle models.
//!
//! - [`LensModel`]: the parts of a model the analysis needs (implemented for
//!   `auto_hook_models::HookedTransformer`; a model of your own implements it), and
//!   [`Point`], the hook points by role.
//! - [`CacheAnalysis`]: `accumulated_resid`, `decompose_resid`, `stack_head_results`,
//!   `stack_neuron_results`, `apply_ln_to_stack`, `logit_attrs`, the logit lens and
//!   direct logit attribution, on a model and the cache of one run; [`logit_diff`],
//!   [`token_ranks`], [`top_tokens`].
//! - [`Patching`]: TransformerLens's activation patching sweeps (residual stream,
//!   attention and MLP outputs by layer × position, heads by layer × head, all positions
//!   or per position, head q/k/v/pattern), each a [`Labelled`] grid, with a progress
//!   bar and early stopping for metrics of an activation.
//! - [`at_position`] and [`PosSlice`]: position-indexed hooks and slices.
//! - Interventions: [`Knockout`] (attention edges), [`ablate_heads`] /
//!   [`ablate_neurons`] (zero or mean), [`steering_vector`] and [`steer`].
//! - Figures: [`Heatmap`] and [`LinePlot`], as PNG or SVG.
//!
//! ```
//! use auto_hook::prelude::*;
//! use auto_hook_analysis::{CacheAnalysis, PosSlice};
//! let model = auto_hook_models::load("../models/induction-2l", candle_core::DType::F32, &candle_core::Device::Cpu)?;
//! let ids = candle_core::Tensor::new(&[[0u32, 5, 9, 17, 5, 9]], &candle_core::Device::Cpu)?;
//! let (_, cache) = model.run_with_cache(CacheOptions::all(), |m| m.forward(&ids, None))?;
//! let analysis = CacheAnalysis::new(&model, &cache);
//! let heads = analysis.stack_head_results(None, PosSlice::Last)?;             // [8 heads, batch, 1, d_model]
//! let answer = candle_core::Tensor::new(&[17u32], &candle_core::Device::Cpu)?;
//! let dla = analysis.direct_logit_attribution(&heads, PosSlice::Last, &answer, None)?;
//! let (best, _) = &dla.top(1)?[0];                                              // the induction head writing 17
//! assert!(best[0].starts_with("L1H"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod intervene;
mod labels;
mod lens;
mod model;
mod patching;
mod plot;
mod pos;
mod resid;
mod transformer;

pub use error::{Error, Result};
pub use intervene::{ablate_heads, ablate_neurons, steer, steering_vector, Ablation, Knockout};
pub use labels::{Axis, Labelled};
pub use lens::{logit_diff, token_logits, token_ranks, top_tokens};
pub use model::{LensModel, Point};
pub use patching::{Metric, Patching, Score};
pub use plot::{Heatmap, LinePlot};
pub use pos::{at_position, position_axis, PosSlice};
pub use resid::CacheAnalysis;

/// The README's Rust blocks, compiled (and run where they need no files) as doctests
/// here: this crate sees every crate they use.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
