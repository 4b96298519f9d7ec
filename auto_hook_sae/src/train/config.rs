//! Training settings of one SAE, and SAELens's schedules.

#[cfg(test)]
use crate::config::Architecture;
use crate::config::SaeConfig;
use crate::error::{Error, Result};
use crate::store::{HookSpec, Layout};

/// The dead-feature window is at most `1 / DEAD_WINDOW_RUN_DIVISOR` of the run.
const DEAD_WINDOW_RUN_DIVISOR: usize = 4;

/// The learning-rate schedule after warm-up (SAELens's `lr_scheduler_name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LrSchedule {
    /// `lr` throughout.
    Constant,
    /// Cosine annealing from `lr` to `lr_end`.
    Cosine,
}

/// The L0 penalty of jumprelu SAEs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SparsityLoss {
    /// DeepMind's step function with the rectangle pseudo-derivative.
    Step,
    /// Anthropic's `tanh(scale · f · ‖W_dec‖)`.
    Tanh { scale: f64 },
}

/// Everything that defines how one SAE is trained (SAELens's names and defaults).
///
/// ```
/// use auto_hook_sae::{Architecture, SaeConfig, SaeTrainConfig};
/// let cfg = SaeTrainConfig::new(SaeConfig::new(64, 512, Architecture::TopK { k: 8 }).with_hook("blocks.0.hook_resid_post"));
/// assert_eq!((cfg.lr, cfg.adam_beta1, cfg.adam_beta2), (3e-4, 0.9, 0.999));
/// assert_eq!(cfg.lr_at(0, 100), 3e-4);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SaeTrainConfig {
    /// The SAE: sizes, architecture, `metadata.hook_name` (required), normalisation.
    pub sae: SaeConfig,
    /// Peak learning rate (3e-4).
    pub lr: f64,
    /// Adam β1 (0.9).
    pub adam_beta1: f64,
    /// Adam β2 (0.999).
    pub adam_beta2: f64,
    /// Schedule after warm-up (constant).
    pub lr_scheduler: LrSchedule,
    /// Linear warm-up steps (0).
    pub lr_warm_up_steps: usize,
    /// Final linear decay steps to 0 (0).
    pub lr_decay_steps: usize,
    /// Learning rate at the end of the cosine (default `lr / 10`).
    pub lr_end: Option<f64>,
    /// standard: L1 coefficient λ (1.0), warmed up linearly over `l1_warm_up_steps`.
    pub l1_coefficient: f64,
    /// standard: L1 warm-up steps (0).
    pub l1_warm_up_steps: usize,
    /// jumprelu: L0 coefficient (1.0), warmed up over `l0_warm_up_steps`.
    pub l0_coefficient: f64,
    /// jumprelu: L0 warm-up steps (0).
    pub l0_warm_up_steps: usize,
    /// jumprelu: bandwidth ε of the rectangle pseudo-derivative (0.05).
    pub jumprelu_bandwidth: f64,
    /// jumprelu: initial threshold (0.01).
    pub jumprelu_init_threshold: f64,
    /// jumprelu: the L0 penalty (step).
    pub jumprelu_sparsity_loss: SparsityLoss,
    /// topk / batchtopk: coefficient of the aux-k loss on dead latents (1.0).
    pub aux_loss_coefficient: f64,
    /// batchtopk: EMA rate of the threshold (0.01).
    pub topk_threshold_lr: f64,
    /// matryoshka_batchtopk: the levels' widths, strictly increasing (`d_sae` is added
    /// as the last level when it is not there) (empty: set them).
    pub matryoshka_widths: Vec<usize>,
    /// matryoshka_batchtopk: one aux-k loss per level, on that level's residual
    /// (false: batchtopk's aux-k loss).
    pub use_matryoshka_aux_loss: bool,
    /// Decoder row norm at initialisation (0.1); `None` keeps kaiming rows.
    pub decoder_init_norm: Option<f64>,
    /// A latent that has not fired for this many steps is dead (1000), capped at a
    /// quarter of the run ([`SaeTrainConfig::dead_window`]) so a short run can still find
    /// (and, for topk / batchtopk, revive through aux-k) its dead latents.
    pub dead_feature_window: usize,
    /// Firing frequencies are measured over windows of this many steps (2000).
    pub feature_sampling_window: usize,
    /// Initialisation seed.
    pub seed: u64,
}

