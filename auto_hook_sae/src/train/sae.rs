//! One SAE in training: its variables, its optimizer, its loss and its statistics.

use super::autograd::explained_variance;
use super::config::SaeTrainConfig;
use super::optim::Adam;
use super::scaler::ActivationScaler;
use crate::config::Normalization;
use crate::error::{Error, Result};
use crate::params::SaeParams;
use crate::sae::Sae;
use candle_core::{DType, Device, Tensor, Var};

/// The losses and statistics of one training step.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StepMetrics {
    /// Total loss.
    pub loss: f64,
    /// The reconstruction term of the loss: squared error summed over `d_in`, averaged
    /// over tokens, as SAELens's `mse_loss` (not the per-element mean that
    /// [`ReconstructionMetrics::mse`](crate::ReconstructionMetrics::mse) reports).
    pub mse_loss: f64,
    /// L1 (standard), L0 (jumprelu) or aux-k (topk, batchtopk) loss.
    pub aux: f64,
    /// Mean number of active latents per token.
    pub l0: f64,
    /// `1 - Σ‖x - x̂‖² / Σ‖x - mean‖²` over the batch.
    pub explained_variance: f64,
    /// Latents that have not fired for the run's dead-feature window
    /// ([`SaeTrainConfig::dead_window`](crate::SaeTrainConfig::dead_window)).
    pub dead: usize,
    /// Learning rate used.
    pub lr: f64,
}

/// One SAE being trained on batches you provide (the [`Trainer`](crate::Trainer) feeds
/// it from an activation store): variables shared with an [`Sae`] view, Adam,
/// dead-feature counters and firing frequencies.
///
/// ```
/// use auto_hook_sae::{Architecture, SaeConfig, SaeTrainer, SaeTrainConfig};
/// use candle_core::{Device, Tensor};
/// let cfg = SaeTrainConfig::new(SaeConfig::new(8, 32, Architecture::TopK { k: 2 }).with_hook("x"));
/// let mut trainer = SaeTrainer::new(cfg, &Device::Cpu)?;
/// let x = Tensor::randn(0f32, 1.0, (64, 8), &Device::Cpu)?;
/// let first = trainer.step(&x, 0, 10)?;
/// for step in 1..10 { trainer.step(&x, step, 10)?; }
/// assert!(trainer.step(&x, 9, 10)?.mse_loss < first.mse_loss);
/// # Ok::<(), auto_hook_sae::Error>(())
/// ```
pub struct SaeTrainer {
    pub(crate) cfg: SaeTrainConfig,
    pub(crate) sae: Sae,
    pub(crate) params: SaeParams<Var>,
    pub(crate) adam: Adam,
    /// Steps since each latent last fired.
    pub(crate) since_fired: Vec<u32>,
    /// Firings per latent in the current sampling window, and the rows counted.
    pub(crate) act_freq: Vec<f64>,
    pub(crate) freq_rows: u64,
    /// batchtopk's threshold θ: an exponential moving average of the smallest latent
    /// each batch kept (SAELens's `topk_threshold`); saved as the jumprelu threshold.
    pub(crate) batchtopk_threshold: f64,
    /// The dead-feature window of this run ([`SaeTrainConfig::dead_window`]).
    pub(crate) dead_window: u32,
    /// `sqrt(d_in) / E‖x‖` when `normalize_activations = expected_average_only_in`.
    pub(crate) scaler: ActivationScaler,
    /// Buffers of the analytic step, reused from step to step.
    pub(crate) scratch: super::analytic::Scratch,
}

