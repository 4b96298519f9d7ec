//! The training loop: one activation stream, several SAEs, progress, checkpoints.

use super::config::SaeTrainConfig;
use super::sae::{SaeTrainer, StepMetrics};
use crate::error::{Error, Result};
use crate::sae::Sae;
use crate::store::{ActivationStore, HookSpec, StoreConfig};
use crate::tokens::TokenSource;
use auto_hook::HookedRoot;
use candle_core::Tensor;
use std::path::{Path, PathBuf};

/// Length of a run, checkpoints, progress bar.
///
/// ```
/// use std::io::IsTerminal;
/// let cfg = auto_hook_sae::TrainRunConfig { total_training_steps: 10, ..Default::default() };
/// assert!(cfg.checkpoint_every.is_none());
/// assert_eq!(cfg.progress, std::io::stderr().is_terminal());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TrainRunConfig {
    /// Optimisation steps (each on one batch of `train_batch_size_tokens` rows) (1000).
    pub total_training_steps: usize,
    /// Save a checkpoint every this many steps (to `checkpoint_dir/step_{n}`) (none).
    pub checkpoint_every: Option<usize>,
    /// Where checkpoints go (none).
    pub checkpoint_dir: Option<PathBuf>,
    /// Show an indicatif progress bar (step, tokens/s, loss, L0, explained variance, dead)
    /// on stderr (default: on when stderr is a terminal).
    pub progress: bool,
    /// Batches used to estimate the `expected_average_only_in` input scale (10).
    pub n_batches_for_norm_estimate: usize,
}

impl Default for TrainRunConfig {
    fn default() -> Self {
        Self {
            total_training_steps: 1000,
            checkpoint_every: None,
            checkpoint_dir: None,
            progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            n_batches_for_norm_estimate: 10,
        }
    }
}

/// A trained SAE: the SAE as saved, its log10 feature density, the last step's metrics.
#[derive(Debug, Clone)]
pub struct TrainedSae {
    /// The SAE (input scale folded in).
    pub sae: Sae,
    /// Log10 firing frequency per latent over the last sampling window.
    pub log_sparsity: Tensor,
    /// Metrics of the last step.
    pub last: StepMetrics,
}

impl TrainedSae {
    /// Saves in SAELens's format, with `sparsity.safetensors`.
    pub fn save(&self, folder: impl AsRef<Path>) -> Result<()> {
        self.sae.save(folder, Some(&self.log_sparsity))
    }
}

/// Trains one or more SAEs from one activation stream: each model forward (stopped
/// after the last hook any SAE reads) feeds every SAE, so several hooks of a model, or
/// several configs on one hook, cost one forward.
///
/// ```
/// use auto_hook::prelude::*;
/// use auto_hook_sae::*;
/// use candle_core::{DType, Device, Module, Tensor};
/// #[auto_hook]
/// struct Embed { emb: candle_nn::Embedding }
/// # let vb = candle_nn::VarBuilder::from_tensors(
/// #     [("emb.weight".to_string(), Tensor::randn(0f32, 1.0, (32, 8), &Device::Cpu)?)].into(), DType::F32, &Device::Cpu);
/// # #[auto_hook] impl Embed { fn new(vb: candle_nn::VarBuilder) -> candle_core::Result<Self> { Ok(Self { emb: candle_nn::embedding(32, 8, vb.pp("emb"))? }) } }
/// let model = Embed::new(vb)?;
/// let ids: Vec<u32> = (0..4096).map(|i| (i * 7 % 32) as u32).collect();
/// let tokens = TokenSource::from_ids(&ids, 16, None)?;
/// let store = StoreConfig { store_batch_size_prompts: 8, n_batches_in_buffer: 2, train_batch_size_tokens: 64, ..Default::default() };
/// let sae = SaeTrainConfig::new(SaeConfig::new(8, 16, Architecture::TopK { k: 2 }).with_hook("emb.hook_point"));
/// let run = TrainRunConfig { total_training_steps: 5, ..Default::default() };
/// let mut trainer = Trainer::new(&model, |m: &Embed, ids: &Tensor| m.emb.forward(ids), tokens, store, vec![sae], run)?;
/// let trained = trainer.train()?;
/// assert_eq!(trained[0].sae.cfg().d_sae, 16);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Trainer<'m, M> {
    pub(crate) store: ActivationStore<'m, M>,
    pub(crate) saes: Vec<SaeTrainer>,
    /// For each SAE, the index of its hook in the store.
    hook_of: Vec<usize>,
    /// For each transcoder, the index of its output hook (its target) in the store.
    out_of: Vec<Option<usize>>,
    pub(crate) cfg: TrainRunConfig,
    pub(crate) step: usize,
}