impl SaeTrainConfig {
    /// SAELens's defaults for `sae`; topk and batchtopk train with
    /// `rescale_acts_by_decoder_norm` as in SAELens.
    pub fn new(mut sae: SaeConfig) -> Self {
        if sae.architecture.imp().rescales_by_decoder_norm() {
            sae.rescale_acts_by_decoder_norm = true;
        }
        Self {
            sae,
            lr: 3e-4,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            lr_scheduler: LrSchedule::Constant,
            lr_warm_up_steps: 0,
            lr_decay_steps: 0,
            lr_end: None,
            l1_coefficient: 1.0,
            l1_warm_up_steps: 0,
            l0_coefficient: 1.0,
            l0_warm_up_steps: 0,
            jumprelu_bandwidth: 0.05,
            jumprelu_init_threshold: 0.01,
            jumprelu_sparsity_loss: SparsityLoss::Step,
            aux_loss_coefficient: 1.0,
            topk_threshold_lr: 0.01,
            matryoshka_widths: Vec::new(),
            use_matryoshka_aux_loss: false,
            decoder_init_norm: Some(0.1),
            dead_feature_window: 1000,
            feature_sampling_window: 2000,
            seed: 0,
        }
    }

    /// The hook this SAE reads and its layout (`hook_z` reshape, or `hook_head_index`).
    pub fn hook_spec(&self) -> Result<HookSpec> {
        let name = self.sae.metadata.hook_name.as_deref().ok_or_else(|| {
            Error::Invalid(
                "SaeTrainConfig.sae.metadata.hook_name is not set: which hook should the SAE read?"
                    .into(),
            )
        })?;
        let layout = match (self.sae.reshape_hook_z, self.sae.metadata.hook_head_index) {
            (true, _) => Layout::HookZ,
            (false, Some(h)) => Layout::Head(h),
            (false, None) => Layout::Plain,
        };
        Ok(HookSpec::new(name).layout(layout))
    }

    /// A transcoder's output hook (`metadata.hook_name_out`: its training target, read
    /// in the same forward as its input); `None` for an SAE.
    pub fn hook_spec_out(&self) -> Result<Option<HookSpec>> {
        if !self.sae.architecture.imp().is_transcoder() {
            return Ok(None);
        }
        let name = self
            .sae
            .metadata
            .extra
            .get("hook_name_out")
            .and_then(|v| v.as_str());
        let name = name.ok_or_else(|| {
            Error::Invalid(
                "a transcoder needs metadata.hook_name_out (SaeConfig::with_hook_out): which \
                 hook does it reconstruct?"
                    .into(),
            )
        })?;
        Ok(Some(HookSpec::new(name)))
    }

