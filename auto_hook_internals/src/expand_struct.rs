//! Code generation for annotated structs and `derive(HookedRoot)`.

use crate::ast::{parse_fields, Field, Mode, OWN_POINT};
use crate::attr::parse_item_args;
use crate::classify::{convert, wrapped_type};
use crate::expand_impl::expand_impl;
use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Generics, Item, ItemStruct};

/// Entry point of `#[auto_hook]`: dispatches on the annotated item.
pub fn attribute(args: TokenStream, input: TokenStream) -> TokenStream {
    let mut errors = darling::Error::accumulator();
    errors.handle(parse_item_args(args));
    let item = match syn::parse2::<Item>(input.clone()) {
        Ok(item) => item,
        Err(e) => return e.to_compile_error(),
    };
    let expanded = match item {
        Item::Struct(item) => expand_struct(item, &mut errors),
        Item::Impl(item) => expand_impl(item, &mut errors),
        Item::Fn(item) => crate::expand_impl::expand_fn(item),
        Item::Enum(e) => unsupported(&e.enum_token, "an enum", input, &mut errors),
        Item::Union(u) => unsupported(&u.union_token, "a union", input, &mut errors),
        other => unsupported(&other, "this item", input, &mut errors),
    };
    with_errors(expanded, errors)
}

fn unsupported(
    span: &dyn quote::ToTokens,
    what: &str,
    input: TokenStream,
    errors: &mut darling::error::Accumulator,
) -> TokenStream {
    let msg = format!(
        "#[auto_hook] goes on a struct with named fields, its impl blocks and functions that build it, not on {what}"
    );
    errors.push(darling::Error::custom(msg).with_span(&span.to_token_stream()));
    input
}

use quote::ToTokens;

