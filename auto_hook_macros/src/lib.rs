//! Procedural macros of auto_hook. Use them through the `auto_hook` crate.
//!
//! The rewrite itself lives in `auto_hook_internals`, shared with `auto_hook_build`.

use proc_macro::TokenStream;

/// See the `auto_hook` crate: on a struct, hooks every module field, tensor parameter and
/// the struct's own output; on an impl block, rewrites constructors and forwards.
#[proc_macro_attribute]
pub fn auto_hook(args: TokenStream, input: TokenStream) -> TokenStream {
    auto_hook_internals::attribute(args.into(), input.into()).into()
}

/// See the `auto_hook` crate: a custom root whose fields are hooked models.
#[proc_macro_derive(HookedRoot, attributes(auto_hook))]
pub fn derive_hooked_root(input: TokenStream) -> TokenStream {
    auto_hook_internals::derive_root(input.into()).into()
}
