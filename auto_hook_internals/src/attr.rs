//! The `#[auto_hook(...)]` options, read with darling.

use darling::ast::NestedMeta;
use darling::{FromAttributes, FromMeta};
use proc_macro2::TokenStream;
use syn::Attribute;

/// Options on a field.
#[derive(Debug, Default, FromAttributes)]
#[darling(attributes(auto_hook))]
pub struct FieldAttrs {
    /// Never hook this field.
    #[darling(default)]
    pub skip: bool,
    /// The field (or the elements of its container) is a candle `Module` the macro does not know.
    #[darling(default)]
    pub leaf: bool,
    /// Name segment to use instead of the field name.
    #[darling(default)]
    pub rename: Option<syn::LitStr>,
}

/// Options on a method of an annotated impl block.
#[derive(Debug, Default, FromAttributes)]
#[darling(attributes(auto_hook))]
pub struct MethodAttrs {
    /// Treat this method as a forward: its output passes through the struct's hook point.
    #[darling(default)]
    pub forward: bool,
    /// Do not treat this method as a forward even though it is called `forward`.
    #[darling(default)]
    pub skip: bool,
}

/// Options on the item itself: `#[auto_hook(data)]` / `#[auto_hook(module)]` on a struct
/// override the structural decision (see `decide`); anything else is reported as unknown.
#[derive(Debug, Default, FromMeta)]
pub struct ItemArgs {
    /// Leave the struct as data, whatever its fields.
    #[darling(default)]
    pub data: bool,
    /// Hook the struct, whatever its fields.
    #[darling(default)]
    pub module: bool,
}

pub fn parse_item_args(args: TokenStream) -> darling::Result<ItemArgs> {
    if args.is_empty() {
        return Ok(ItemArgs::default());
    }
    ItemArgs::from_list(&NestedMeta::parse_meta_list(args)?)
}

/// Removes our attributes once read, so the compiler never sees them.
pub fn strip(attrs: &mut Vec<Attribute>) {
    attrs.retain(|a| !a.path().is_ident("auto_hook"));
}