impl SaeTrainer {
    /// A freshly initialised SAE (SAELens's init, seeded by `cfg.seed`) on `device`.
    pub fn new(cfg: SaeTrainConfig, device: &Device) -> Result<Self> {
        cfg.sae.architecture.imp().validate_training(&cfg)?;
        let mut init = Sae::init(&cfg.sae, cfg.decoder_init_norm, cfg.seed, device)?.p;
        let trained = cfg.sae.architecture.imp().trained_threshold(&cfg);
        if let Some(theta) = trained {
            let d = cfg.sae.d_sae;
            init.threshold = Some((Tensor::ones(d, cfg.sae.dtype, device)? * theta)?);
        }
        // batchtopk's threshold is not trained by gradient: it stays out of the variables.
        let fixed_threshold = match trained {
            Some(_) => None,
            None => init.threshold.take(),
        };
        let params = init.try_map(|_, t| Ok(Var::from_tensor(t)?))?;
        let mut view = params.try_map(|_, v| Ok(v.as_tensor().clone()))?;
        view.threshold = view.threshold.or(fixed_threshold);
        let sae = Sae::from_params(cfg.sae.clone(), view)?;
        let adam = Adam::new(
            params.iter().map(|(name, v)| (name, v.clone())),
            cfg.adam_beta1,
            cfg.adam_beta2,
        )?;
        let d_sae = cfg.sae.d_sae;
        Ok(Self {
            dead_window: cfg.dead_feature_window.min(u32::MAX as usize) as u32,
            cfg,
            sae,
            params,
            adam,
            since_fired: vec![0; d_sae],
            act_freq: vec![0.0; d_sae],
            freq_rows: 0,
            batchtopk_threshold: 0.0,
            scaler: ActivationScaler::default(),
            scratch: Default::default(),
        })
    }

    /// The trained variables by name (shared with [`SaeTrainer::sae`]'s tensors).
    pub fn params(&self) -> &SaeParams<Var> {
        &self.params
    }

    /// jumprelu's trained threshold.
    pub(crate) fn threshold_var(&self) -> Result<&Var> {
        self.params
            .threshold
            .as_ref()
            .ok_or_else(|| Error::Invalid("this SAE trains no threshold".into()))
    }

    pub(crate) fn dead_mask(&self) -> Vec<bool> {
        let window = self.dead_window;
        self.since_fired.iter().map(|&n| n > window).collect()
    }

    /// One optimisation step on `x` `[n, d_in]` as step `step` of `total` (for the
    /// schedules). A width other than `d_in` is an error naming the hook.
    pub fn step(&mut self, x: &Tensor, step: usize, total: usize) -> Result<StepMetrics> {
        let hook = self.cfg.sae.metadata.hook_name.clone().unwrap_or_default();
        self.step_on(x, None, &hook, step, total)
    }

    /// For a transcoder: one optimisation step on the input rows `x` `[n, d_in]` and the
    /// output hook's rows `y` `[n, d_out]` of the same tokens (the target). The
    /// [`Trainer`](crate::Trainer) takes both from one forward of the model.
    ///
    /// ```
    /// use auto_hook_sae::{Architecture, SaeConfig, SaeTrainer, SaeTrainConfig};
    /// use candle_core::{Device, Tensor};
    /// let arch = Architecture::Transcoder { jumprelu: false, skip: true };
    /// let sae = SaeConfig::new(8, 32, arch).with_hook("in").with_hook_out("out", 4);
    /// let mut trainer = SaeTrainer::new(SaeTrainConfig::new(sae), &Device::Cpu)?;
    /// let x = Tensor::randn(0f32, 1.0, (64, 8), &Device::Cpu)?;
    /// let y = x.narrow(1, 0, 4)?.relu()?; // a function of x to learn
    /// let first = trainer.step_pair(&x, &y, 0, 30)?;
    /// for step in 1..30 { trainer.step_pair(&x, &y, step, 30)?; }
    /// assert!(trainer.step_pair(&x, &y, 29, 30)?.mse_loss < first.mse_loss);
    /// # Ok::<(), auto_hook_sae::Error>(())
    /// ```
    pub fn step_pair(
        &mut self,
        x: &Tensor,
        y: &Tensor,
        step: usize,
        total: usize,
    ) -> Result<StepMetrics> {
        let hook = self.cfg.sae.metadata.hook_name.clone().unwrap_or_default();
        self.step_on(x, Some(y), &hook, step, total)
    }

