//! Training: settings and schedules, Adam, the per-SAE loss, the loop, checkpoints.

mod analytic;
#[cfg(test)]
mod analytic_check;
mod analytic_gated;
mod analytic_jumprelu;
mod analytic_matryoshka;
mod analytic_topk;
mod autograd;
mod checkpoint;
mod config;
#[cfg(test)]
mod gradcheck;
mod kernels;
mod optim;
#[cfg(test)]
mod parity_check;
mod progress;
mod sae;
mod scaler;
mod sparse;
mod trainer;

pub use config::{LrSchedule, SaeTrainConfig, SparsityLoss};
pub use sae::{SaeTrainer, StepMetrics};
pub use trainer::{TrainRunConfig, TrainedSae, Trainer};

pub(crate) use analytic::{Analytic, Grads as AnalyticGrads, Scratch};
pub(crate) use autograd::explained_variance;
pub(crate) use sparse::sparse_decode;
