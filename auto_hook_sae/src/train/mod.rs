//! Training: settings and schedules, Adam, the per-SAE loss, the loop, checkpoints.

mod analytic;
#[cfg(test)]
mod analytic_check;
mod analytic_jumprelu;
mod analytic_topk;
mod autograd;
mod checkpoint;
mod config;
#[cfg(test)]
mod gradcheck;
mod kernels;
mod optim;
mod progress;
mod sae;
mod sparse;
mod trainer;

pub use config::{LrSchedule, SaeTrainConfig, SparsityLoss};
pub use sae::{SaeTrainer, StepMetrics};
pub use trainer::{TrainRunConfig, TrainedSae, Trainer};

pub(crate) use autograd::explained_variance;
