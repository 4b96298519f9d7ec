//! Procedural macros of auto_hook. Use them through the `auto_hook` crate.
//!
//! Each macro parses its input into the crate's own small structs (`ast`, `attr`),
//! checks them (collecting every error with its span), then writes tokens (`expand_*`).

mod ast;
mod attr;
mod classify;
mod expand_impl;
mod expand_struct;
mod rewrite;

use proc_macro::TokenStream;

/// See the `auto_hook` crate: on a struct, hooks every module field, tensor parameter and
/// the struct's own output; on an impl block, rewrites constructors and forwards.
#[proc_macro_attribute]
pub fn auto_hook(args: TokenStream, input: TokenStream) -> TokenStream {
    expand_struct::attribute(args.into(), input.into()).into()
}

/// See the `auto_hook` crate: a custom root whose fields are hooked models.
#[proc_macro_derive(HookedRoot, attributes(auto_hook))]
pub fn derive_hooked_root(input: TokenStream) -> TokenStream {
    expand_struct::derive_root(input.into()).into()
}
