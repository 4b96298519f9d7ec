//! The rewrite behind `#[auto_hook]`, as a library: `auto_hook_macros` calls it from the
//! attribute and the derive, `auto_hook_build` calls it on a dependency's source file.
//! Not a public API: use the `auto_hook` crate.
//!
//! Each entry point parses its input into the crate's own small structs (`ast`, `attr`),
//! checks them (collecting every error with its span), then writes tokens (`expand_*`).

mod ast;
mod attr;
mod classify;
mod decide;
mod expand_enum;
mod expand_impl;
mod expand_struct;
mod memo;
mod mentions;
mod registry;
mod rewrite;
mod scan;

pub use decide::Decision;
pub use expand_struct::{attribute, derive_root};
pub use scan::{decisions, register_structs};
