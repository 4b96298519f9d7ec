//! `HookedMamba`: Mamba (selective state space) with MambaLens's hook names, the forward
//! of Hugging Face's reference (slow, pure-PyTorch) path, and generation with a cache of
//! conv and SSM states.
//!
//! The SSM state: `blocks.{l}.hook_h` fires once per position with `h_t` `[batch, d_inner,
//! d_state]` (MambaLens has one point per position, `hook_h.{pos}`; here one point fires
//! `pos` times, so hook names stay static). A per-call hook sees every position in order,
//! so reading all states is collecting its calls, and editing position `p` is replacing
//! the `p`-th call's value ([`at_position`] counts for you); later positions then
//! continue from the edited state. In a cache the point keeps its last value (the final
//! state). During generation the count continues: the prompt fires positions
//! `0..prompt_len`, each later step one more.

mod block;
mod compare;
mod config;
mod generate;
mod load;

pub use block::{MambaBlock, MambaSlot, MixerWeights};
pub use compare::hook_for_mamba_key;
pub use config::MambaConfig;
pub use load::{load_mamba, mamba_from_var_builder};

use crate::norm::Norm;
use auto_hook::prelude::*;
use auto_hook::HookInfo;
use candle_core::{Module, Result, Tensor};
use candle_nn::{Embedding, Linear};
use std::collections::HashMap;

/// The conv and SSM states of every layer, for generation.
#[derive(Debug, Clone)]
pub struct MambaCache {
    slots: Vec<MambaSlot>,
    len: usize,
}

impl MambaCache {
    /// An empty cache for a model of `n_layers`.
    ///
    /// ```
    /// let cache = auto_hook_models::MambaCache::new(2);
    /// assert!(cache.is_empty() && cache.slot(1).unwrap().ssm_state().is_none());
    /// ```
    pub fn new(n_layers: usize) -> Self {
        Self {
            slots: vec![MambaSlot::default(); n_layers],
            len: 0,
        }
    }

    /// Number of positions seen.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no position has been seen.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The states of layer `layer`.
    pub fn slot(&self, layer: usize) -> Option<&MambaSlot> {
        self.slots.get(layer)
    }
}

/// A Mamba language model: `hook_embed`, `blocks.{l}.*` (see [`MambaBlock`]),
/// `ln_final.hook_scale/hook_normalized` (Hugging Face's `norm_f`), `unembed.hook_point`
/// (the logits), and the automatic `*.hook_point` of every module.
#[auto_hook]
#[derive(Debug, Clone)]
pub struct HookedMamba {
    #[auto_hook(skip)]
    cfg: MambaConfig,
    embed: Embedding,
    hook_embed: HookPoint,
    blocks: Vec<MambaBlock>,
    ln_final: Norm,
    unembed: Linear,
}

#[auto_hook]
impl HookedMamba {
    /// Assembles a model from its parts (see [`load_mamba`] for Hugging Face checkpoints).
    pub fn new(
        cfg: MambaConfig,
        embed: Embedding,
        blocks: Vec<MambaBlock>,
        ln_final: Norm,
        unembed: Linear,
    ) -> Self {
        Self {
            cfg,
            embed,
            hook_embed: HookPoint::new(),
            blocks,
            ln_final,
            unembed,
        }
    }

    /// The architecture.
    pub fn config(&self) -> &MambaConfig {
        &self.cfg
    }

    /// Full-sequence logits `[batch, pos, vocab]` for `input_ids` `[batch, pos]` (u32).
    /// `attention_mask` `[batch, pos]` (1 = token, 0 = padding) allows left padding, as in
    /// Hugging Face: padding is zeroed before `in_proj` and after the conv, so it leaves
    /// the SSM and conv states at zero and the real tokens' outputs unchanged.
    pub fn forward(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>) -> Result<Tensor> {
        self.run(input_ids, attention_mask, None)
    }

    /// Logits of `input_ids` after the positions already in `cache`, which gets the conv
    /// and SSM states after them. Any number of new positions per call; `attention_mask`
    /// covers cached and new positions.
    #[auto_hook(forward)]
    pub fn forward_with_cache(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        cache: &mut MambaCache,
    ) -> Result<Tensor> {
        self.run(input_ids, attention_mask, Some(cache))
    }

    fn run(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        mut cache: Option<&mut MambaCache>,
    ) -> Result<Tensor> {
        crate::error::check_token_ids(input_ids, self.cfg.vocab_size)?;
        let (b, t) = input_ids.dims2()?;
        let past = cache.as_ref().map_or(0, |c| c.len);
        if let Some(c) = &cache {
            if c.slots.len() != self.blocks.len() {
                candle_core::bail!(
                    "the cache has {} layers; the model has {}",
                    c.slots.len(),
                    self.blocks.len()
                );
            }
        }
        let mut resid = self.hook_embed.forward(&self.embed.forward(input_ids)?)?;
        let mask = match attention_mask {
            Some(m) if m.dims() == [b, past + t] => {
                Some(m.narrow(1, past, t)?.to_dtype(resid.dtype())?.unsqueeze(2)?)
            }
            Some(m) => candle_core::bail!(
                "attention_mask has shape {:?}; expected [batch, cached + new positions] = [{b}, {}]",
                m.dims(),
                past + t
            ),
            None => None,
        };
        for (i, block) in self.blocks.iter().enumerate() {
            let slot = cache.as_mut().map(|c| &mut c.slots[i]);
            resid = block.forward(&resid, mask.as_ref(), slot)?;
        }
        if let Some(c) = cache {
            c.len += t;
        }
        self.unembed.forward(&self.ln_final.forward(&resid)?)
    }
}

/// A hook for `blocks.{l}.hook_h` that applies `edit` to the state at position `pos`
/// only (counting each hook name's calls separately, so one hook can serve a glob of
/// layers), and keeps every other position.
///
/// ```no_run
/// use auto_hook::prelude::*;
/// # let model = auto_hook_models::load_mamba("mamba", candle_core::DType::F32, &candle_core::Device::Cpu)?;
/// # let ids = candle_core::Tensor::zeros((1, 8), candle_core::DType::U32, &candle_core::Device::Cpu)?;
/// // Zero layer 1's SSM state after position 3: positions 4.. start from nothing.
/// let hooks = Hooks::new().add("blocks.1.hook_h", auto_hook_models::at_position(3, |h| h.zeros_like()));
/// let logits = model.run_with_hooks(hooks, |m| m.forward(&ids, None))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn at_position<F>(
    pos: usize,
    mut edit: F,
) -> impl FnMut(&Tensor, &HookInfo) -> Result<Option<Tensor>>
where
    F: FnMut(&Tensor) -> Result<Tensor>,
{
    let mut seen: HashMap<String, usize> = HashMap::new();
    move |h, info| {
        let count = seen.entry(info.name().to_owned()).or_insert(0);
        let here = *count == pos;
        *count += 1;
        if here {
            edit(h).map(Some)
        } else {
            Ok(None)
        }
    }
}