    /// Checks the settings.
    pub fn validate(&self, total_steps: usize) -> Result<()> {
        self.sae.validate()?;
        self.sae.architecture.imp().validate_training(self)?;
        self.hook_spec()?;
        self.hook_spec_out()?;
        let bad = |msg: String| Err(Error::Invalid(msg));
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad(format!("lr must be positive, got {}", self.lr));
        }
        if self.lr_warm_up_steps + self.lr_decay_steps > total_steps {
            return bad(format!(
                "lr_warm_up_steps + lr_decay_steps = {} exceeds the {total_steps} training steps",
                self.lr_warm_up_steps + self.lr_decay_steps
            ));
        }
        if self.lr_decay_steps > 0
            && self.lr_scheduler == LrSchedule::Cosine
            && self.lr_end() == 0.0
        {
            return bad("lr_decay_steps with lr_end = 0 would decay from 0 to 0".into());
        }
        if self.jumprelu_bandwidth <= 0.0 {
            return bad(format!(
                "jumprelu_bandwidth must be positive, got {}",
                self.jumprelu_bandwidth
            ));
        }
        if self.dead_feature_window == 0 || self.feature_sampling_window == 0 {
            return bad(
                "dead_feature_window and feature_sampling_window must be at least 1".into(),
            );
        }
        Ok(())
    }

    /// The dead-feature window used in a run of `total` steps:
    /// `min(dead_feature_window, max(1, total / 4))`.
    ///
    /// ```
    /// # use auto_hook_sae::{Architecture, SaeConfig, SaeTrainConfig};
    /// let cfg = SaeTrainConfig::new(SaeConfig::new(8, 32, Architecture::Standard).with_hook("x"));
    /// assert_eq!(cfg.dead_window(500), 125);
    /// assert_eq!(cfg.dead_window(100_000), 1000);
    /// ```
    pub fn dead_window(&self, total: usize) -> usize {
        self.dead_feature_window
            .min((total / DEAD_WINDOW_RUN_DIVISOR).max(1))
    }

    /// `lr_end`, defaulting to `lr / 10`.
    pub fn lr_end(&self) -> f64 {
        self.lr_end.unwrap_or(self.lr / 10.0)
    }

    /// The learning rate of step `step` (0-based) of `total` (SAELens's sequence:
    /// linear warm-up from `lr / warm_up`, then constant or cosine, then linear decay to 0).
    pub fn lr_at(&self, step: usize, total: usize) -> f64 {
        let (warm, decay) = (self.lr_warm_up_steps, self.lr_decay_steps);
        let lr = self.lr;
        if step < warm {
            let start = 1.0 / warm as f64;
            let frac = if warm > 1 {
                step as f64 / (warm - 1) as f64
            } else {
                1.0
            };
            return lr * (start + (1.0 - start) * frac);
        }
        let main_steps = total.saturating_sub(warm + decay);
        let end = match self.lr_scheduler {
            LrSchedule::Constant => lr,
            LrSchedule::Cosine => self.lr_end(),
        };
        if step < warm + main_steps || decay == 0 {
            let t = (step - warm) as f64;
            return match self.lr_scheduler {
                LrSchedule::Constant => lr,
                LrSchedule::Cosine if main_steps == 0 => lr,
                LrSchedule::Cosine => {
                    end + (lr - end) * (1.0 + (std::f64::consts::PI * t / main_steps as f64).cos())
                        / 2.0
                }
            };
        }
        let t = (step - warm - main_steps) as f64;
        end * (1.0 - t / decay as f64).max(0.0)
    }

    /// The sparsity coefficient of step `step`: `final · min(step / warm_up, 1)`.
    pub fn coefficient_at(&self, step: usize) -> f64 {
        let Some((value, warm)) = self.sae.architecture.imp().coefficient(self) else {
            return 0.0;
        };
        if warm == 0 {
            value
        } else {
            value * (step as f64 / warm as f64).min(1.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SaeTrainConfig {
        SaeTrainConfig::new(SaeConfig::new(4, 8, Architecture::Standard))
    }

    #[test]
    fn warm_up_then_cosine_then_decay_match_saelens_shape() {
        let c = SaeTrainConfig {
            lr: 1.0,
            lr_end: Some(0.1),
            lr_warm_up_steps: 5,
            lr_decay_steps: 10,
            lr_scheduler: LrSchedule::Cosine,
            ..cfg()
        };
        let total = 100;
        assert!((c.lr_at(0, total) - 0.2).abs() < 1e-12);
        assert!((c.lr_at(4, total) - 1.0).abs() < 1e-12);
        assert!((c.lr_at(5, total) - 1.0).abs() < 1e-12);
        assert!((c.lr_at(5 + 85 / 2, total) - 0.55).abs() < 0.02);
        assert!((c.lr_at(90, total) - 0.1).abs() < 1e-12);
        assert!((c.lr_at(95, total) - 0.05).abs() < 1e-12);
    }

    #[test]
    fn sparsity_coefficient_warms_up_linearly() {
        let c = SaeTrainConfig {
            l1_coefficient: 2.0,
            l1_warm_up_steps: 4,
            ..cfg()
        };
        let v: Vec<f64> = (0..6).map(|s| c.coefficient_at(s)).collect();
        assert_eq!(v, [0.0, 0.5, 1.0, 1.5, 2.0, 2.0]);
    }
}
