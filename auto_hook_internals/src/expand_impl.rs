//! Code generation for annotated impl blocks: constructors and forwards.

use crate::attr::{strip, MethodAttrs};
use crate::rewrite::Rewriter;
use darling::FromAttributes;
use proc_macro2::TokenStream;
use quote::quote;
use syn::visit_mut::VisitMut;
use syn::{FnArg, ImplItem, ImplItemFn, ItemImpl, ReturnType, Type};

pub fn expand_impl(mut item: ItemImpl, errors: &mut darling::error::Accumulator) -> TokenStream {
    let self_ident = match &*item.self_ty {
        Type::Path(p) => p.path.segments.last().map(|s| s.ident.clone()),
        _ => None,
    };
    let mut kinds: Vec<u8> = Vec::new();
    for impl_item in item.items.iter_mut() {
        let ImplItem::Fn(method) = impl_item else {
            continue;
        };
        let attrs = errors
            .handle(MethodAttrs::from_attributes(&method.attrs))
            .unwrap_or_default();
        strip(&mut method.attrs);
        if attrs.forward && attrs.skip {
            let msg = "`forward` and `skip` contradict each other";
            errors.push(darling::Error::custom(msg).with_span(&method.sig.ident));
        }
        let memo = crate::memo::find(method);
        Rewriter {
            self_ident: self_ident.as_ref(),
            aliases: Vec::new(),
        }
        .visit_block_mut(&mut method.block);
        if let Some(memo) = &memo {
            crate::memo::wrap(method, memo);
        }
        let named_forward = matches!(
            method.sig.ident.to_string().as_str(),
            "forward" | "forward_t"
        );
        let by_ref = has_ref_receiver(method);
        if attrs.forward && !by_ref {
            let msg = "#[auto_hook(forward)] needs a method that takes `&self` or `&mut self`";
            errors.push(darling::Error::custom(msg).with_span(&method.sig.ident));
        } else if (attrs.forward || named_forward) && by_ref && !attrs.skip {
            wrap_forward(method, errors);
            let kind = forward_kind(item.trait_.as_ref().map(|t| &t.0), &method.sig.ident);
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
    }
    let markers = kinds
        .iter()
        .filter_map(|k| marker_impl(&item, quote!(::auto_hook::__private::HasForward<#k>)));
    // an inherent forward (not candle's `Module`): `auto_hook(model)` keeps its points
    let inner_kinds = if item.trait_.is_none() {
        kinds.as_slice()
    } else {
        &[]
    };
    let wrappable = inner_kinds.iter().filter_map(|k| {
        marker_impl(
            &item,
            quote!(::auto_hook::AutoHook<::auto_hook::InnerPoints<#k>>),
        )
    });
    quote!(#item #(#markers)* #(#wrappable)*)
}

/// How many `HasForward<K>` slots a struct's own-point probe asks about.
pub const FORWARD_KINDS: u8 = 16;

/// The slot of a forward: a hash of the trait's name (none for an inherent method) and
/// the method's, so two impl blocks of one type (`impl Module`, an inherent
/// `forward_t`) implement different marker traits.
fn forward_kind(trait_path: Option<&syn::Path>, method: &syn::Ident) -> u8 {
    let trait_name = trait_path
        .and_then(|p| p.segments.last())
        .map(|s| s.ident.to_string())
        .unwrap_or_default();
    let text = format!("{trait_name}::{method}");
    let hash = text.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    (hash % u32::from(FORWARD_KINDS)) as u8
}

/// `impl #marker for Self {}` with the block's generics; None for a blanket impl
/// (`impl<T> X for T`), which is no struct's own forward. The markers:
/// `HasForward<K>` tells the struct's expansion that a forward fires its own point;
/// `AutoHook<InnerPoints<K>>` makes `auto_hook(model)` of a type whose forward is
/// inherent keep its points (one slot per forward, so two inherent forwards in separate
/// impl blocks do not collide).
fn marker_impl(item: &ItemImpl, marker: TokenStream) -> Option<TokenStream> {
    if !is_struct_impl(item) {
        return None;
    }
    let self_ty = &item.self_ty;
    let (impl_generics, _, where_clause) = item.generics.split_for_impl();
    Some(quote! {
        #[automatically_derived]
        #[doc(hidden)]
        impl #impl_generics #marker for #self_ty #where_clause {}
    })
}

/// An impl for one named type (not a blanket `impl<T> X for T`, not `<T as Tr>::X`).
fn is_struct_impl(item: &ItemImpl) -> bool {
    let Type::Path(path) = &*item.self_ty else {
        return false;
    };
    let Some(first) = path.path.segments.first() else {
        return false;
    };
    path.qself.is_none() && !item.generics.type_params().any(|p| p.ident == first.ident)
}

/// `#[auto_hook]` on a free function: its struct literals and parameter uses are
/// rewritten like those of an annotated impl block.
pub fn expand_fn(mut item: syn::ItemFn) -> TokenStream {
    Rewriter {
        self_ident: None,
        aliases: Vec::new(),
    }
    .visit_block_mut(&mut item.block);
    quote!(#item)
}

fn has_ref_receiver(method: &ImplItemFn) -> bool {
    match method.sig.inputs.first() {
        Some(FnArg::Receiver(r)) => matches!(r.kind, syn::ReceiverKind::Reference(..)),
        _ => false,
    }
}

/// `{ body }` becomes: run the body, then pass its output through the own hook point.
fn wrap_forward(method: &mut ImplItemFn, errors: &mut darling::error::Accumulator) {
    let ReturnType::Type(_, ret) = &method.sig.output else {
        let msg = "a hooked forward must return a `Result` (of a Tensor, or of a tuple that starts with one)";
        errors.push(darling::Error::custom(msg).with_span(&method.sig.ident));
        return;
    };
    if method.sig.asyncness.is_some() {
        errors.push(
            darling::Error::custom("a hooked forward cannot be async").with_span(&method.sig.ident),
        );
        return;
    }
    let Some(FnArg::Receiver(receiver)) = method.sig.inputs.first() else {
        return;
    };
    // The receiver's own `self` token, so the generated call resolves it under the
    // same hygiene as the user's method (which may come from a macro_rules! macro).
    let self_token = receiver.self_token;
    let block = &method.block;
    let run = run_body(quote!(__auto_hook_out), quote!(#ret), block);
    method.block = syn::parse_quote!({
        #run
        ::auto_hook::__private::fire_output(
            {
                #[allow(unused_imports)]
                use ::auto_hook::__private::NoOwnHookPoint as _;
                <::auto_hook::__private::OwnProbe<Self>>::own_hook_point(#self_token)
            },
            __auto_hook_out,
        )
    });
}

/// `let <var>: <ret> = (|| -> <ret> { body })();`: runs a method's body in a closure so
/// its `return`s and `?`s end there and code can follow it (the forward's own point,
/// putting a memo back).
pub(crate) fn run_body(var: TokenStream, ret: TokenStream, block: &syn::Block) -> TokenStream {
    quote! {
        #[allow(clippy::redundant_closure_call)]
        let #var: #ret = (|| -> #ret #block)();
    }
}
