//! The activation store: model activations at hook points, stopped at the hook, in a
//! seeded shuffling buffer.

use crate::error::{Error, Result};
use crate::tokens::TokenSource;
use auto_hook::rng::Rng;
use auto_hook::{CacheOptions, HookedRoot};
use candle_core::{DType, Device, Tensor};
use serde_json::{json, Value};
use std::collections::HashMap;

/// How a hook's activation becomes rows of SAE inputs.
///
/// `[batch, pos, d]` → `[batch·pos, d]`; `[batch, d]` → itself; `[batch, pos, heads,
/// d_head]` needs [`Layout::HookZ`] (SAELens's `hook_z` flattening to `heads·d_head`) or
/// [`Layout::Head`] (one head, `d_head` wide).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Rank 2 or 3 activations.
    Plain,
    /// `[.., heads, d_head]` flattened to `heads * d_head`.
    HookZ,
    /// Only head `h` of `[.., heads, d_head]`.
    Head(usize),
}

/// A hook point the store reads, and its layout.
///
/// ```
/// use auto_hook_sae::{HookSpec, Layout};
/// let spec = HookSpec::new("blocks.0.attn.hook_z").layout(Layout::HookZ);
/// assert_eq!(spec.name, "blocks.0.attn.hook_z");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookSpec {
    /// The hook name.
    pub name: String,
    /// How its activation becomes rows.
    pub layout: Layout,
}

impl HookSpec {
    /// A plain hook (`[batch, pos, d]` or `[batch, d]`).
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            layout: Layout::Plain,
        }
    }

    /// Sets the layout.
    pub fn layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    /// Turns one activation of this hook into rows `[n, width]` (f32), checking rank and
    /// values.
    pub fn rows(&self, act: &Tensor, skip_first_position: bool) -> Result<Tensor> {
        let shape_err = |problem: String| Error::Shape {
            what: format!("activation at `{}`", self.name),
            problem,
        };
        let act = match (act.rank(), skip_first_position) {
            (3 | 4, true) if act.dim(1)? > 1 => act.narrow(1, 1, act.dim(1)? - 1)?,
            _ => act.clone(),
        };
        let rows = match (act.rank(), self.layout) {
            (2, Layout::Plain) => act,
            (3, Layout::Plain) => act.flatten_to(1)?,
            (4, Layout::HookZ) => act.flatten_from(2)?.flatten_to(1)?,
            (4, Layout::Head(h)) => {
                let heads = act.dim(2)?;
                if h >= heads {
                    return Err(shape_err(format!("head {h} asked, the activation has {heads} heads")));
                }
                act.narrow(2, h, 1)?.squeeze(2)?.flatten_to(1)?
            }
            (4, Layout::Plain) => {
                return Err(shape_err(format!(
                    "shape {:?} is [batch, pos, heads, d_head]: use Layout::HookZ or Layout::Head",
                    act.dims()
                )))
            }
            (r, layout) => {
                return Err(shape_err(format!(
                    "unsupported rank {r} (shape {:?}) for layout {layout:?}: expected [batch, d], [batch, pos, d] or [batch, pos, heads, d_head]",
                    act.dims()
                )))
            }
        };
        let rows = rows.to_dtype(DType::F32)?.contiguous()?;
        // NaN and inf propagate into the sum of squares (as would values above ~1e19).
        let finite = rows.sqr()?.sum_all()?.to_scalar::<f32>()?.is_finite();
        if !finite {
            return Err(Error::NonFinite {
                what: format!("the activation at `{}`", self.name),
            });
        }
        Ok(rows)
    }
}

