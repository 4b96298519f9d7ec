//! Text generation with a KV cache: greedy or sampled (temperature, top-k, top-p), seeded.
//!
//! Hooks attached with `run_with_hooks` around `generate` fire at every step. The first
//! step runs the whole prompt (`[batch, prompt_len, ...]` activations); each later step
//! runs one new token per sequence (`[batch, 1, ...]`), and its attention hooks see the
//! cached keys: `hook_attn_scores` / `hook_pattern` are `[batch, head, 1, seen_so_far]`.

use crate::causal_lm::CausalLm;
use crate::error::Error;
use crate::transformer::HookedTransformer;
use auto_hook::rng::Rng;
use candle_core::{DType, Device, Result, Tensor, D};

/// How the next token is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decoding {
    /// The most likely token.
    Greedy,
    /// A draw from the softmax of `logits / temperature`, restricted to the `top_k` most
    /// likely tokens and to the smallest set whose probability reaches `top_p`.
    Sample {
        temperature: f64,
        top_k: Option<usize>,
        top_p: Option<f64>,
    },
}

/// Options of [`HookedTransformer::generate`].
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub max_new_tokens: usize,
    pub sampling: Decoding,
    /// Seed of the sampler: the same seed gives the same tokens.
    pub seed: u64,
    /// When a sequence stops early (default: at the config's `eos_token_id`).
    pub eos: Eos,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            max_new_tokens: 16,
            sampling: Decoding::Greedy,
            seed: 0,
            eos: Eos::FromConfig,
        }
    }
}

/// When a sequence stops before `max_new_tokens`. A sequence that stopped is padded
/// with the token it stopped at.
///
/// ```
/// use auto_hook_models::{Eos, GenerateOptions};
/// // The demo model's config says eos = 0, which is also its BOS token: never stop early.
/// let opts = GenerateOptions { max_new_tokens: 8, eos: Eos::Never, ..GenerateOptions::default() };
/// assert!(opts.eos.tokens(Some(0)).is_empty());
/// assert_eq!(Eos::FromConfig.tokens(Some(0)), [0]);
/// assert_eq!(Eos::Tokens(vec![2, 7]).tokens(Some(0)), [2, 7]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Eos {
    /// At the config's `eos_token_id`; never, if the config has none.
    #[default]
    FromConfig,
    /// Never: every sequence gets `max_new_tokens` new tokens.
    Never,
    /// At any of these tokens (the config's are ignored).
    Tokens(Vec<u32>),
}

impl Eos {
    /// The tokens that end a sequence, given the config's `eos_token_id`.
    pub fn tokens(&self, config_eos: Option<u32>) -> Vec<u32> {
        match self {
            Eos::FromConfig => config_eos.into_iter().collect(),
            Eos::Never => Vec::new(),
            Eos::Tokens(tokens) => tokens.clone(),
        }
    }
}

/// Which sequences of a batch have stopped, and at which token.
pub(crate) struct Stops {
    tokens: Vec<u32>,
    stopped: Vec<Option<u32>>,
}

impl Stops {
    pub(crate) fn new(eos: &Eos, config_eos: Option<u32>, batch: usize) -> Self {
        Self {
            tokens: eos.tokens(config_eos),
            stopped: vec![None; batch],
        }
    }

    /// The next token of sequence `i`: the one it stopped at, once it stopped;
    /// otherwise `choose()`'s.
    pub(crate) fn next(&mut self, i: usize, choose: impl FnOnce() -> Result<u32>) -> Result<u32> {
        if let Some(token) = self.stopped[i] {
            return Ok(token);
        }
        let token = choose()?;
        if self.tokens.contains(&token) {
            self.stopped[i] = Some(token);
        }
        Ok(token)
    }

    /// Whether every sequence stopped.
    pub(crate) fn all_stopped(&self) -> bool {
        self.stopped.iter().all(Option::is_some)
    }
}

pub(crate) fn choose(logits: &[f32], sampling: Decoding, rng: &mut Rng) -> Result<u32> {
    let argmax = || {
        logits
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i as u32)
    };
    let Decoding::Sample {
        temperature,
        top_k,
        top_p,
    } = sampling
    else {
        return Ok(argmax());
    };
    if temperature <= 0.0 {
        candle_core::bail!("sampling temperature must be positive, got {temperature}");
    }
    let mut ranked: Vec<(usize, f64)> = logits
        .iter()
        .map(|&l| l as f64 / temperature)
        .enumerate()
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    if let Some(k) = top_k {
        ranked.truncate(k.max(1));
    }
    let max = ranked[0].1;
    let mut probs: Vec<f64> = ranked.iter().map(|(_, l)| (l - max).exp()).collect();
    let total: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= total);
    if let Some(p) = top_p {
        let mut mass = 0.0;
        let keep = probs.iter().take_while(|&&q| {
            let before = mass;
            mass += q;
            before < p
        });
        let keep = keep.count().max(1);
        probs.truncate(keep);
        ranked.truncate(keep);
    }
    let total: f64 = probs.iter().sum();
    let mut draw = rng.uniform() * total;
    for ((token, _), p) in ranked.iter().zip(&probs) {
        draw -= p;
        if draw <= 0.0 {
            return Ok(*token as u32);
        }
    }
    Ok(ranked.last().map_or(0, |(t, _)| *t as u32))
}

