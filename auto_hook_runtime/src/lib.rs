//! Runtime of auto_hook: TransformerLens-style hook points for candle models.
//!
//! Most users depend on the `auto_hook` facade crate, whose `#[auto_hook]` attribute
//! generates the [`HookedModule`] implementations this crate consumes. The pieces:
//!
//! - [`HookPoint`]: an identity function hooks can observe or edit.
//! - [`Hooked`], [`HookedT`], [`Param`]: what `#[auto_hook]` wraps module and tensor fields in.
//! - [`HookedModule`] + [`Schema`]: visiting hook points, and their names from the type.
//! - [`HookedRoot`]: `hook_dict`, `run_with_hooks`, `run_with_cache`, persistent hooks, scopes.
//! - [`ActivationCache`]: captured activations; `stack`, safetensors save/load.
//! - [`auto_hook`]: the same API for an already-built module; [`check_auto_hook`]: self-checks.
//! - [`Aliases`] / [`Aliased`]: TransformerLens names on any hooked model; [`adapters`]: the
//!   tables for candle-transformers' decoders.

pub mod adapters;
mod alias;
mod backward;
mod cache;
mod cache_io;
mod carry;
mod check;
mod check_report;
mod compare;
mod context;
mod error;
mod filter;
mod hook;
mod hook_point;
mod hooks;
mod instance;
mod module;
pub mod nn;
pub mod ops;
mod output;
mod param_ops;
#[doc(hidden)]
pub mod rng;
mod root;
mod run;
mod schema;
mod scope;
mod suggest;
mod wrappers;

#[doc(hidden)]
pub mod __private;

pub use alias::{Aliased, Aliases};
pub use cache::{ActivationCache, CacheOptions};
pub use cache_io::ORDER_KEY;
pub use carry::{carry_error, find_error, take_error};
pub use check::{
    check_auto_hook, check_auto_hook_mut, check_auto_hook_mut_strict, check_auto_hook_strict,
};
pub use check_report::CheckReport;
pub use compare::{bit_identical, max_abs_diff};
pub use error::{Error, Result};
pub use filter::{nearest_names, Filter};
pub use hook::{HookInfo, HookReturn};
pub use hook_point::{HookId, HookPoint};
pub use hooks::Hooks;
pub use instance::{auto_hook, AutoHook, AutoHooked, InnerPoints, RootOnly};
pub use module::{walk, walk_mut, HookedModule, Walker, WalkerMut};
pub use output::HookOutput;
pub use root::{HookDict, HookedRoot};
pub use schema::Schema;
pub use scope::HookScope;
pub use wrappers::{Hooked, HookedT, Param};
