//! Module or data: the one decision `#[auto_hook]` makes about a whole struct, from its
//! structure (its fields and derives), never from its name alone.
//!
//! In order:
//! 1. `#[auto_hook(module)]` / `#[auto_hook(data)]` decide;
//! 2. a struct that derives a value-type trait (`Deserialize`, `PartialEq`, `Copy`, ...)
//!    is data: candle modules implement none of them;
//! 3. a struct with a module field (a candle module, a container of them, a `HookPoint`,
//!    a field of a generic type) is a module, whatever its name (`BertSelfOutput`);
//! 4. a struct with a field holding a hooked struct seen before (`Vec<EncoderLayer>`) is
//!    a module;
//! 5. a struct with no module field whose name says configuration, run-time state or a
//!    result (`Config`/`Cfg` at the end when it has fields of unknown types; `Cache`,
//!    `State`, `Output` as a word: llama's `Config` and `Cache`, deepseek's `TopKOutput`)
//!    is data: such records are rebuilt by the caller and their tensors are not weights.
//!    This is the only place a name counts: a tie-break where the structure leaves the
//!    question open (tensors only, or types the macro cannot see), never over a module
//!    field;
//! 6. a struct with a field of a type the macro does not know (an annotated struct
//!    defined later, an enum, a foreign type) is a module whose fields the compiler sorts
//!    out; a struct whose hooked fields are tensors is a parameter holder (a rotary
//!    embedding's `sin`/`cos`);
//! 7. anything else (plain values, `Activation` alone) is data.
//!
//! The decision and its reason are kept in [`Decision`], which the build helper reports.

use crate::ast::Field;
use crate::classify::Shape;
use crate::registry;
use syn::ItemStruct;

/// Derives that mark a value type: a struct deriving one is data.
const DATA_DERIVES: &[&str] = &[
    "Deserialize",
    "Serialize",
    "PartialEq",
    "Eq",
    "Hash",
    "Copy",
    "PartialOrd",
    "Ord",
];

/// Words of a struct name that mark run-time state or a result (rule 5).
const STATE_WORDS: &[&str] = &["Cache", "Caches", "State", "States", "Output", "Outputs"];

/// What `#[auto_hook]` does with a struct, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Hooked (fields wrapped, hook points listed) or left as it is.
    pub module: bool,
    /// The reason, in words: `field `dense` is a module (`Linear`)`.
    pub reason: String,
}

impl Decision {
    fn module(reason: String) -> Self {
        Decision {
            module: true,
            reason,
        }
    }

    fn data(reason: String) -> Self {
        Decision {
            module: false,
            reason,
        }
    }
}

/// The override written on the struct, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Override {
    None,
    Module,
    Data,
}

/// Decides module or data for `item` with its classified `fields` (see the module docs).
pub fn decide(item: &ItemStruct, fields: &[Field], forced: Override) -> Decision {
    match forced {
        Override::Module => return Decision::module("#[auto_hook(module)]".into()),
        Override::Data => return Decision::data("#[auto_hook(data)]".into()),
        Override::None => {}
    }
    if !matches!(item.fields, syn::Fields::Named(_)) {
        return Decision::data("no named fields".into());
    }
    if let Some(derive) = data_derive(item) {
        return Decision::data(format!("derives `{derive}` (a value type)"));
    }
    if let Some(f) = fields
        .iter()
        .find(|f| is_module_shape(&f.shape) && !is_value_module(&f.ty))
    {
        return Decision::module(format!("field `{}` is a module", f.ident));
    }
    let name = item.ident.to_string();
    let probes: Vec<&Field> = fields.iter().filter(|f| contains_probe(&f.shape)).collect();
    if let Some((f, ty)) = probes
        .iter()
        .find_map(|f| Some((f, innermost(&f.ty)?)).filter(|(_, t)| registry::is_hooked(t)))
    {
        return Decision::module(format!(
            "field `{}` holds the hooked struct `{ty}`",
            f.ident
        ));
    }
    let params = fields.iter().find(|f| f.shape.is_param());
    if let Some(word) = state_word(&name, !probes.is_empty()) {
        if params.is_some() || !probes.is_empty() {
            return Decision::data(format!(
                "no module field, and `{word}` in its name marks a configuration, run-time state or a result"
            ));
        }
    }
    if let Some(f) = probes.first() {
        return Decision::module(format!(
            "field `{}` has a type the compiler decides (hooked if it is a hooked module)",
            f.ident
        ));
    }
    if let Some(f) = params {
        return Decision::module(format!("field `{}` is a tensor parameter", f.ident));
    }
    Decision::data("no module, tensor or unknown-type field".into())
}

/// A module field: a candle module (other than a value-like `Activation` alone), a
/// nested hooked value, or a container of one.
fn is_module_shape(shape: &Shape) -> bool {
    match shape {
        Shape::Module | Shape::ModuleT | Shape::Nested => true,
        Shape::Container(_, inner) => is_module_shape(inner),
        Shape::Tuple(elems) => elems.iter().any(is_module_shape),
        Shape::Data | Shape::Param | Shape::Probe | Shape::SharedProbe => false,
    }
}