/// Store sizes and seed (SAELens's names; defaults in brackets, as SAELens's
/// `LanguageModelSAERunnerConfig` except where noted). A full buffer holds
/// `n_batches_in_buffer × store_batch_size_prompts × context_size` rows (64 × 8 × the
/// context by default); half of it is kept back to mix with the next refill.
///
/// ```
/// let cfg = auto_hook_sae::StoreConfig { train_batch_size_tokens: 1024, ..Default::default() };
/// assert_eq!(cfg.buffer_rows(32), 64 * 32 * 8);
/// assert_eq!((cfg.store_batch_size_prompts, cfg.n_batches_in_buffer), (64, 8));
/// ```
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Sequences per model forward (64; SAELens's default is 32).
    pub store_batch_size_prompts: usize,
    /// Model forwards per buffer refill (8; SAELens's default is 20).
    pub n_batches_in_buffer: usize,
    /// Rows per training batch (4096).
    pub train_batch_size_tokens: usize,
    /// Fraction of the shuffled buffer kept back for mixing with the next refill (0.5).
    pub mix_fraction: f64,
    /// Drop position 0 (BOS) of each sequence (false).
    pub skip_first_position: bool,
    /// Token ids whose rows are left out (none): SAELens's `exclude_special_tokens`,
    /// e.g. the BOS/EOS token that separates documents, whose residual norm can be many
    /// times the others'. Every hook must then give one row per token.
    pub exclude_special_tokens: Vec<u32>,
    /// Shuffle seed (0).
    pub seed: u64,
    /// Where activations are stored: the SAE's device (CPU).
    pub device: Device,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            store_batch_size_prompts: 64,
            n_batches_in_buffer: 8,
            train_batch_size_tokens: 4096,
            mix_fraction: 0.5,
            skip_first_position: false,
            exclude_special_tokens: Vec::new(),
            seed: 0,
            device: Device::Cpu,
        }
    }
}

impl StoreConfig {
    /// Rows a full buffer holds for sequences of `context_size` tokens.
    pub fn buffer_rows(&self, context_size: usize) -> usize {
        self.n_batches_in_buffer * self.store_batch_size_prompts * context_size
    }
}

type Forward<'m, M> = Box<dyn Fn(&M, &Tensor) -> auto_hook::Result<()> + 'm>;

/// Activations of one model at one or more hook points, read with
/// `run_with_cache_stop_at` (layers after the last hook never run), shuffled in a seeded
/// mixing buffer and served as batches `[train_batch_size_tokens, width]`, one per hook,
/// row-aligned (row `i` of every hook's batch comes from the same token). Token
/// sequences are read in order and wrap around at the end.
pub struct ActivationStore<'m, M> {
    model: &'m M,
    forward: Forward<'m, M>,
    tokens: TokenSource,
    hooks: Vec<HookSpec>,
    cfg: StoreConfig,
    state: StoreState,
}

/// The store's numbers in checkpoints, by name (and their order in the array that
/// checkpoints written before names hold).
const STATE_NUMBERS: [&str; 4] = ["cursor", "rng", "served", "tokens_seen"];

/// What a checkpoint needs to resume the store exactly.
#[derive(Debug, Clone, Default)]
pub(crate) struct StoreState {
    pub(crate) cursor: usize,
    pub(crate) rng: u64,
    pub(crate) storage: Vec<Tensor>,
    pub(crate) serving: Vec<Tensor>,
    pub(crate) served: usize,
    pub(crate) tokens_seen: u64,
}

impl<'m, M: HookedRoot> ActivationStore<'m, M> {
    /// A store over `model`, whose forward on a `[n, context_size]` u32 batch is
    /// `forward` (e.g. `|m, ids| m.forward(ids, None)`). Every hook name is checked.
    pub fn new<T, E: Into<auto_hook::Error>>(
        model: &'m M,
        forward: impl Fn(&M, &Tensor) -> std::result::Result<T, E> + 'm,
        tokens: TokenSource,
        hooks: Vec<HookSpec>,
        cfg: StoreConfig,
    ) -> Result<Self> {
        if hooks.is_empty() {
            return Err(Error::Invalid(
                "the activation store needs at least one hook".into(),
            ));
        }
        let names = model.hook_point_names();
        for hook in &hooks {
            auto_hook::Filter::Exact(hook.name.clone())
                .validate(names.iter().map(String::as_str))?;
        }
        if cfg.train_batch_size_tokens == 0
            || cfg.store_batch_size_prompts == 0
            || cfg.n_batches_in_buffer == 0
        {
            return Err(Error::Invalid("store sizes must be at least 1".into()));
        }
        if !(0.0..1.0).contains(&cfg.mix_fraction) {
            return Err(Error::Invalid(format!(
                "mix_fraction {} must be in [0, 1)",
                cfg.mix_fraction
            )));
        }
        let state = StoreState {
            rng: Rng::new(cfg.seed).state(),
            ..StoreState::default()
        };
        Ok(Self {
            model,
            forward: Box::new(move |m, ids| forward(m, ids).map(|_| ()).map_err(Into::into)),
            tokens,
            hooks,
            cfg,
            state,
        })
    }

