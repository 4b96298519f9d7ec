//! What a field's type is to auto_hook, read from its syntax: a module to wrap, a
//! parameter, a nested hooked value, data, or a container of one of those.

use proc_macro2::TokenStream;
use quote::quote;
use syn::spanned::Spanned;
use syn::{GenericArgument, Ident, PathArguments, Type};

/// candle-nn modules that implement `Module`.
const MODULES: &[&str] = &[
    "Linear",
    "Embedding",
    "LayerNorm",
    "RmsNorm",
    "Conv1d",
    "Conv2d",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "Activation",
    "PReLU",
    "GroupNorm",
    "Sequential",
    "Identity",
    "QMatMul",
];
/// candle-nn modules that only implement `ModuleT` (they take a train flag).
const MODULES_T: &[&str] = &["Dropout", "BatchNorm"];
/// Types that are data, never hooked.
const DATA: &[&str] = &[
    "bool",
    "char",
    "f16",
    "bf16",
    "f32",
    "f64",
    "i8",
    "i16",
    "i32",
    "i64",
    "i128",
    "isize",
    "u8",
    "u16",
    "u32",
    "u64",
    "u128",
    "usize",
    "String",
    "str",
    "Device",
    "DType",
    "Shape",
    "PhantomData",
    "PhantomPinned",
    "VarBuilder",
    "VarMap",
    "Var",
    "Cow",
    "Path",
    "PathBuf",
    "Duration",
    "Instant",
    "Mutex",
    "RwLock",
    "Cell",
    "RefCell",
];