/// `Activation`: a candle module that is also a plain `Copy` value (configs hold one).
/// Hooked inside a module, but not what makes a struct one.
fn is_value_module(ty: &syn::Type) -> bool {
    match ty {
        syn::Type::Path(p) => p
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident == "Activation"),
        _ => false,
    }
}

fn contains_probe(shape: &Shape) -> bool {
    match shape {
        Shape::Probe | Shape::SharedProbe => true,
        Shape::Container(_, inner) => contains_probe(inner),
        Shape::Tuple(elems) => elems.iter().any(contains_probe),
        _ => false,
    }
}

/// The word of `name` that marks state or a result (and, when `config` is set, a
/// configuration: `LlamaConfig`, `Cfg`).
fn state_word(name: &str, config: bool) -> Option<&str> {
    if config && (name.ends_with("Config") || name.ends_with("Cfg")) {
        return Some(if name.ends_with("Cfg") {
            "Cfg"
        } else {
            "Config"
        });
    }
    camel_words(name).find(|w| STATE_WORDS.contains(w))
}

/// The element type's name under containers (`Vec<Option<Block>>` → `Block`).
fn innermost(ty: &syn::Type) -> Option<&syn::Ident> {
    match ty {
        syn::Type::Array(a) => innermost(&a.elem),
        syn::Type::Paren(p) => innermost(&p.elem),
        syn::Type::Group(g) => innermost(&g.elem),
        syn::Type::Path(p) => {
            let last = p.path.segments.last()?;
            let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
                return Some(&last.ident);
            };
            let types: Vec<&syn::Type> = args
                .args
                .iter()
                .filter_map(|a| match a {
                    syn::GenericArgument::Type(t) => Some(t),
                    _ => None,
                })
                .collect();
            match types.last() {
                Some(t) => innermost(t),
                None => Some(&last.ident),
            }
        }
        _ => None,
    }
}

/// The first derive of [`DATA_DERIVES`] on the struct.
fn data_derive(item: &ItemStruct) -> Option<String> {
    let mut found = None;
    for attr in item.attrs.iter().filter(|a| a.path().is_ident("derive")) {
        let _ = attr.parse_nested_meta(|meta| {
            let last = meta.path.segments.last().map(|s| s.ident.to_string());
            if let Some(n) = last.filter(|n| DATA_DERIVES.contains(&n.as_str())) {
                found.get_or_insert(n);
            }
            Ok(())
        });
    }
    found
}

/// The words of a CamelCase name (`KvCache` → `Kv`, `Cache`).
fn camel_words(name: &str) -> impl Iterator<Item = &str> {
    let starts: Vec<usize> = name
        .char_indices()
        .filter(|(i, c)| *i == 0 || c.is_uppercase())
        .map(|(i, _)| i)
        .chain(std::iter::once(name.len()))
        .collect();
    (0..starts.len().saturating_sub(1)).map(move |k| &name[starts[k]..starts[k + 1]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::{parse_fields, Mode};

    fn decide_src(src: &str) -> Decision {
        let mut item: ItemStruct = syn::parse_str(src).unwrap();
        let mut errors = darling::Error::accumulator();
        let fields = parse_fields(&mut item, Mode::Annotate, &mut errors);
        errors.finish().unwrap();
        decide(&item, &fields, Override::None)
    }

    #[test]
    fn a_struct_with_module_fields_is_a_module_whatever_its_name() {
        let d = decide_src(
            "struct BertSelfOutput { dense: Linear, layer_norm: LayerNorm, span: tracing::Span }",
        );
        assert!(d.module, "{d:?}");
        assert!(d.reason.contains("`dense`"), "{d:?}");
        assert!(decide_src("struct Config { layers: Vec<Linear> }").module);
    }

    #[test]
    fn tensor_records_named_like_state_are_data_and_parameter_holders_are_modules() {
        let cache = decide_src("struct Cache { cos: Tensor, sin: Tensor, use_kv_cache: bool }");
        assert!(
            !cache.module && cache.reason.contains("`Cache`"),
            "{cache:?}"
        );
        assert!(!decide_src("struct TopKOutput { values: Tensor, indices: Tensor }").module);
        let rope = decide_src("struct RotaryEmbedding { sin: Tensor, cos: Tensor, dim: usize }");
        assert!(rope.module && rope.reason.contains("`sin`"), "{rope:?}");
    }

    #[test]
    fn value_types_and_plain_values_are_data() {
        let cfg =
            decide_src("#[derive(Clone, serde::Deserialize)] struct Cfg2 { act: Activation }");
        assert!(!cfg.module && cfg.reason.contains("Deserialize"), "{cfg:?}");
        let plain = decide_src("struct Dropout { pr: f64 }");
        assert!(!plain.module, "{plain:?}");
        let act = decide_src("struct Settings { act: Activation, n: usize }");
        assert!(!act.module, "an Activation alone is a value: {act:?}");
    }

    #[test]
    fn overrides_win() {
        let mut item: ItemStruct = syn::parse_str("struct Cache { cos: Tensor }").unwrap();
        let mut errors = darling::Error::accumulator();
        let fields = parse_fields(&mut item, Mode::Annotate, &mut errors);
        errors.finish().unwrap();
        assert!(decide(&item, &fields, Override::Module).module);
        assert!(!decide(&item, &fields, Override::Data).module);
    }
}
