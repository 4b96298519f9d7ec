//! [`CausalLm`]: what the ports share as language models. Generation
//! ([`crate::generate`]'s one driver) and the parity check ([`crate::compare_with_reference`])
//! are written once against it.

use crate::mamba::{HookedMamba, MambaCache};
use crate::transformer::{HookedTransformer, KvCache};
use auto_hook::HookedRoot;
use candle_core::{Result, Tensor};

/// A hooked causal language model of this crate ([`HookedTransformer`], [`HookedMamba`]).
///
/// ```
/// use auto_hook_models::CausalLm;
/// fn next_logits<M: CausalLm>(model: &M, ids: &candle_core::Tensor) -> candle_core::Result<candle_core::Tensor> {
///     let logits = model.forward(ids, None)?;
///     logits.narrow(1, logits.dim(1)? - 1, 1)
/// }
/// # let model = auto_hook_models::load("../models/induction-2l", candle_core::DType::F32, &candle_core::Device::Cpu)?;
/// # let ids = candle_core::Tensor::new(&[[0u32, 5, 6]], &candle_core::Device::Cpu)?;
/// assert_eq!(next_logits(&model, &ids)?.dims(), [1, 1, model.vocab_size()]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait CausalLm: HookedRoot {
    /// What the model keeps between steps: keys and values, or conv and SSM states.
    type Cache;
    /// Token ids are `0..vocab_size`.
    fn vocab_size(&self) -> usize;
    /// The config's end-of-sequence token, if any.
    fn eos_token_id(&self) -> Option<u32>;
    /// An empty cache.
    fn new_cache(&self) -> Self::Cache;
    /// Full-sequence logits `[batch, pos, vocab]` (`attention_mask` `[batch, pos]`, 1 =
    /// token, 0 = left padding).
    fn forward(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>) -> Result<Tensor>;
    /// Logits of `input_ids` after the positions in `cache`, which gets them;
    /// `attention_mask` covers cached and new positions.
    fn forward_with_cache(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        cache: &mut Self::Cache,
    ) -> Result<Tensor>;
}

impl CausalLm for HookedTransformer {
    type Cache = KvCache;
    fn vocab_size(&self) -> usize {
        self.config().vocab_size
    }
    fn eos_token_id(&self) -> Option<u32> {
        self.config().eos_token_id
    }
    fn new_cache(&self) -> KvCache {
        KvCache::new(self.config().n_layers)
    }
    fn forward(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>) -> Result<Tensor> {
        HookedTransformer::forward(self, input_ids, attention_mask)
    }
    fn forward_with_cache(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        HookedTransformer::forward_with_cache(self, input_ids, attention_mask, cache)
    }
}

impl CausalLm for HookedMamba {
    type Cache = MambaCache;
    fn vocab_size(&self) -> usize {
        self.config().vocab_size
    }
    fn eos_token_id(&self) -> Option<u32> {
        self.config().eos_token_id
    }
    fn new_cache(&self) -> MambaCache {
        MambaCache::new(self.config().n_layers)
    }
    fn forward(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>) -> Result<Tensor> {
        HookedMamba::forward(self, input_ids, attention_mask)
    }
    fn forward_with_cache(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        cache: &mut MambaCache,
    ) -> Result<Tensor> {
        HookedMamba::forward_with_cache(self, input_ids, attention_mask, cache)
    }
}
