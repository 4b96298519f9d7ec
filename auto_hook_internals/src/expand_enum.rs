//! Code generation for annotated enums: an enum whose variants hold hooked values (an
//! `MlpOrMoe`) lists every variant's points (a union schema, each variant under its own
//! name segment) and visits the variant it holds, so the taken variant's points fire.
//!
//! Variant fields keep their types: a field of a type the compiler finds hooked (an
//! annotated struct, a container of them) is visited; a bare candle module in a variant
//! (`Dense(Linear)`) is not wrapped and has no point (constructors of variants are plain
//! calls that the rewrite cannot see). An enum with no such field is left as it is.

use crate::classify::{classify, Shape};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::{Fields, ItemEnum};

/// One visited field of a variant: its name segment, binding and type.
struct VariantField {
    segment: String,
    binding: syn::Ident,
    member: TokenStream,
    ty: syn::Type,
}

pub fn expand_enum(item: ItemEnum) -> TokenStream {
    crate::registry::register_local(&item.ident);
    let generics: Vec<syn::Ident> = item
        .generics
        .type_params()
        .map(|p| p.ident.clone())
        .collect();
    let variants: Vec<(&syn::Variant, Vec<VariantField>)> = item
        .variants
        .iter()
        .map(|v| (v, variant_fields(v, &generics)))
        .collect();
    if variants.iter().all(|(_, fields)| fields.is_empty()) {
        return quote!(#item);
    }
    crate::registry::register_hooked(&item.ident);
    let name = &item.ident;
    let (impl_generics, ty_generics, where_clause) = item.generics.split_for_impl();
    let entries = variants
        .iter()
        .filter(|(_, f)| !f.is_empty())
        .map(|(v, fields)| {
            let variant = v.ident.to_string();
            let schemas: Vec<TokenStream> = fields
                .iter()
                .map(|f| {
                    let ty = &f.ty;
                    quote!({
                        #[allow(unused_imports)]
                        use ::auto_hook::__private::ProbeFallback as _;
                        <::auto_hook::__private::FieldProbe<#ty>>::SCHEMA
                    })
                })
                .collect();
            match fields.as_slice() {
                [f] if f.segment == variant => {
                    let schema = &schemas[0];
                    quote!((#variant, #schema))
                }
                _ => {
                    let inner = fields.iter().zip(&schemas).map(|(f, schema)| {
                        let segment = f.segment.rsplit('.').next().unwrap_or_default();
                        quote!((#segment, #schema))
                    });
                    quote!((#variant, &::auto_hook::Schema::Struct(&[#(#inner,)*])))
                }
            }
        });
    let arms = |mutable: bool| {
        variants.iter().map(move |(v, fields)| {
            let ident = &v.ident;
            let visits = fields.iter().map(|f| {
                let (segment, binding, ty) = (&f.segment, &f.binding, &f.ty);
                if mutable {
                    quote!(<::auto_hook::__private::FieldProbe<#ty>>::visit_mut(#segment, #binding, __w);)
                } else {
                    quote!(<::auto_hook::__private::FieldProbe<#ty>>::visit(#segment, #binding, __w);)
                }
            });
            let members = fields.iter().map(|f| {
                let (member, binding) = (&f.member, &f.binding);
                quote!(#member: #binding)
            });
            quote!(Self::#ident { #(#members,)* .. } => { #(#visits)* })
        })
    };
    let (arms_ref, arms_mut) = (arms(false), arms(true));
    quote! {
        #item
        const _: () = {
            #[automatically_derived]
            impl #impl_generics ::auto_hook::HookedModule for #name #ty_generics #where_clause {
                const SCHEMA: ::auto_hook::Schema = ::auto_hook::Schema::Struct(&[#(#entries,)*]);
                #[allow(unreachable_patterns)]
                fn visit_hooks<'__s>(&'__s self, __w: &mut ::auto_hook::Walker<'_, '__s>) {
                    #[allow(unused_imports)]
                    use ::auto_hook::__private::ProbeFallback as _;
                    __w.module(::std::any::type_name::<Self>());
                    match self { #(#arms_ref)* _ => {} }
                }
                #[allow(unreachable_patterns)]
                fn visit_hooks_mut(&mut self, __w: &mut ::auto_hook::WalkerMut<'_>) {
                    #[allow(unused_imports)]
                    use ::auto_hook::__private::ProbeFallback as _;
                    match self { #(#arms_mut)* _ => {} }
                }
            }
        };
    }
}

/// Whether `#[auto_hook]` gives this enum hook points (a variant field of a type the
/// compiler decides).
pub fn is_hooked_enum(item: &ItemEnum) -> bool {
    let generics: Vec<syn::Ident> = item
        .generics
        .type_params()
        .map(|p| p.ident.clone())
        .collect();
    item.variants
        .iter()
        .any(|v| !variant_fields(v, &generics).is_empty())
}

/// The fields of `variant` that may hold hook points (types the compiler decides), named
/// `Variant` (one unnamed field), `Variant.0`, `Variant.1` or `Variant.field`.
fn variant_fields(variant: &syn::Variant, generics: &[syn::Ident]) -> Vec<VariantField> {
    let single = matches!(&variant.fields, Fields::Unnamed(u) if u.unnamed.len() == 1);
    variant
        .fields
        .iter()
        .enumerate()
        .filter(|(_, f)| matches!(classify(&f.ty, false, generics), Shape::Probe))
        .map(|(i, f)| {
            let v = variant.ident.to_string();
            let (segment, member) = match &f.ident {
                Some(ident) => (format!("{v}.{ident}"), quote!(#ident)),
                None if single => (v, quote!(0)),
                None => {
                    let index = syn::Index::from(i);
                    (format!("{v}.{i}"), quote!(#index))
                }
            };
            VariantField {
                segment,
                binding: format_ident!("__auto_hook_v{}", i),
                member,
                ty: f.ty.clone(),
            }
        })
        .collect()
}