impl<'m, M: HookedRoot> Trainer<'m, M> {
    /// A trainer for `saes` on `model` (see [`ActivationStore::new`] for `forward`).
    pub fn new<T, E: Into<auto_hook::Error>>(
        model: &'m M,
        forward: impl Fn(&M, &Tensor) -> std::result::Result<T, E> + 'm,
        tokens: TokenSource,
        store: StoreConfig,
        saes: Vec<SaeTrainConfig>,
        cfg: TrainRunConfig,
    ) -> Result<Self> {
        if saes.is_empty() {
            return Err(Error::Invalid("no SAE to train".into()));
        }
        let mut hooks: Vec<HookSpec> = Vec::new();
        let mut index_of = |spec: HookSpec| match hooks.iter().position(|h| *h == spec) {
            Some(i) => i,
            None => {
                hooks.push(spec);
                hooks.len() - 1
            }
        };
        let mut hook_of = Vec::new();
        let mut out_of = Vec::new();
        for sae in &saes {
            sae.validate(cfg.total_training_steps)?;
            hook_of.push(index_of(sae.hook_spec()?));
            out_of.push(sae.hook_spec_out()?.map(&mut index_of));
        }
        let device = store.device.clone();
        let store = ActivationStore::new(model, forward, tokens, hooks, store)?;
        let saes = saes
            .into_iter()
            .map(|c| SaeTrainer::new(c, &device))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            store,
            saes,
            hook_of,
            out_of,
            cfg,
            step: 0,
        })
    }

    /// Steps done so far.
    pub fn steps_done(&self) -> usize {
        self.step
    }

    /// The SAEs as they are now (training form: input scale not folded).
    pub fn saes(&self) -> impl Iterator<Item = &Sae> {
        self.saes.iter().map(|s| &s.sae)
    }

    /// One step of every SAE on the next batch of activations (and a checkpoint, when
    /// one is due).
    pub fn step(&mut self) -> Result<Vec<StepMetrics>> {
        if self.step == 0 {
            self.estimate_scales()?;
        }
        let batch = self.store.next_batch()?;
        let total = self.cfg.total_training_steps;
        let mut metrics = Vec::with_capacity(self.saes.len());
        let hooks = self.hook_of.iter().zip(&self.out_of);
        for (sae, (&h, out)) in self.saes.iter_mut().zip(hooks) {
            let hook = &self.store.hooks()[h].name;
            let target = out.map(|o| &batch[o]);
            metrics.push(sae.step_on(&batch[h], target, hook, self.step, total)?);
        }
        self.step += 1;
        if let (Some(every), Some(dir)) = (self.cfg.checkpoint_every, &self.cfg.checkpoint_dir) {
            if self.step.is_multiple_of(every) && self.step < total {
                self.save_checkpoint(dir.join(format!("step_{}", self.step)))?;
            }
        }
        Ok(metrics)
    }

    /// `sqrt(d_in) / E‖x‖` for SAEs with `expected_average_only_in` (SAELens's estimate,
    /// [`SaeTrainer::estimate_input_scale`]) from the store's first batches.
    fn estimate_scales(&mut self) -> Result<()> {
        use crate::config::Normalization::ExpectedAverageOnlyIn;
        let wanted = |s: &SaeTrainer| {
            s.cfg.sae.normalize_activations == ExpectedAverageOnlyIn && s.scaler.factor.is_none()
        };
        if !self.saes.iter().any(wanted) {
            return Ok(());
        }
        let n = self.cfg.n_batches_for_norm_estimate.max(1);
        let batches = (0..n)
            .map(|_| self.store.next_batch())
            .collect::<Result<Vec<_>>>()?;
        for (sae, &h) in self.saes.iter_mut().zip(&self.hook_of) {
            if wanted(sae) {
                sae.estimate_input_scale(batches.iter().map(|b| &b[h]))?;
            }
        }
        Ok(())
    }

    /// Trains to `total_training_steps` (from wherever a resumed run is), with progress
    /// and checkpoints as configured, and returns the trained SAEs.
    pub fn train(&mut self) -> Result<Vec<TrainedSae>> {
        let total = self.cfg.total_training_steps;
        let bar = super::progress::Progress::new(self.cfg.progress, total, self.step);
        let start_tokens = self.store.tokens_seen();
        let mut last = vec![StepMetrics::default(); self.saes.len()];
        while self.step < total {
            last = self.step()?;
            bar.update(self.step, self.store.tokens_seen() - start_tokens, &last);
        }
        bar.finish();
        self.trained(&last)
    }

    fn trained(&self, last: &[StepMetrics]) -> Result<Vec<TrainedSae>> {
        self.saes
            .iter()
            .zip(last)
            .map(|(s, m)| {
                Ok(TrainedSae {
                    sae: s.export()?,
                    log_sparsity: s.log_sparsity()?,
                    last: *m,
                })
            })
            .collect()
    }
}
