//! Training: settings and schedules, Adam, the per-SAE loss, the loop, checkpoints.

mod checkpoint;
mod config;
mod optim;
mod progress;
mod sae;
mod trainer;

pub use config::{LrSchedule, SparsityLoss, TrainConfig};
pub use optim::Adam;
pub use sae::StepMetrics;
pub use trainer::{TrainedSae, Trainer, TrainerConfig};

#[allow(unused_imports)] // used by the evaluation module
pub(crate) use sae::explained_variance;