    /// The hooks, in the order batches are returned.
    pub fn hooks(&self) -> &[HookSpec] {
        &self.hooks
    }

    /// The token source.
    pub fn tokens(&self) -> &TokenSource {
        &self.tokens
    }

    /// Tokens whose activations entered the buffer so far.
    pub fn tokens_seen(&self) -> u64 {
        self.state.tokens_seen
    }

    /// Rows for each hook for the token batch `ids` (`[n, context_size]`): one forward,
    /// stopped once every hook fired.
    /// With `exclude_special_tokens`, the rows of the other tokens only.
    pub fn activations(&self, ids: &Tensor) -> Result<Vec<Tensor>> {
        let names: Vec<String> = self.hooks.iter().map(|h| h.name.clone()).collect();
        let cache = self
            .model
            .run_with_cache_stop_at(CacheOptions::names(names), |m| (self.forward)(m, ids))?;
        let kept = self.kept_rows(ids)?;
        self.hooks
            .iter()
            .map(|hook| {
                let act = cache.get(&hook.name)?;
                let mut rows = hook.rows(act, self.cfg.skip_first_position)?;
                if let Some((kept, tokens)) = &kept {
                    if rows.dim(0)? != *tokens {
                        return Err(Error::Shape {
                            what: format!("activation at `{}`", hook.name),
                            problem: format!(
                                "exclude_special_tokens needs one row per token ({tokens}), it gives {} rows (shape {:?})",
                                rows.dim(0)?,
                                act.dims()
                            ),
                        });
                    }
                    rows = rows.index_select(kept, 0)?;
                }
                Ok(rows.to_device(&self.cfg.device)?)
            })
            .collect()
    }

    /// With `exclude_special_tokens`: the indices of the rows to keep among the batch's
    /// tokens (after `skip_first_position`), and how many tokens that is.
    fn kept_rows(&self, ids: &Tensor) -> Result<Option<(Tensor, usize)>> {
        let excluded = &self.cfg.exclude_special_tokens;
        if excluded.is_empty() {
            return Ok(None);
        }
        let device = ids.device().clone();
        let ids = match self.cfg.skip_first_position {
            true if ids.dim(1)? > 1 => ids.narrow(1, 1, ids.dim(1)? - 1)?,
            _ => ids.clone(),
        };
        let ids = ids.flatten_all()?.to_dtype(DType::U32)?.to_vec1::<u32>()?;
        let kept: Vec<u32> = (0..ids.len() as u32)
            .filter(|&i| !excluded.contains(&ids[i as usize]))
            .collect();
        let n = kept.len();
        Ok(Some((Tensor::from_vec(kept, n, &device)?, ids.len())))
    }

    /// The next training batch for each hook.
    pub fn next_batch(&mut self) -> Result<Vec<Tensor>> {
        let b = self.cfg.train_batch_size_tokens;
        if self.state.serving.is_empty() || self.state.served + b > self.state.serving[0].dim(0)? {
            self.refill()?;
        }
        let start = self.state.served;
        self.state.served += b;
        self.state
            .serving
            .iter()
            .map(|t| Ok(t.narrow(0, start, b)?))
            .collect()
    }