/// The role of a (possibly nested) type.
#[derive(Debug, Clone)]
pub enum Shape {
    /// Not hooked.
    Data,
    /// A candle `Module`: wrapped in `Hooked<_>`.
    Module,
    /// A candle `ModuleT`: wrapped in `HookedT<_>`.
    ModuleT,
    /// A `Tensor` parameter: wrapped in `Param`.
    Param,
    /// Something that must already be a hooked module: a `HookPoint`, or a type that
    /// names a generic parameter of the struct (the field gets a `HookedModule` bound).
    Nested,
    /// A type the macro does not know (an annotated struct, an enum, a foreign type):
    /// visited if it implements `HookedModule`, data otherwise, decided by the compiler.
    Probe,
    /// `Arc<T>` / `Rc<T>` of a type the macro does not know: probed like [`Shape::Probe`];
    /// a hooked value is copied on construction, so that no two holders share points.
    SharedProbe,
    /// A container whose elements have the inner shape.
    Container(Container, Box<Shape>),
    /// A tuple of modules (whisper's `Option<(MultiHeadAttention, LayerNorm)>`): its
    /// elements are named `0`, `1`, ... A tuple holding anything else (a KV cache of
    /// tensors, a module beside a number) is data.
    Tuple(Vec<Shape>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Container {
    Vec,
    Array,
    Map,
    Option,
    Box,
    /// `Arc` / `Rc`: the module is copied into a new one of its own on construction.
    Shared,
}

impl Shape {
    /// Whether the field is visited for hook points.
    pub fn is_hooked(&self) -> bool {
        !matches!(self, Shape::Data)
    }

    /// Whether this is a tensor parameter, or a container of them.
    pub fn is_param(&self) -> bool {
        match self {
            Shape::Param => true,
            Shape::Container(_, inner) => inner.is_param(),
            _ => false,
        }
    }

    /// Whether the compiler decides (the macro does not know the type).
    pub fn is_probe(&self) -> bool {
        matches!(self, Shape::Probe | Shape::SharedProbe)
    }

    /// Whether the field's type changes (so values need converting).
    pub fn wraps(&self) -> bool {
        match self {
            Shape::Module | Shape::ModuleT | Shape::Param => true,
            Shape::Container(_, inner) => inner.wraps(),
            Shape::Tuple(elems) => elems.iter().any(Shape::wraps),
            Shape::Data | Shape::Nested | Shape::Probe | Shape::SharedProbe => false,
        }
    }
}

/// Classifies `ty`; `leaf` forces the innermost element to be a `Module`. `generics`
/// are the struct's type parameters: a field of such a type must be a hooked module.
pub fn classify(ty: &Type, leaf: bool, generics: &[Ident]) -> Shape {
    let classify = |ty: &Type, leaf: bool| classify(ty, leaf, generics);
    match ty {
        Type::Array(array) => container(Container::Array, classify(&array.elem, leaf)),
        Type::Paren(p) => classify(&p.elem, leaf),
        Type::Group(g) => classify(&g.elem, leaf),
        Type::Path(path) if path.qself.is_none() => {
            let Some(last) = path.path.segments.last() else {
                return Shape::Data;
            };
            let name = last.ident.to_string();
            let args = type_args(&last.arguments);
            match (name.as_str(), args.as_slice()) {
                ("Vec" | "VecDeque", [elem]) => container(Container::Vec, classify(elem, leaf)),
                ("HashMap" | "BTreeMap" | "IndexMap", [key, value, ..]) if is_string(key) => {
                    container(Container::Map, classify(value, leaf))
                }
                // Maps keyed by numbers or tuples are caches: data.
                ("HashMap" | "BTreeMap" | "IndexMap", _) => Shape::Data,
                ("Option", [elem]) => container(Container::Option, classify(elem, leaf)),
                ("Box", [elem]) => container(Container::Box, classify(elem, leaf)),
                // a shared module: each holder gets its own copy of the hook points
                ("Arc" | "Rc", [elem]) => match classify(elem, leaf) {
                    Shape::Probe => Shape::SharedProbe,
                    Shape::Nested => Shape::Data,
                    inner => container(Container::Shared, inner),
                },
                _ if leaf => Shape::Module,
                // A type of the file's own with a candle name (bert's `Dropout`): the
                // compiler decides whether it is hooked, as for any other type.
                _ if is_local_type(&path.path) => Shape::Probe,
                ("Tensor", []) => Shape::Param,
                ("HookPoint", []) => Shape::Nested,
                (n, _) if MODULES.contains(&n) => Shape::Module,
                (n, _) if MODULES_T.contains(&n) => Shape::ModuleT,
                (n, _) if DATA.contains(&n) || n.ends_with("Config") || n.ends_with("Cfg") => {
                    Shape::Data
                }
                _ if path.path.segments.len() == 1 && generics.contains(&last.ident) => {
                    Shape::Nested
                }
                _ => Shape::Probe,
            }
        }
        Type::Tuple(t) if (2..=4).contains(&t.elems.len()) => {
            tuple(t.elems.iter().map(|e| classify(e, leaf)).collect())
        }
        _ if leaf => Shape::Module,
        // References, pointers, other tuples, function pointers, trait objects: data.
        _ => Shape::Data,
    }
}

/// A type the crate defines itself: `crate::config::Activation`, `self::x::T`,
/// `super::T`, or a bare name that the same file defines (see `registry`).
fn is_local_type(path: &syn::Path) -> bool {
    let first = &path.segments[0].ident;
    if path.leading_colon.is_none()
        && path.segments.len() > 1
        && (first == "crate" || first == "self" || first == "super")
    {
        return true;
    }
    path.segments.len() == 1 && crate::registry::is_local(first)
}

/// `String`, `&str`, `Cow<str>`, `Arc<str>`, `Rc<str>`: keys that name map elements.
fn is_string(ty: &Type) -> bool {
    match ty {
        Type::Reference(r) => is_string(&r.elem),
        Type::Path(p) => p.path.segments.last().is_some_and(|s| {
            s.ident == "String"
                || s.ident == "str"
                || (matches!(s.ident.to_string().as_str(), "Cow" | "Arc" | "Rc" | "Box")
                    && type_args(&s.arguments)
                        .first()
                        .is_some_and(|t| is_string(t)))
        }),
        _ => false,
    }
}

fn container(kind: Container, inner: Shape) -> Shape {
    match inner {
        Shape::Data => Shape::Data,
        // The compiler decides for the whole container (`Vec<Block>` is hooked if `Block` is).
        Shape::Probe => Shape::Probe,
        inner => Shape::Container(kind, Box::new(inner)),
    }
}

/// A tuple whose elements are all modules (known or for the compiler to decide), or data.
fn tuple(elems: Vec<Shape>) -> Shape {
    if elems.iter().all(|e| matches!(e, Shape::Probe)) {
        // the compiler decides for the whole tuple, as for a container
        return Shape::Probe;
    }
    let module = |e: &Shape| !matches!(e, Shape::Data) && !e.is_param();
    if elems.iter().all(module) {
        Shape::Tuple(elems)
    } else {
        Shape::Data
    }
}

fn type_args(args: &PathArguments) -> Vec<&Type> {
    match args {
        PathArguments::AngleBracketed(a) => a
            .args
            .iter()
            .filter_map(|arg| match arg {
                GenericArgument::Type(t) => Some(t),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The field type after wrapping.
pub fn wrapped_type(ty: &Type, shape: &Shape) -> Type {
    let span = ty.span();
    match shape {
        Shape::Module => syn::parse_quote_spanned!(span=> ::auto_hook::Hooked<#ty>),
        Shape::ModuleT => syn::parse_quote_spanned!(span=> ::auto_hook::HookedT<#ty>),
        Shape::Param => syn::parse_quote_spanned!(span=> ::auto_hook::Param),
        Shape::Container(_, inner) if inner.wraps() => {
            let mut ty = ty.clone();
            map_element_type(&mut ty, &|elem| wrapped_type(elem, inner));
            ty
        }
        Shape::Tuple(shapes) => match ty {
            Type::Tuple(t) => {
                let elems = t.elems.iter().zip(shapes).map(|(e, s)| wrapped_type(e, s));
                syn::parse_quote_spanned!(span=> (#(#elems,)*))
            }
            Type::Paren(p) => wrapped_type(&p.elem, shape),
            Type::Group(g) => wrapped_type(&g.elem, shape),
            _ => ty.clone(),
        },
        _ => ty.clone(),
    }
}

/// Replaces the element type of a container type in place.
fn map_element_type(ty: &mut Type, f: &dyn Fn(&Type) -> Type) {
    match ty {
        Type::Array(array) => *array.elem = f(&array.elem),
        Type::Paren(p) => map_element_type(&mut p.elem, f),
        Type::Group(g) => map_element_type(&mut g.elem, f),
        Type::Path(path) => {
            let Some(last) = path.path.segments.last_mut() else {
                return;
            };
            let is_map = matches!(
                last.ident.to_string().as_str(),
                "HashMap" | "BTreeMap" | "IndexMap"
            );
            if let PathArguments::AngleBracketed(a) = &mut last.arguments {
                let mut types = a.args.iter_mut().filter_map(|arg| match arg {
                    GenericArgument::Type(t) => Some(t),
                    _ => None,
                });
                let elem = if is_map { types.nth(1) } else { types.next() };
                if let Some(elem) = elem {
                    *elem = f(elem);
                }
            }
        }
        _ => {}
    }
}

/// An expression converting a value of the original type (`value`) into the wrapped type.
pub fn convert(shape: &Shape, value: TokenStream) -> TokenStream {
    match shape {
        Shape::Module => quote!(::auto_hook::Hooked::new(#value)),
        Shape::ModuleT => quote!(::auto_hook::HookedT::new(#value)),
        Shape::Param => quote!(::auto_hook::Param::new(#value)),
        Shape::Container(kind, inner) if inner.wraps() => {
            let each = convert(inner, quote!(__v));
            match kind {
                Container::Vec => quote!(#value.into_iter().map(|__v| #each).collect()),
                Container::Array => quote!(#value.map(|__v| #each)),
                Container::Map => {
                    quote!(#value.into_iter().map(|(__k, __v)| (__k, #each)).collect())
                }
                Container::Option => quote!(#value.map(|__v| #each)),
                Container::Box => {
                    let each = convert(inner, quote!(*#value));
                    quote!(::std::boxed::Box::new(#each))
                }
                Container::Shared => {
                    let each = convert(inner, quote!((*#value).clone()));
                    quote!(::auto_hook::__private::Shared::share(&#value, #each))
                }
            }
        }
        Shape::Tuple(shapes) if shape.wraps() => {
            let names: Vec<_> = (0..shapes.len())
                .map(|i| quote::format_ident!("__t{}", i))
                .collect();
            let each = shapes
                .iter()
                .zip(&names)
                .map(|(s, n)| convert(s, quote!(#n)));
            quote!({ let (#(#names,)*) = #value; (#(#each,)*) })
        }
        Shape::SharedProbe => quote! {{
            #[allow(unused_imports)]
            use ::auto_hook::__private::{KeepShared as _, UnshareHooked as _};
            (&::auto_hook::__private::Probe(&#value)).unshare()
        }},
        _ => value,
    }
}
