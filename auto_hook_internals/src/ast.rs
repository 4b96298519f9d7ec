//! The macro's own view of an annotated struct: its hooked fields, checked.

use crate::attr::{strip, FieldAttrs};
use crate::classify::{classify, Shape};
use darling::FromAttributes;
use syn::{Attribute, Fields, Ident, ItemStruct, Type, Visibility};

/// Name segment reserved for a struct's own output.
pub const OWN_POINT: &str = "hook_point";

/// One field, as auto_hook sees it.
#[derive(Clone)]
pub struct Field {
    pub ident: Ident,
    /// The name segment in hook names (`rename` or the field name).
    pub segment: String,
    /// The type as the user wrote it.
    pub ty: Type,
    pub shape: Shape,
    pub vis: Visibility,
    /// `#[cfg(...)]` attributes, repeated on everything generated for the field.
    pub cfgs: Vec<Attribute>,
}

/// Who reads the struct: `#[auto_hook]` wraps fields; `derive(HookedRoot)` cannot.
#[derive(Clone, Copy, PartialEq)]
pub enum Mode {
    Annotate,
    DeriveRoot,
}

/// Reads and checks every field, collecting all errors. Strips our attributes.
pub fn parse_fields(
    item: &mut ItemStruct,
    mode: Mode,
    errors: &mut darling::error::Accumulator,
) -> Vec<Field> {
    let named = match &mut item.fields {
        Fields::Named(named) => named,
        Fields::Unnamed(_) => {
            errors.push(
                darling::Error::custom("auto_hook needs named fields: tuple structs are not supported; give the fields names")
                    .with_span(&item.fields),
            );
            return Vec::new();
        }
        Fields::Unit => {
            errors.push(
                darling::Error::custom(
                    "auto_hook needs a struct with named fields; a unit struct has nothing to hook",
                )
                .with_span(&item.ident),
            );
            return Vec::new();
        }
    };
    let generics: Vec<Ident> = item
        .generics
        .type_params()
        .map(|p| p.ident.clone())
        .collect();
    let mut out: Vec<Field> = Vec::new();
    for field in named.named.iter_mut() {
        let attrs = errors
            .handle(FieldAttrs::from_attributes(&field.attrs))
            .unwrap_or_default();
        strip(&mut field.attrs);
        let Some(ident) = field.ident.clone() else {
            continue;
        };
        if let Some(f) = check_field(ident, field, attrs, (mode, &generics), errors) {
            if let Some(prev) = out
                .iter()
                .find(|p| p.segment == f.segment && f.shape.is_hooked() && p.shape.is_hooked())
            {
                let msg = format!(
                    "hook name segment `{}` is used by field `{}` too; rename one of them",
                    f.segment, prev.ident
                );
                errors.push(darling::Error::custom(msg).with_span(&f.ident));
            }
            out.push(f);
        }
    }
    out
}

/// Whether a field name says run-time state rather than a weight.
fn is_state_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name.contains("cache") || name.contains("state")
}

fn check_field(
    ident: Ident,
    field: &syn::Field,
    attrs: FieldAttrs,
    (mode, generics): (Mode, &[Ident]),
    errors: &mut darling::error::Accumulator,
) -> Option<Field> {
    let name = ident.to_string();
    if mode == Mode::Annotate && (name == OWN_POINT || name.starts_with("__auto_hook")) {
        let msg = format!("field name `{name}` is reserved: `hook_point` is the struct's own output hook; rename the field");
        errors.push(darling::Error::custom(msg).with_span(&ident));
        return None;
    }
    if attrs.skip && (attrs.leaf || attrs.rename.is_some()) {
        let msg =
            "`skip` cannot be combined with `leaf` or `rename`: a skipped field has no hook point";
        errors.push(darling::Error::custom(msg).with_span(&ident));
        return None;
    }
    let mut segment = name;
    if let Some(rename) = &attrs.rename {
        let value = rename.value();
        if value.is_empty() || value.contains(['.', '*', '?']) || value == OWN_POINT {
            let msg = format!("invalid rename `{value}`: a name segment is non-empty, has no `.`, `*` or `?`, and is not `hook_point`");
            errors.push(darling::Error::custom(msg).with_span(rename));
            return None;
        }
        segment = value;
    }
    let shape = match classify(&field.ty, attrs.leaf, generics) {
        _ if attrs.skip => Shape::Data,
        // A tensor named like run-time state (`kv_cache`, `state`, `conv_states`) is
        // assigned as the model runs: data, not a parameter.
        shape if shape.is_param() && !attrs.leaf && is_state_name(&ident.to_string()) => {
            Shape::Data
        }
        shape => shape,
    };
    if mode == Mode::DeriveRoot && shape.wraps() {
        let msg = "derive(HookedRoot) cannot wrap this field (a candle module or a Tensor); put #[auto_hook] on the struct instead, or wrap the field type in `auto_hook::Hooked<...>` / `auto_hook::Param`";
        errors.push(darling::Error::custom(msg).with_span(&field.ty));
        return None;
    }
    let cfgs = field
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("cfg"))
        .cloned()
        .collect();
    Some(Field {
        ident,
        segment,
        ty: field.ty.clone(),
        shape,
        vis: field.vis.clone(),
        cfgs,
    })
}
