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
        "#[auto_hook] goes on a struct with named fields and on its impl blocks, not on {what}"
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

fn expand_struct(mut item: ItemStruct, errors: &mut darling::error::Accumulator) -> TokenStream {
    let fields = parse_fields(&mut item, Mode::Annotate, errors);
    if !matches!(item.fields, syn::Fields::Named(_)) {
        return quote!(#item);
    }
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
    let converters = converters(&item, &fields);
    let name = &item.ident;
    let (impl_generics, ty_generics, where_clause) = item.generics.split_for_impl();
    quote! {
        #item
        const _: () = {
            #hooked
            #[automatically_derived]
            impl #impl_generics ::auto_hook::__private::OwnHookPoint for #name #ty_generics #where_clause {
                #[inline]
                fn own_hook_point(&self) -> &::auto_hook::HookPoint {
                    &self.__auto_hook_point
                }
            }
            #converters
        };
    }
}

/// `impl HookedModule`: the schema and the two walkers, one line per hooked field.
fn hooked_module_impl(item: &ItemStruct, fields: &[Field], own_point: bool) -> TokenStream {
    let name = &item.ident;
    let hooked: Vec<&Field> = fields.iter().filter(|f| f.shape.is_hooked()).collect();
    let markers: Vec<&Ident> = hooked.iter().map(|f| &f.ident).collect();
    let mut generics = item.generics.clone();
    // Every hooked field's bound sits in the `where` clause: generic fields need it, and
    // for concrete ones it makes an unhookable type one error at the field, not three.
    for f in &hooked {
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
    let visits = hooked.iter().map(|f| {
        let (ident, segment, cfgs) = (&f.ident, &f.segment, &f.cfgs);
        quote!(#(#cfgs)* __w.field::<__auto_hook_fields::#ident, _>(#segment, &self.#ident);)
    });
    let visits_mut = hooked.iter().map(|f| {
        let (ident, segment, cfgs) = (&f.ident, &f.segment, &f.cfgs);
        quote!(#(#cfgs)* __w.field::<__auto_hook_fields::#ident, _>(#segment, &mut self.#ident);)
    });
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
                __w.module(::std::any::type_name::<Self>());
                #own_visit
                #(#visits)*
            }
            fn visit_hooks_mut(&mut self, __w: &mut ::auto_hook::WalkerMut<'_>) {
                #own_visit_mut
                #(#visits_mut)*
            }
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
            let entry = quote_spanned! {f.ty.span()=>
                (#segment, &<#ty as ::auto_hook::__private::HookedField<__auto_hook_fields::#ident>>::FIELD_SCHEMA)
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

/// `Self::__auto_hook_field_NAME(value)`: converts what a constructor wrote for a field
/// into the field's hooked type. Called by the struct literals of annotated impl blocks.
fn converters(item: &ItemStruct, fields: &[Field]) -> TokenStream {
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
            #[allow(clippy::all)]
            #vis fn #fn_name(__value: #ty) -> #wrapped {
                #body
            }
        }
    });
    quote! {
        #[automatically_derived]
        impl #impl_generics #name #ty_generics #where_clause {
            #(#fns)*
        }
    }
}