    /// Fills the buffer to `buffer_rows`, shuffles it, and moves `1 - mix_fraction` of it
    /// (whole batches, at least one) to the serving queue.
    fn refill(&mut self) -> Result<()> {
        let b = self.cfg.train_batch_size_tokens;
        let target = self.cfg.buffer_rows(self.tokens.context_size()).max(b);
        let mut storage = std::mem::take(&mut self.state.storage);
        // Forwards in a row that added no row (every token excluded).
        let mut empty = 0;
        while storage.first().map_or(0, |t| t.dim(0).unwrap_or(0)) < target {
            let n = self.cfg.store_batch_size_prompts;
            if empty > self.tokens.len() / n + 1 {
                self.state.storage = storage;
                return Err(Error::Invalid(format!(
                    "a whole pass over the tokens gave no activation: exclude_special_tokens {:?} excludes every token",
                    self.cfg.exclude_special_tokens
                )));
            }
            let ids = self.tokens.batch(self.state.cursor, n)?;
            self.state.cursor = (self.state.cursor + n) % self.tokens.len();
            self.state.tokens_seen += (n * self.tokens.context_size()) as u64;
            let rows = self.activations(&ids)?;
            empty = if rows[0].dim(0)? == 0 { empty + 1 } else { 0 };
            storage = if storage.is_empty() {
                rows
            } else {
                storage
                    .iter()
                    .zip(rows)
                    .map(|(s, r)| Tensor::cat(&[s, &r], 0))
                    .collect::<candle_core::Result<_>>()?
            };
        }
        let total = storage[0].dim(0)?;
        let mut rng = Rng::from_state(self.state.rng);
        let mut perm: Vec<u32> = (0..total as u32).collect();
        rng.shuffle(&mut perm);
        self.state.rng = rng.state();
        let perm = Tensor::from_vec(perm, total, storage[0].device())?;
        let shuffled: Vec<Tensor> = storage
            .iter()
            .map(|t| t.index_select(&perm, 0))
            .collect::<candle_core::Result<_>>()?;
        let n_serve = ((total as f64 * (1.0 - self.cfg.mix_fraction)) as usize / b).max(1) * b;
        self.state.serving = shuffled
            .iter()
            .map(|t| t.narrow(0, 0, n_serve))
            .collect::<candle_core::Result<_>>()?;
        self.state.storage = shuffled
            .iter()
            .map(|t| t.narrow(0, n_serve, total - n_serve))
            .collect::<candle_core::Result<_>>()?;
        self.state.served = 0;
        Ok(())
    }

    /// The store's state as tensors and named numbers (for checkpoints).
    pub(crate) fn state_tensors(&self) -> Result<(HashMap<String, Tensor>, Value)> {
        let mut map = HashMap::new();
        for (i, t) in self.state.storage.iter().enumerate() {
            map.insert(format!("store.storage.{i}"), t.contiguous()?);
        }
        for (i, t) in self.state.serving.iter().enumerate() {
            map.insert(format!("store.serving.{i}"), t.contiguous()?);
        }
        let s = &self.state;
        let nums = json!({
            "cursor": s.cursor,
            "rng": s.rng,
            "served": s.served,
            "tokens_seen": s.tokens_seen,
        });
        Ok((map, nums))
    }

    /// Restores what [`ActivationStore::state_tensors`] saved: the numbers by name, or
    /// (checkpoints written before names) as `[cursor, rng, served, tokens_seen]`.
    pub(crate) fn restore(&mut self, map: &HashMap<String, Tensor>, nums: &Value) -> Result<()> {
        let num = |name: &str, legacy: usize| -> Result<u64> {
            let v = match nums {
                Value::Array(a) if a.len() == STATE_NUMBERS.len() => &a[legacy],
                Value::Array(a) => {
                    return Err(Error::Invalid(format!(
                        "checkpoint: the store state has {} numbers, expected {}",
                        a.len(),
                        STATE_NUMBERS.len()
                    )))
                }
                _ => &nums[name],
            };
            v.as_u64().ok_or_else(|| {
                Error::Invalid(format!(
                    "checkpoint: store state `{name}` is {v}, not a count"
                ))
            })
        };
        let nums = STATE_NUMBERS
            .iter()
            .enumerate()
            .map(|(i, name)| num(name, i))
            .collect::<Result<Vec<u64>>>()?;
        let collect = |prefix: &str| -> Result<Vec<Tensor>> {
            (0..self.hooks.len())
                .map_while(|i| map.get(&format!("{prefix}.{i}")).cloned())
                .map(|t| Ok(t.to_device(&self.cfg.device)?))
                .collect()
        };
        self.state = StoreState {
            storage: collect("store.storage")?,
            serving: collect("store.serving")?,
            cursor: nums[0] as usize,
            rng: nums[1],
            served: nums[2] as usize,
            tokens_seen: nums[3],
        };
        Ok(())
    }
}
