//! # auto_hook
//!
//! TransformerLens-style hook points for [candle](https://github.com/huggingface/candle)
//! models. Put `#[auto_hook]` on a model struct and on its impl blocks: every sub-module
//! output and every `Tensor` parameter becomes a named hook point where a hook can read
//! or replace the activation, and the model gains the hooked-root API
//! ([`HookedRoot`]: `hook_dict`, `run_with_hooks`, `run_with_cache`, persistent hooks).
//!
//! ```
//! use auto_hook::prelude::*;
//! use candle_core::{DType, Device, Module, Result, Tensor};
//! use candle_nn::{Linear, VarBuilder};
//!
//! #[auto_hook]
//! pub struct Mlp { fc1: Linear, fc2: Linear, scale: f64 }
//!
//! #[auto_hook]
//! impl Mlp {
//!     pub fn new(vb: VarBuilder) -> Result<Self> {
//!         Ok(Self { fc1: candle_nn::linear(8, 32, vb.pp("fc1"))?,
//!                   fc2: candle_nn::linear(32, 8, vb.pp("fc2"))?, scale: 1.0 })
//!     }
//! }
//!
//! #[auto_hook]
//! impl Module for Mlp {
//!     fn forward(&self, x: &Tensor) -> Result<Tensor> {
//!         self.fc2.forward(&self.fc1.forward(x)?.relu()?)? * self.scale
//!     }
//! }
//!
//! # fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
//! assert_eq!(Mlp::hook_names(), ["hook_point", "fc1.hook_point", "fc2.hook_point"]);
//! let vb = VarBuilder::zeros(DType::F32, &Device::Cpu);
//! let model = Mlp::new(vb)?;
//! let x = Tensor::ones((2, 8), DType::F32, &Device::Cpu)?;
//! let hooks = Hooks::new().add(hook_name!(Mlp, "fc1.hook_point"), |a, _| a + 1.0);
//! let edited = model.run_with_hooks(hooks, |m| m.forward(&x))?;
//! let (_, cache) = model.run_with_cache(CacheOptions::all(), |m| m.forward(&x))?;
//! assert_eq!(cache.get("fc1.hook_point")?.dims(), [2, 32]);
//! # let _ = edited; Ok(()) }
//! ```

pub use auto_hook_macros::{auto_hook, HookedRoot};
pub use auto_hook_runtime::*;

/// Everything a user of auto_hook needs in scope.
pub mod prelude {
    pub use crate::hook_name;
    pub use auto_hook_macros::{auto_hook, HookedRoot};
    pub use auto_hook_runtime::{
        auto_hook, check_auto_hook, check_auto_hook_mut, check_auto_hook_strict, ActivationCache,
        CacheOptions, Filter, HookInfo, HookPoint, HookedModule, HookedRoot, Hooks, InnerPoints,
    };
}

/// A hook name checked when the program compiles: `hook_name!(Model, "layers.0.fc1.hook_point")`
/// expands to the string, and a name that `Model` does not have fails `cargo build` with
/// a message naming the model type. Container indices may be concrete or `*`.
///
/// ```compile_fail
/// use auto_hook::prelude::*;
/// #[auto_hook]
/// struct Tiny { fc1: candle_nn::Linear }
/// let _ = hook_name!(Tiny, "fc2.hook_point"); // no such point: does not compile
/// ```
#[macro_export]
macro_rules! hook_name {
    ($model:ty, $name:literal) => {{
        const _: () = if !<$model as $crate::HookedModule>::SCHEMA.matches($name) {
            ::core::panic!(
                "{}",
                $crate::__private::UnknownName::new(
                    &<$model as $crate::HookedModule>::SCHEMA,
                    $name,
                    ::core::stringify!($model),
                )
                .as_str()
            );
        };
        $name
    }};
}
