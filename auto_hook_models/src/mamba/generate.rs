//! Generation for Mamba with a cache of conv and SSM states.
//!
//! Hooks attached with `run_with_hooks` around `generate` fire at every step: the first
//! step runs the prompt (`[batch, prompt_len, ...]` activations; `hook_h` fires
//! `prompt_len` times), each later step one new token per sequence (`[batch, 1, ...]`;
//! `hook_h` once). `hook_A` `[d_inner, d_state]` fires once per step.

use super::HookedMamba;
use crate::generate::GenerateOptions;
use candle_core::{Result, Tensor};

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
        crate::generate::generate(self, input_ids, attention_mask, opts)
    }
}
