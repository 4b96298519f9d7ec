//! candle-transformers 0.11 model files hooked without edits, two ways, for the tests:
//!
//! - [`verbatim`]`::<model>`: the file copied as it is (paths into candle-transformers
//!   made absolute, inner docs dropped), `#[auto_hook]` on every struct and impl;
//! - [`built`]`::<model>`: `auto_hook_build`'s output for the same file.
//!
//! `build.rs` makes both from the registry source (nothing of candle-transformers is
//! committed) and lists the models. [`check`] holds the checks each model's test runs
//! against candle-transformers' own model on the same weights; [`sweep`] compiles every
//! model file of candle-transformers plain, with the attribute, and through the helper.
//!
//! ```
//! use auto_hook::prelude::*;
//! let names = auto_hook_ct::built::qwen2::ModelForCausalLM::hook_names();
//! assert!(names.iter().any(|n| n == "base_model.layers.*.self_attn.q_proj.hook_point"));
//! ```

include!(concat!(env!("OUT_DIR"), "/models.rs"));

pub mod check;
pub mod sweep;
pub mod user_edits;
pub mod weights;
