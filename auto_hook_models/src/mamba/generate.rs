//! Generation for Mamba with a cache of conv and SSM states.
//!
//! Hooks attached with `run_with_hooks` around `generate` fire at every step: the first
//! step runs the prompt (`[batch, prompt_len, ...]` activations; `hook_h` fires
//! `prompt_len` times), each later step one new token per sequence (`[batch, 1, ...]`;
//! `hook_h` once). `hook_A` `[d_inner, d_state]` fires once per step.

use super::{HookedMamba, MambaCache};
use crate::generate::{choose, GenerateOptions, Stops};
use auto_hook::rng::Rng;
use candle_core::{DType, Result, Tensor};

impl HookedMamba {
    /// Continues `input_ids` `[batch, prompt]` (u32, left-padded with `attention_mask`
    /// when prompts differ in length) by up to `max_new_tokens`, one cached step per
    /// token. Returns `[batch, prompt + generated]`; a sequence that reached the end token
    /// is padded with it.
    ///
    /// ```no_run
    /// # let model = auto_hook_models::load_mamba("mamba", candle_core::DType::F32, &candle_core::Device::Cpu)?;
    /// # let ids = candle_core::Tensor::zeros((1, 4), candle_core::DType::U32, &candle_core::Device::Cpu)?;
    /// let out = model.generate(&ids, None, &auto_hook_models::GenerateOptions::default())?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn generate(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        opts: &GenerateOptions,
    ) -> Result<Tensor> {
        crate::generate::check_prompt(input_ids, self.config().vocab_size)?;
        let (b, prompt) = input_ids.dims2()?;
        let device = input_ids.device().clone();
        let mut stops = Stops::new(&opts.eos, self.config().eos_token_id, b);
        let mut mask: Option<Vec<Vec<u32>>> = match attention_mask {
            Some(m) => Some(m.to_dtype(DType::U32)?.to_vec2::<u32>()?),
            None => None,
        };
        if let Some(m) = &mask {
            if m.len() != b || m.iter().any(|row| row.len() != prompt) {
                candle_core::bail!(
                    "attention_mask must have the shape of input_ids [{b}, {prompt}]"
                );
            }
        }
        let mut tokens: Vec<Vec<u32>> = input_ids.to_dtype(DType::U32)?.to_vec2::<u32>()?;
        let mut rng = Rng::new(opts.seed);
        let mut cache = MambaCache::new(self.config().n_layers);
        let mut step_ids = input_ids.to_dtype(DType::U32)?;
        for _ in 0..opts.max_new_tokens {
            let mask_t = match &mask {
                Some(m) => Some(Tensor::from_vec(m.concat(), (b, m[0].len()), &device)?),
                None => None,
            };
            let logits = self.forward_with_cache(&step_ids, mask_t.as_ref(), &mut cache)?;
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
}