    /// For an SAE with `normalize_activations = expected_average_only_in`: sets the input
    /// scale `sqrt(d_in) / E‖x‖` from sample batches (`[n, d_in]` each; the mean of each
    /// batch's mean row norm, as SAELens estimates it) and returns it. Every later
    /// training batch is multiplied by it, and [`SaeTrainer::export`] folds it into the
    /// weights. The [`Trainer`](crate::Trainer) calls this with its first batches; call
    /// it yourself when you feed batches to [`SaeTrainer::step`]. Other normalizations:
    /// `None`, nothing set.
    ///
    /// ```
    /// use auto_hook_sae::{Architecture, Normalization, SaeConfig, SaeTrainer, SaeTrainConfig};
    /// use candle_core::{Device, Tensor};
    /// let mut sae = SaeConfig::new(4, 8, Architecture::TopK { k: 2 });
    /// sae.normalize_activations = Normalization::ExpectedAverageOnlyIn;
    /// let mut trainer = SaeTrainer::new(SaeTrainConfig::new(sae), &Device::Cpu)?;
    /// let x = (Tensor::ones((16, 4), candle_core::DType::F32, &Device::Cpu)? * 10.0)?; // ‖x‖ = 20
    /// assert_eq!(trainer.estimate_input_scale([&x])?, Some(0.1));
    /// # Ok::<(), auto_hook_sae::Error>(())
    /// ```
    pub fn estimate_input_scale<'a>(
        &mut self,
        batches: impl IntoIterator<Item = &'a Tensor>,
    ) -> Result<Option<f64>> {
        if self.cfg.sae.normalize_activations != Normalization::ExpectedAverageOnlyIn {
            return Ok(None);
        }
        let (mut sum, mut n) = (0f64, 0usize);
        for x in batches {
            sum += ActivationScaler::mean_norm(x)?;
            n += 1;
        }
        if n == 0 {
            return Err(Error::Invalid(
                "no batch to estimate the input scale from".into(),
            ));
        }
        self.scaler = ActivationScaler::from_mean_norm(self.cfg.sae.d_in, sum / n as f64);
        Ok(self.scaler.factor)
    }

    /// The SAE as it is now (training form).
    pub fn sae(&self) -> &Sae {
        &self.sae
    }

    /// The training settings.
    pub fn config(&self) -> &SaeTrainConfig {
        &self.cfg
    }

    /// Checks a batch against the SAE, then takes one optimisation step on it.
    pub(crate) fn step_on(
        &mut self,
        x: &Tensor,
        target: Option<&Tensor>,
        hook: &str,
        step: usize,
        total: usize,
    ) -> Result<StepMetrics> {
        self.check_batch(x, target, hook)?;
        self.dead_window = self.cfg.dead_window(total).min(u32::MAX as usize) as u32;
        if step.is_multiple_of(self.cfg.feature_sampling_window) && step > 0 {
            self.act_freq.iter_mut().for_each(|f| *f = 0.0);
            self.freq_rows = 0;
        }
        let x = x.to_dtype(self.cfg.sae.dtype)?;
        let x = self.scaler.scale(x)?;
        let y = target.map(|y| y.to_dtype(self.cfg.sae.dtype)).transpose()?;
        if let Some(theta) = &self.params.threshold {
            // SAELens 6.54 projects the threshold onto θ ≥ 0 before each training
            // forward (below zero the gate would pass negative pre-activations).
            theta.set(&theta.as_tensor().relu()?)?;
        }
        let coefficient = self.cfg.coefficient_at(step);
        let lr = self.cfg.lr_at(step, total);
        let (mse, aux, l0, ev) = if self.analytic_supported() {
            let a = self.analytic_to(&x, y.as_ref(), coefficient)?;
            let grads = a.grads;
            self.adam
                .step_named(|name| grads.get(name).cloned().flatten(), lr, Some(1.0))?;
            let l0 = self.track_fired(&a.fired, x.dim(0)?);
            self.cfg.sae.architecture.imp().post_step(self, a.min_kept);
            (a.mse, a.aux, l0, a.explained_variance)
        } else {
            let y = y.as_ref().unwrap_or(&x);
            let (mse, aux, l0, recon) = self.autograd_step(&x, y, coefficient, lr)?;
            (mse, aux, l0, explained_variance(y, &recon)?)
        };
        Ok(StepMetrics {
            loss: mse + aux,
            mse_loss: mse,
            aux,
            l0,
            explained_variance: ev,
            dead: self.dead_mask().iter().filter(|d| **d).count(),
            lr,
        })
    }

    /// A batch's shape against the SAE: rows, `d_in`, and for a transcoder its target
    /// (`d_out`, the same rows; required).
    fn check_batch(&self, x: &Tensor, target: Option<&Tensor>, hook: &str) -> Result<()> {
        let (rows, width) = x.dims2()?;
        if rows == 0 {
            return Err(Error::Invalid(format!(
                "empty training batch for the SAE on `{hook}` (0 rows of {width})"
            )));
        }
        if width != self.cfg.sae.d_in {
            return Err(Error::DInMismatch {
                hook: hook.to_owned(),
                d_in: self.cfg.sae.d_in,
                width,
            });
        }
        let transcoder = self.cfg.sae.architecture.imp().is_transcoder();
        match (transcoder, target) {
            (true, None) => Err(Error::Invalid(format!(
                "the transcoder on `{hook}` trains on (input, output) pairs: use step_pair"
            ))),
            (false, Some(_)) => Err(Error::Invalid(format!(
                "the SAE on `{hook}` reconstructs its input: use step, not step_pair"
            ))),
            (true, Some(y)) if y.dims() != [rows, self.cfg.sae.d_out()] => Err(Error::Shape {
                what: format!("transcoder target for `{hook}`"),
                problem: format!(
                    "expected [{rows}, {}] (rows of the input, d_out), got {:?}",
                    self.cfg.sae.d_out(),
                    y.dims()
                ),
            }),
            _ => Ok(()),
        }
    }

    /// One step through candle's autograd (every architecture) towards the target `y`
    /// (`x` for an SAE); `(mse, aux, l0, ŷ)`.
    fn autograd_step(
        &mut self,
        x: &Tensor,
        y: &Tensor,
        coefficient: f64,
        lr: f64,
    ) -> Result<(f64, f64, f64, Tensor)> {
        let out = self.forward_to(x, y, coefficient)?;
        let grads = out.loss.backward()?;
        self.adam.step(&grads, lr, Some(1.0))?;
        let l0 = self.track(&out.acts)?;
        self.cfg
            .sae
            .architecture
            .imp()
            .post_step(self, out.min_kept);
        let scalar =
            |t: &Tensor| -> Result<f64> { Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?) };
        Ok((scalar(&out.mse)?, scalar(&out.aux)?, l0, out.recon))
    }

    /// Updates the dead-feature counters and firing counts; returns the mean L0.
    fn track(&mut self, acts: &Tensor) -> Result<f64> {
        let fired = acts
            .ne(0.0)?
            .to_dtype(DType::U32)?
            .sum(0)?
            .to_vec1::<u32>()?;
        Ok(self.track_fired(&fired, acts.dim(0)?))
    }

    /// [`Self::track`] from the rows each latent fired in, out of `rows`.
    fn track_fired(&mut self, fired: &[u32], rows: usize) -> f64 {
        let mut total = 0f64;
        for (i, &n) in fired.iter().enumerate() {
            total += n as f64;
            self.act_freq[i] += n as f64;
            self.since_fired[i] = if n > 0 {
                0
            } else {
                self.since_fired[i].saturating_add(1)
            };
        }
        self.freq_rows += rows as u64;
        total / rows.max(1) as f64
    }

    /// Log10 firing frequency per latent over the current window (SAELens's sparsity).
    pub fn log_sparsity(&self) -> Result<Tensor> {
        let rows = self.freq_rows.max(1) as f64;
        let v: Vec<f32> = self
            .act_freq
            .iter()
            .map(|f| (f / rows + 1e-10).log10() as f32)
            .collect();
        Ok(Tensor::from_vec(v, self.act_freq.len(), &Device::Cpu)?)
    }

    /// The trained SAE as it is saved: the input scale folded into the weights,
    /// batchtopk's threshold attached (decoder norms are folded by `Sae::save`).
    pub fn export(&self) -> Result<Sae> {
        let mut p = self.sae.p.try_map(|_, t| Ok(t.copy()?))?;
        let mut cfg = self.sae.cfg.clone();
        if self.scaler.fold(&mut p.w_enc, &mut p.w_dec, &mut p.b_dec)? {
            cfg.normalize_activations = Normalization::None;
        }
        p.threshold = cfg.architecture.imp().export_threshold(self)?;
        Sae::from_params(cfg, p)
    }
}
