//! Hooked ports of Hugging Face decoder architectures, written with `#[auto_hook]`:
//! GPT-2, the Llama family (Llama, Mistral, Qwen2) and Gemma / Gemma 2 from one config-driven
//! [`HookedTransformer`] with TransformerLens hook names, loading the checkpoints that
//! `save_pretrained` writes (`config.json` + safetensors, single or sharded).
//!
//! Every block has `blocks.{i}.hook_resid_pre`, `ln1.hook_scale`, `ln1.hook_normalized`,
//! `attn.hook_q/k/v` `[batch, pos, head, d_head]`, `attn.hook_rot_q/k` (rotary models),
//! `attn.hook_attn_scores` (masked, with −∞ where blocked as in TransformerLens, or the
//! dtype's minimum when a padding position sees no key), `attn.hook_pattern`
//! `[batch, head, q_pos, k_pos]`, `attn.hook_z`, `hook_attn_out`, `hook_resid_mid`, `ln2.*`, `mlp.hook_pre`,
//! `mlp.hook_pre_linear` (gated MLPs), `mlp.hook_post`, `hook_mlp_out`,
//! `hook_resid_post`; the model has `hook_embed`, `hook_pos_embed` (GPT-2) and
//! `ln_final.hook_scale/hook_normalized`, plus the automatic `*.hook_point` of every
//! module. Each fires exactly once per forward.
//!
//! Mixtral (`model_type: mixtral`) loads into the same [`HookedTransformer`]: its blocks'
//! `mlp` is a [`SparseMoe`] with `mlp.router.hook_point` (router logits),
//! `mlp.hook_expert_weights`, `mlp.hook_expert_indices` and per-expert
//! `mlp.experts.{e}.hook_gate/hook_pre/hook_post` (see [`SparseMoe`] for shapes, routing
//! edits and experts that receive no token), [`router_aux_loss`], and a
//! [`MoeDispatch`] (`Gather` on the CPU; `Dense`, with no host read, on a GPU).
//!
//! Gemma 2 (`model_type: gemma2`) and Gemma (`gemma`) load into the same
//! [`HookedTransformer`] (see [`GemmaConfig`]): Gemma 2's blocks add TransformerLens's
//! `ln1_post.*` and `ln2_post.*` (norms applied before `hook_attn_out` / `hook_mlp_out`);
//! `attn.hook_attn_scores` holds the soft-capped, masked scores; sliding layers mask
//! keys outside the window; the forward's logits are soft-capped (`unembed.hook_point`
//! is before the cap).
//!
//! Mamba (`model_type: mamba`) loads with [`load_mamba`] into a [`HookedMamba`] with
//! MambaLens's hook names (`blocks.{l}.hook_in_proj`, `hook_conv`, `hook_delta`,
//! `hook_A/B/C`, `hook_h` (the SSM state, once per position, editable), `hook_y`, ...;
//! see [`MambaBlock`]) and generation with a cache of conv and SSM states.

mod attention;
mod causal_lm;
mod compare;
mod config;
mod error;
mod feed_forward;
mod gemma;
mod generate;
mod gguf;
pub mod hub;
pub mod induction;
mod init;
mod load;
mod mamba;
mod mlp;
mod moe;
mod norm;
mod proj;
mod text;
mod transformer;
mod weights;

pub use attention::Attention;
pub use causal_lm::CausalLm;
pub use compare::{compare_with_reference, hook_for_reference_key, Comparison, ReferenceModel};
pub use config::{ArchConfig, HiddenAct, NormKind, Positions};
pub use error::{Error, Result};
pub use gemma::GemmaConfig;
pub use generate::{next_token_log_probs, Decoding, Eos, GenerateOptions};
pub use gguf::gguf_tensors;
pub use load::{from_var_builder, load, load_quantized, load_tokenizer, weight_files};
pub use mamba::{
    at_position, hook_for_mamba_key, load_mamba, mamba_from_var_builder, HookedMamba, MambaBlock,
    MambaCache, MambaConfig, MambaSlot, MixerWeights,
};
pub use mlp::Mlp;
pub use moe::{router_aux_loss, Expert, FeedForward, MoeConfig, MoeDispatch, SparseMoe};
pub use norm::Norm;
pub use proj::Proj;
pub use text::{ChatMessage, Text};
pub use transformer::{HookedTransformer, KvCache, TransformerBlock};