/// The one generation driver: continues `input_ids` `[batch, prompt]` (u32, left-padded
/// with `attention_mask` when prompts differ in length) by up to `max_new_tokens`, one
/// cached step per token. Returns `[batch, prompt + generated]`; a sequence that reached
/// the end token is padded with it. `HookedTransformer::generate` and
/// `HookedMamba::generate` are this.
pub(crate) fn generate<M: CausalLm>(
    model: &M,
    input_ids: &Tensor,
    attention_mask: Option<&Tensor>,
    opts: &GenerateOptions,
) -> Result<Tensor> {
    check_prompt(input_ids, model.vocab_size())?;
    let (b, prompt) = input_ids.dims2()?;
    let device = input_ids.device().clone();
    let mut stops = Stops::new(&opts.eos, model.eos_token_id(), b);
    let mut mask: Option<Vec<Vec<u32>>> = match attention_mask {
        Some(m) if m.dims() == [b, prompt] => Some(m.to_dtype(DType::U32)?.to_vec2::<u32>()?),
        Some(m) => {
            return Err(Error::Input(format!(
                "attention_mask has shape {:?}; expected the shape of input_ids [{b}, {prompt}]",
                m.dims()
            ))
            .into())
        }
        None => None,
    };
    let mut tokens: Vec<Vec<u32>> = input_ids.to_dtype(DType::U32)?.to_vec2::<u32>()?;
    let mut rng = Rng::new(opts.seed);
    let mut cache = model.new_cache();
    let mut step_ids = input_ids.to_dtype(DType::U32)?;
    for _ in 0..opts.max_new_tokens {
        let mask_t = mask
            .as_deref()
            .map(|m| mask_tensor(m, &device))
            .transpose()?;
        let logits = model.forward_with_cache(&step_ids, mask_t.as_ref(), &mut cache)?;
        let last = logits
            .narrow(1, logits.dim(1)? - 1, 1)?
            .squeeze(1)?
            .to_dtype(DType::F32)?;
        let mut next = Vec::with_capacity(b);
        for (i, row) in last.to_vec2::<f32>()?.iter().enumerate() {
            let token = stops.next(i, || choose(row, opts.sampling, &mut rng))?;
            tokens[i].push(token);
            if let Some(m) = &mut mask {
                m[i].push(1);
            }
            next.push(token);
        }
        step_ids = Tensor::from_vec(next, (b, 1), &device)?;
        if stops.all_stopped() {
            break;
        }
    }
    let width = tokens[0].len();
    Tensor::from_vec(tokens.concat(), (b, width), &device)
}

impl HookedTransformer {
    /// Continues `input_ids` `[batch, prompt]` (u32, left-padded with `attention_mask`
    /// when prompts differ in length) by up to `max_new_tokens`, reusing keys and values
    /// through a KV cache. Returns `[batch, prompt + generated]`; a sequence that reached
    /// the end token is padded with it.
    pub fn generate(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        opts: &GenerateOptions,
    ) -> Result<Tensor> {
        generate(self, input_ids, attention_mask, opts)
    }
}

/// The checks of a forward's `input_ids`, with an empty prompt named as such: the
/// prompt is checked before the first step (also when no step runs).
pub(crate) fn check_prompt(input_ids: &Tensor, vocab_size: usize) -> Result<()> {
    match crate::error::check_token_ids(input_ids, vocab_size) {
        Err(Error::EmptyInput { .. }) => Err(Error::EmptyInput {
            what: format!(
                "the prompt given to generate (input_ids of shape {:?})",
                input_ids.dims()
            ),
        }
        .into()),
        other => Ok(other?),
    }
}

fn mask_tensor(mask: &[Vec<u32>], device: &Device) -> Result<Tensor> {
    let width = mask[0].len();
    Tensor::from_vec(mask.concat(), (mask.len(), width), device)
}

/// The log-probability of each next token: `[batch, pos - 1]` from logits
/// `[batch, pos, vocab]` and the tokens `[batch, pos]` that followed.
pub fn next_token_log_probs(logits: &Tensor, tokens: &Tensor) -> Result<Tensor> {
    let t = logits.dim(1)?;
    let log_probs = candle_nn::ops::log_softmax(
        &logits.narrow(1, 0, t - 1)?.to_dtype(DType::F32)?,
        D::Minus1,
    )?;
    let targets = tokens
        .narrow(1, 1, t - 1)?
        .to_dtype(DType::U32)?
        .unsqueeze(2)?;
    log_probs.gather(&targets.contiguous()?, 2)?.squeeze(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_is_seeded_and_respects_top_k() {
        let logits = [0.0f32, 1.0, 2.0, 3.0, 0.5];
        let sample = Decoding::Sample {
            temperature: 1.0,
            top_k: Some(2),
            top_p: None,
        };
        let draws = |seed| {
            let mut rng = Rng::new(seed);
            (0..50)
                .map(|_| choose(&logits, sample, &mut rng).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(draws(7), draws(7));
        assert!(
            draws(7).iter().all(|&t| t == 3 || t == 2),
            "top-k keeps the two best"
        );
        assert!(draws(7).contains(&2) && draws(7).contains(&3));
        let greedy = choose(&logits, Decoding::Greedy, &mut Rng::new(0)).unwrap();
        assert_eq!(greedy, 3);
        let nucleus = Decoding::Sample {
            temperature: 0.01,
            top_k: None,
            top_p: Some(0.5),
        };
        assert_eq!(choose(&logits, nucleus, &mut Rng::new(1)).unwrap(), 3);
    }
}