/// Appends every collected error to the output, so users see all their mistakes at once.
fn with_errors(expanded: TokenStream, errors: darling::error::Accumulator) -> TokenStream {
    match errors.finish() {
        Ok(()) => expanded,
        Err(e) => {
            let errors = e.write_errors();
            quote!(#expanded #errors)
        }
    }
}

/// Entry point of `#[derive(HookedRoot)]`.
pub fn derive_root(input: TokenStream) -> TokenStream {
    let mut errors = darling::Error::accumulator();
    let mut item = match syn::parse2::<Item>(input) {
        Ok(Item::Struct(item)) => item,
        Ok(other) => {
            let msg = "derive(HookedRoot) works on structs with named fields";
            errors.push(darling::Error::custom(msg).with_span(&other.to_token_stream()));
            return with_errors(TokenStream::new(), errors);
        }
        Err(e) => return e.to_compile_error(),
    };
    let fields = parse_fields(&mut item, Mode::DeriveRoot, &mut errors);
    let body = hooked_module_impl(&item, &fields, false);
    with_errors(quote!(const _: () = { #body };), errors)
}

/// A struct is data when it derives one of these, is named like a configuration, or
/// has no field that is a module or a parameter.
/// Derives that mark a value type (a config, a key, an enum-like record): such a struct
/// is data, and `#[auto_hook]` leaves it as it is.
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

/// Whether the struct derives one of [`DATA_DERIVES`].
fn derives_data(item: &ItemStruct) -> bool {
    let mut found = false;
    for attr in item.attrs.iter().filter(|a| a.path().is_ident("derive")) {
        let _ = attr.parse_nested_meta(|meta| {
            let last = meta.path.segments.last().map(|s| s.ident.to_string());
            found |= last.is_some_and(|n| DATA_DERIVES.contains(&n.as_str()));
            Ok(())
        });
    }
    found
}

/// Records which of `items` (and of their inline modules) are hooked structs, before any
/// is expanded, so a literal that comes before its struct's definition is rewritten too.
/// The build helper calls it on a whole file; the attribute sees one item at a time.
pub fn register_structs(items: &[Item]) {
    for item in items {
        match item {
            Item::Struct(s) if is_hooked_struct(s) => crate::registry::register_hooked(&s.ident),
            Item::Mod(m) => {
                if let Some((_, inner)) = &m.content {
                    register_structs(inner);
                }
            }
            _ => {}
        }
    }
}

/// Whether `#[auto_hook]` would hook this struct (rather than leave it as data).
fn is_hooked_struct(item: &ItemStruct) -> bool {
    if !matches!(item.fields, syn::Fields::Named(_)) {
        return false;
    }
    let mut errors = darling::Error::accumulator();
    let fields = parse_fields(&mut item.clone(), Mode::Annotate, &mut errors);
    let _ = errors.finish();
    !is_data(item, &fields)
}

/// The one rule for "data, left as it is" (see [`DATA_DERIVES`]).
fn is_data(item: &ItemStruct, fields: &[Field]) -> bool {
    derives_data(item) || named_config(item) || !fields.iter().any(|f| f.shape.is_hooked())
}

/// Whether the struct is named like a configuration (`Config`, `LlamaConfig`, `Cfg`) or
/// like run-time state or a result (`Cache`, `KvCache`, `State`, `StatePerLayer`,
/// `TopKOutput`): data.
fn named_config(item: &ItemStruct) -> bool {
    let name = item.ident.to_string();
    name.ends_with("Config")
        || name.ends_with("Cfg")
        || camel_words(&name).any(|w| {
            matches!(
                w,
                "Cache" | "Caches" | "State" | "States" | "Output" | "Outputs"
            )
        })
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

fn expand_struct(mut item: ItemStruct, errors: &mut darling::error::Accumulator) -> TokenStream {
    if !matches!(item.fields, syn::Fields::Named(_)) {
        // Tuple and unit structs are data: nothing to name their fields by.
        return expand_data_struct(&item, &[]);
    }
    let fields = parse_fields(&mut item, Mode::Annotate, errors);
    if is_data(&item, &fields) {
        return expand_data_struct(&item, &fields);
    }
    crate::registry::register_hooked(&item.ident);
    if let syn::Fields::Named(named) = &mut item.fields {
        for (field, info) in named
            .named
            .iter_mut()
            .filter(|f| f.ident.is_some())
            .zip(&fields)
        {
            field.ty = wrapped_type(&info.ty, &info.shape);
        }
        named.named.push(syn::parse_quote! {
            #[doc(hidden)]
            pub __auto_hook_point: ::auto_hook::HookPoint
        });
    }
    let hooked = hooked_module_impl(&item, &fields, true);
    let converters = converters(&item, &fields, true);
    let name = &item.ident;
    let (impl_generics, ty_generics, where_clause) = item.generics.split_for_impl();
    quote! {
        #item
        const _: () = {
            #hooked
            #[automatically_derived]
            impl #impl_generics ::auto_hook::__private::OwnHookPoint for #name #ty_generics #where_clause {
                #[inline]
                fn own_hook_point(&self) -> ::core::option::Option<&::auto_hook::HookPoint> {
                    ::core::option::Option::Some(&self.__auto_hook_point)
                }
            }
        };
        #converters
    }
}

/// A struct that is not a module (a config, a cache record): left as it is, with the
/// hidden constructor and converters that rewritten struct literals call, and no own
/// hook point (its forwards, if any, fire nothing).
fn expand_data_struct(item: &ItemStruct, fields: &[Field]) -> TokenStream {
    let data_fields: Vec<Field> = fields
        .iter()
        .map(|f| Field {
            shape: crate::classify::Shape::Data,
            ..f.clone()
        })
        .collect();
    let name = &item.ident;
    let (impl_generics, ty_generics, where_clause) = item.generics.split_for_impl();
    let converters =
        matches!(item.fields, syn::Fields::Named(_)).then(|| converters(item, &data_fields, false));
    quote! {
        #item
        const _: () = {
            #[automatically_derived]
            impl #impl_generics ::auto_hook::__private::OwnHookPoint for #name #ty_generics #where_clause {
                #[inline]
                fn own_hook_point(&self) -> ::core::option::Option<&::auto_hook::HookPoint> {
                    ::core::option::Option::None
                }
            }
        };
        #converters
    }
}

/// `impl HookedModule`: the schema and the two walkers, one line per hooked field.
fn hooked_module_impl(item: &ItemStruct, fields: &[Field], own_point: bool) -> TokenStream {
    let name = &item.ident;
    let hooked: Vec<&Field> = fields.iter().filter(|f| f.shape.is_hooked()).collect();
    let markers: Vec<&Ident> = hooked.iter().map(|f| &f.ident).collect();
    let mut generics = item.generics.clone();
    // Every surely-hooked field's bound sits in the `where` clause: generic fields need
    // it, and for concrete ones it makes an unhookable type one error at the field.
    // Fields of types the macro does not know are probed instead (hooked or data).
    for f in hooked.iter().filter(|f| !f.shape.is_probe()) {
        let (ident, ty) = (&f.ident, wrapped_type(&f.ty, &f.shape));
        generics
            .make_where_clause()
            .predicates
            .push(syn::parse_quote_spanned! {f.ty.span()=>
                #ty: ::auto_hook::__private::HookedField<__auto_hook_fields::#ident>
            });
    }
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    let (schema_consts, schema_entries) = schema_entries(name, &generics, &hooked);
    let own = own_point.then(|| quote!((#OWN_POINT, &::auto_hook::Schema::Point),));
    let own_visit = own_point.then(|| quote!(__w.child(#OWN_POINT, &self.__auto_hook_point);));
    let own_visit_mut =
        own_point.then(|| quote!(__w.child(#OWN_POINT, &mut self.__auto_hook_point);));
    let visits = hooked.iter().map(|f| visit_field(f, false));
    let visits_mut = hooked.iter().map(|f| visit_field(f, true));
    quote! {
        #[doc(hidden)]
        #[allow(non_camel_case_types, dead_code)]
        mod __auto_hook_fields {
            #(pub struct #markers;)*
        }
        #schema_consts
        #[automatically_derived]
        impl #impl_generics ::auto_hook::HookedModule for #name #ty_generics #where_clause {
            const SCHEMA: ::auto_hook::Schema = ::auto_hook::Schema::Struct(&[#own #(#schema_entries,)*]);
            fn visit_hooks<'__s>(&'__s self, __w: &mut ::auto_hook::Walker<'_, '__s>) {
                #[allow(unused_imports)]
                use ::auto_hook::__private::ProbeFallback as _;
                __w.module(::std::any::type_name::<Self>());
                #own_visit
                #(#visits)*
            }
            fn visit_hooks_mut(&mut self, __w: &mut ::auto_hook::WalkerMut<'_>) {
                #[allow(unused_imports)]
                use ::auto_hook::__private::ProbeFallback as _;
                #own_visit_mut
                #(#visits_mut)*
            }
        }
    }
}

/// One field's line in a walker: by its bound, or through the probe.
fn visit_field(f: &Field, mutable: bool) -> TokenStream {
    let (ident, segment, cfgs) = (&f.ident, &f.segment, &f.cfgs);
    let ty = wrapped_type(&f.ty, &f.shape);
    match (f.shape.is_probe(), mutable) {
        (false, false) => {
            quote!(#(#cfgs)* __w.field::<__auto_hook_fields::#ident, _>(#segment, &self.#ident);)
        }
        (false, true) => {
            quote!(#(#cfgs)* __w.field::<__auto_hook_fields::#ident, _>(#segment, &mut self.#ident);)
        }
        (true, false) => {
            quote!(#(#cfgs)* <::auto_hook::__private::FieldProbe<#ty>>::visit(#segment, &self.#ident, __w);)
        }
        (true, true) => {
            quote!(#(#cfgs)* <::auto_hook::__private::FieldProbe<#ty>>::visit_mut(#segment, &mut self.#ident, __w);)
        }
    }
}

/// Schema entries; a field under `#[cfg]` goes through a hidden constant that is an
/// empty entry when the field is compiled out.
fn schema_entries(
    name: &Ident,
    generics: &Generics,
    hooked: &[&Field],
) -> (TokenStream, Vec<TokenStream>) {
    let mut consts = Vec::new();
    let entries = hooked
        .iter()
        .map(|f| {
            let (ident, segment, ty) = (&f.ident, &f.segment, wrapped_type(&f.ty, &f.shape));
            let entry = if f.shape.is_probe() {
                quote_spanned! {f.ty.span()=>
                    (#segment, {
                        #[allow(unused_imports)]
                        use ::auto_hook::__private::ProbeFallback as _;
                        <::auto_hook::__private::FieldProbe<#ty>>::SCHEMA
                    })
                }
            } else {
                quote_spanned! {f.ty.span()=>
                    (#segment, &<#ty as ::auto_hook::__private::HookedField<__auto_hook_fields::#ident>>::FIELD_SCHEMA)
                }
            };
            if f.cfgs.is_empty() {
                return entry;
            }
            let konst = format_ident!("__AUTO_HOOK_SCHEMA_{}", ident);
            let cfgs = &f.cfgs;
            let predicates = cfgs.iter().map(|c| c.meta.require_list().map(|l| l.tokens.clone()).unwrap_or_default());
            consts.push(quote! {
                #(#cfgs)*
                const #konst: (&'static str, &'static ::auto_hook::Schema) = #entry;
                #[cfg(not(all(#(#predicates),*)))]
                const #konst: (&'static str, &'static ::auto_hook::Schema) = ("", &::auto_hook::Schema::Struct(&[]));
            });
            quote!(Self::#konst)
        })
        .collect();
    let schema_consts = if consts.is_empty() {
        TokenStream::new()
    } else {
        let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
        quote! {
            #[allow(non_upper_case_globals)]
            impl #impl_generics #name #ty_generics #where_clause {
                #(#consts)*
            }
        }
    };
    (schema_consts, entries)
}

/// `Self::__auto_hook_field_NAME(value)`: converts what a literal wrote for a field into
/// the field's hooked type; `Self::__auto_hook_new(..)`: the whole literal, fields in
/// name order. Called by the struct literals that annotated items contain.
fn converters(item: &ItemStruct, fields: &[Field], own_point: bool) -> TokenStream {
    let name = &item.ident;
    let (impl_generics, ty_generics, where_clause) = item.generics.split_for_impl();
    let fns = fields.iter().map(|f| {
        let (vis, cfgs, ty) = (&f.vis, &f.cfgs, &f.ty);
        let fn_name = format_ident!("__auto_hook_field_{}", f.ident);
        let wrapped = wrapped_type(&f.ty, &f.shape);
        let body = convert(&f.shape, quote!(__value));
        quote! {
            #(#cfgs)*
            #[doc(hidden)]
            #[inline]
            #[allow(clippy::all, non_snake_case, dead_code)]
            #vis fn #fn_name(__value: #ty) -> #wrapped {
                #body
            }
        }
    });
    let mut sorted: Vec<&Field> = fields.iter().collect();
    sorted.sort_by_key(|f| f.ident.to_string());
    let params = sorted.iter().enumerate().map(|(i, f)| {
        let (cfgs, ty, arg) = (&f.cfgs, &f.ty, format_ident!("__a{}", i));
        quote!(#(#cfgs)* #arg: #ty)
    });
    let inits = sorted.iter().enumerate().map(|(i, f)| {
        let (cfgs, ident, arg) = (&f.cfgs, &f.ident, format_ident!("__a{}", i));
        let value = convert(&f.shape, quote!(#arg));
        quote!(#(#cfgs)* #ident: #value)
    });
    let own = own_point.then(|| quote!(__auto_hook_point: ::auto_hook::HookPoint::new(),));
    let vis = &item.vis;
    // A field that failed its checks has an error already; no constructor to add to it.
    let complete = fields.len()
        == item.fields.iter().filter(|f| f.ident.is_some()).count() - usize::from(own_point);
    let constructor = complete.then(|| {
        quote! {
            #[doc(hidden)]
            #[inline]
            #[allow(clippy::all, non_snake_case, dead_code, private_interfaces)]
            #vis fn __auto_hook_new(#(#params),*) -> Self {
                Self { #(#inits,)* #own }
            }
        }
    });
    quote! {
        #[automatically_derived]
        impl #impl_generics #name #ty_generics #where_clause {
            #(#fns)*
            #constructor
        }
    }
}
