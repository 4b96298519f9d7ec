//! Code generation for annotated structs and `derive(HookedRoot)`.

use crate::ast::{parse_fields, Field, Mode, OWN_POINT};
use crate::attr::{parse_item_args, ItemArgs};
use crate::classify::{convert, wrapped_type};
use crate::decide::{decide, Override};
use crate::expand_impl::expand_impl;
use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Generics, Item, ItemStruct};

/// Entry point of `#[auto_hook]`: dispatches on the annotated item.
pub fn attribute(args: TokenStream, input: TokenStream) -> TokenStream {
    let mut errors = darling::Error::accumulator();
    let args = errors.handle(parse_item_args(args)).unwrap_or_default();
    let item = match syn::parse2::<Item>(input.clone()) {
        Ok(item) => item,
        Err(e) => return e.to_compile_error(),
    };
    let forced = item_override(&args, &item, &mut errors);
    let expanded = match item {
        Item::Struct(item) => expand_struct(item, forced, &mut errors),
        Item::Impl(item) => expand_impl(item, &mut errors),
        Item::Fn(item) => crate::expand_impl::expand_fn(item),
        Item::Enum(e) => crate::expand_enum::expand_enum(e),
        Item::Union(u) => unsupported(&u.union_token, "a union", input, &mut errors),
        other => unsupported(&other, "this item", input, &mut errors),
    };
    with_errors(expanded, errors)
}

/// `#[auto_hook(module)]` / `#[auto_hook(data)]`: only on a struct, not both.
fn item_override(
    args: &ItemArgs,
    item: &Item,
    errors: &mut darling::error::Accumulator,
) -> Override {
    if !args.data && !args.module {
        return Override::None;
    }
    let what = if args.data { "data" } else { "module" };
    if args.data && args.module {
        let msg = "`data` and `module` contradict each other: a struct is one or the other";
        errors.push(darling::Error::custom(msg).with_span(&item_span(item)));
        return Override::None;
    }
    if !matches!(item, Item::Struct(_)) {
        let msg = format!("`{what}` decides about a struct; it has no meaning on this item");
        errors.push(darling::Error::custom(msg).with_span(&item_span(item)));
        return Override::None;
    }
    if args.data {
        Override::Data
    } else {
        Override::Module
    }
}

/// The item's first token (`struct`, `impl`, `fn`, ...), to point errors at.
fn item_span(item: &Item) -> TokenStream {
    item.to_token_stream().into_iter().take(1).collect()
}

fn unsupported(
    span: &dyn quote::ToTokens,
    what: &str,
    input: TokenStream,
    errors: &mut darling::error::Accumulator,
) -> TokenStream {
    let msg = format!(
        "#[auto_hook] goes on a struct with named fields, an enum, their impl blocks and functions that build them, not on {what}"
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

fn expand_struct(
    mut item: ItemStruct,
    forced: Override,
    errors: &mut darling::error::Accumulator,
) -> TokenStream {
    crate::registry::register_local(&item.ident);
    if !matches!(item.fields, syn::Fields::Named(_)) {
        // Tuple and unit structs are data: nothing to name their fields by.
        return expand_data_struct(&item, &[]);
    }
    let fields = parse_fields(&mut item, Mode::Annotate, errors);
    if !decide(&item, &fields, forced).module {
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
    let has_forward = has_forward(&item.generics);
    let forgotten = forgotten_forward_check(&item);
    quote! {
        #item
        #forgotten
        #[automatically_derived]
        impl #impl_generics #name #ty_generics #where_clause {
            /// Whether the struct's own `hook_point` is listed: it has a hooked forward.
            #[doc(hidden)]
            #[allow(non_upper_case_globals)]
            const __AUTO_HOOK_OWN: bool = #has_forward;
        }
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

/// Whether a struct has a forward that fires its own point: asked of the compiler (the
/// annotated impl blocks that wrap a forward implement `HasForward<K>`, `K` one of
/// [`FORWARD_KINDS`] slots). A struct with type or const parameters cannot be asked
/// for every instance: its own point is always listed.
fn has_forward(generics: &Generics) -> TokenStream {
    if generics.type_params().next().is_some() || generics.const_params().next().is_some() {
        return quote!(true);
    }
    let probes = (0..crate::expand_impl::FORWARD_KINDS)
        .map(|k| quote!(<::auto_hook::__private::ForwardProbe<Self, #k>>::YES));
    quote!({
        #[allow(unused_imports)]
        use ::auto_hook::__private::NoForward as _;
        false #(|| #probes)*
    })
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
    let own = own_point.then(|| {
        quote! {
            (#OWN_POINT, if Self::__AUTO_HOOK_OWN {
                &::auto_hook::Schema::Point
            } else {
                &::auto_hook::Schema::Struct(&[])
            }),
        }
    });
    let own_visit = own_point.then(
        || quote!(if Self::__AUTO_HOOK_OWN { __w.child(#OWN_POINT, &self.__auto_hook_point); }),
    );
    let own_visit_mut = own_point.then(
        || quote!(if Self::__AUTO_HOOK_OWN { __w.child(#OWN_POINT, &mut self.__auto_hook_point); }),
    );
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
    // `auto_hook(model)` of an annotated `Module` finds its points through the registry
    // (a type with parameters cannot be named as `'static` here)
    let register = item.generics.params.is_empty().then(|| {
        quote! {{
            #[allow(unused_imports)]
            use ::auto_hook::__private::{RegisterHooked as _, RegisterNothing as _};
            (&::auto_hook::__private::TypeProbe::<Self>::new()).register();
        }}
    });
    let constructor = complete.then(|| {
        quote! {
            #[doc(hidden)]
            #[inline]
            #[allow(clippy::all, non_snake_case, dead_code, private_interfaces)]
            #vis fn __auto_hook_new(#(#params),*) -> Self {
                #register
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

/// For a struct without generics: a compile error when it implements candle's `Module`
/// but no annotated impl wraps a forward (the `#[auto_hook]` on `impl Module for ...`
/// was forgotten: its output point would not be listed and its parameters would not
/// fire inside `forward`, silently).
fn forgotten_forward_check(item: &syn::ItemStruct) -> TokenStream {
    if !item.generics.params.is_empty() {
        return TokenStream::new();
    }
    let name = &item.ident;
    let message = format!(
        "`{name}` implements candle's `Module`, but no impl block with its `forward` has \
         #[auto_hook]: put #[auto_hook] on `impl Module for {name}` (without it, `{name}`'s \
         output point is not listed and its parameters do not fire inside `forward`)"
    );
    quote::quote_spanned! {name.span()=>
        const _: () = {
            #[allow(unused_imports)]
            use ::auto_hook::__private::NotModule as _;
            if <::auto_hook::__private::ModuleProbe<#name>>::IS_MODULE && !#name::__AUTO_HOOK_OWN {
                ::core::panic!(#message);
            }
        };
    }
}
