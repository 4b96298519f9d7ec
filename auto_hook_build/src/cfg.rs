//! What a dependency's conditional code and docs mean once the code lives in the caller.
//!
//! `#[cfg(feature = "x")]` in a dependency means the dependency's feature: each
//! `feature = "x"` becomes `all()` (enabled on the dependency) or `any()` (not), and an
//! item, impl item or field whose condition is then known false is dropped (it was not
//! compiled in the dependency either, and may name optional crates). Code fences in doc
//! comments become ```` ```text ```` so the caller's doctests do not run the dependency's
//! examples.

use proc_macro2::{Delimiter, Group, Ident, Span, TokenStream, TokenTree};
use syn::visit_mut::{self, VisitMut};
use syn::{Attribute, Expr, Lit, Meta};

pub(crate) struct CfgFix<'a> {
    pub features: &'a [String],
    in_fence: bool,
}

impl<'a> CfgFix<'a> {
    pub fn new(features: &'a [String]) -> Self {
        CfgFix {
            features,
            in_fence: false,
        }
    }

    /// `feature = "x"` → `all()` / `any()`.
    fn resolve(&self, tokens: TokenStream) -> TokenStream {
        let tts: Vec<TokenTree> = tokens.into_iter().collect();
        let mut out = Vec::new();
        let mut i = 0;
        while i < tts.len() {
            if let Some(on) = self.feature_at(&tts, i) {
                let name = if on { "all" } else { "any" };
                out.push(TokenTree::Ident(Ident::new(name, Span::call_site())));
                let empty = Group::new(Delimiter::Parenthesis, TokenStream::new());
                out.push(TokenTree::Group(empty));
                i += 3;
                continue;
            }
            out.push(match &tts[i] {
                TokenTree::Group(g) => {
                    TokenTree::Group(Group::new(g.delimiter(), self.resolve(g.stream())))
                }
                other => other.clone(),
            });
            i += 1;
        }
        out.into_iter().collect()
    }

    /// At `tts[i]`: `feature = "name"`, and whether the dependency has that feature.
    fn feature_at(&self, tts: &[TokenTree], i: usize) -> Option<bool> {
        match (tts.get(i), tts.get(i + 1), tts.get(i + 2)) {
            (
                Some(TokenTree::Ident(f)),
                Some(TokenTree::Punct(eq)),
                Some(TokenTree::Literal(l)),
            ) if f == "feature" && eq.as_char() == '=' => {
                let name = l.to_string();
                let name = name.trim_matches('"');
                Some(self.features.iter().any(|f| f == name))
            }
            _ => None,
        }
    }

    /// Resolves the `cfg` attributes in `attrs`: `false` when one is known false (drop
    /// the item); known-true ones are removed.
    fn keep(&self, attrs: &mut Vec<Attribute>) -> bool {
        let mut keep = true;
        attrs.retain_mut(|attr| {
            let Meta::List(list) = &mut attr.meta else {
                return true;
            };
            if !list.path.is_ident("cfg") {
                return true;
            }
            list.tokens = self.resolve(std::mem::take(&mut list.tokens));
            match eval(list.tokens.clone()) {
                Some(true) => false,
                Some(false) => {
                    keep = false;
                    true
                }
                None => true,
            }
        });
        keep
    }

    fn fence(&mut self, attr: &mut Attribute) {
        let Meta::NameValue(nv) = &mut attr.meta else {
            return;
        };
        let Expr::Lit(syn::ExprLit {
            lit: Lit::Str(s), ..
        }) = &mut nv.value
        else {
            return;
        };
        if !nv.path.is_ident("doc") || !s.value().contains("```") {
            return;
        }
        let mut lines = Vec::new();
        for line in s.value().split('\n') {
            let trimmed = line.trim_start();
            if let Some(rest) = trimmed.strip_prefix("```") {
                let indent = &line[..line.len() - trimmed.len()];
                let opening = !self.in_fence && !rest.starts_with('`');
                self.in_fence = opening;
                lines.push(if opening {
                    format!("{indent}```text")
                } else {
                    line.to_owned()
                });
            } else {
                lines.push(line.to_owned());
            }
        }
        *s = syn::LitStr::new(&lines.join("\n"), s.span());
    }
}

/// The value of a cfg predicate made only of `all(..)`, `any(..)` and `not(..)`.
fn eval(tokens: TokenStream) -> Option<bool> {
    let tts: Vec<TokenTree> = tokens.into_iter().collect();
    match tts.as_slice() {
        [TokenTree::Ident(op), TokenTree::Group(g)] if g.delimiter() == Delimiter::Parenthesis => {
            let args = split_commas(g.stream());
            let values: Option<Vec<bool>> = args.into_iter().map(eval).collect();
            let values = values?;
            match op.to_string().as_str() {
                "all" => Some(values.iter().all(|v| *v)),
                "any" => Some(values.iter().any(|v| *v)),
                "not" if values.len() == 1 => Some(!values[0]),
                _ => None,
            }
        }
        _ => None,
    }
}

fn split_commas(tokens: TokenStream) -> Vec<TokenStream> {
    let mut parts = vec![Vec::new()];
    for tt in tokens {
        match &tt {
            TokenTree::Punct(p) if p.as_char() == ',' => parts.push(Vec::new()),
            _ => parts.last_mut().expect("never empty").push(tt),
        }
    }
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .map(|p| p.into_iter().collect())
        .collect()
}

fn item_attrs(item: &mut syn::Item) -> Option<&mut Vec<Attribute>> {
    use syn::Item::*;
    Some(match item {
        Const(i) => &mut i.attrs,
        Enum(i) => &mut i.attrs,
        ExternCrate(i) => &mut i.attrs,
        Fn(i) => &mut i.attrs,
        ForeignMod(i) => &mut i.attrs,
        Impl(i) => &mut i.attrs,
        Macro(i) => &mut i.attrs,
        Mod(i) => &mut i.attrs,
        Static(i) => &mut i.attrs,
        Struct(i) => &mut i.attrs,
        Trait(i) => &mut i.attrs,
        TraitAlias(i) => &mut i.attrs,
        Type(i) => &mut i.attrs,
        Union(i) => &mut i.attrs,
        Use(i) => &mut i.attrs,
        _ => return None,
    })
}

fn impl_item_attrs(item: &mut syn::ImplItem) -> Option<&mut Vec<Attribute>> {
    use syn::ImplItem::*;
    Some(match item {
        Const(i) => &mut i.attrs,
        Fn(i) => &mut i.attrs,
        Type(i) => &mut i.attrs,
        Macro(i) => &mut i.attrs,
        _ => return None,
    })
}

impl CfgFix<'_> {
    pub fn prune(&mut self, items: &mut Vec<syn::Item>) {
        items.retain_mut(|item| item_attrs(item).is_none_or(|a| self.keep(a)));
    }
}

impl VisitMut for CfgFix<'_> {
    fn visit_file_mut(&mut self, file: &mut syn::File) {
        self.prune(&mut file.items);
        visit_mut::visit_file_mut(self, file);
    }

    fn visit_item_mod_mut(&mut self, item: &mut syn::ItemMod) {
        if let Some((_, items)) = &mut item.content {
            self.prune(items);
        }
        visit_mut::visit_item_mod_mut(self, item);
    }

    fn visit_item_impl_mut(&mut self, item: &mut syn::ItemImpl) {
        let this = &*self;
        item.items
            .retain_mut(|i| impl_item_attrs(i).is_none_or(|a| this.keep(a)));
        visit_mut::visit_item_impl_mut(self, item);
    }

    fn visit_fields_named_mut(&mut self, fields: &mut syn::FieldsNamed) {
        let kept = std::mem::take(&mut fields.named)
            .into_pairs()
            .map(syn::punctuated::Pair::into_value)
            .filter_map(|mut f| self.keep(&mut f.attrs).then_some(f));
        fields.named = kept.collect();
        visit_mut::visit_fields_named_mut(self, fields);
    }

    fn visit_attribute_mut(&mut self, attr: &mut Attribute) {
        if let Meta::List(list) = &mut attr.meta {
            if list.path.is_ident("cfg") || list.path.is_ident("cfg_attr") {
                list.tokens = self.resolve(std::mem::take(&mut list.tokens));
            }
        }
        self.fence(attr);
    }

    fn visit_macro_mut(&mut self, mac: &mut syn::Macro) {
        if mac.path.is_ident("cfg") {
            mac.tokens = self.resolve(std::mem::take(&mut mac.tokens));
        }
        visit_mut::visit_macro_mut(self, mac);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    #[test]
    fn features_of_the_dependency_decide_its_conditional_items() {
        let features = vec!["default".to_owned()];
        let mut fix = CfgFix::new(&features);
        let mut file: syn::File = syn::parse2(quote! {
            #[cfg(feature = "flash-attn")] fn flash() { candle_flash_attn::run() }
            #[cfg(not(feature = "flash-attn"))] fn flash() {}
            #[cfg(all(feature = "default", unix))] fn maybe() {}
        })
        .unwrap();
        fix.visit_file_mut(&mut file);
        let out = quote!(#file).to_string();
        assert!(!out.contains("candle_flash_attn"), "{out}");
        assert_eq!(file.items.len(), 2, "{out}");
        assert!(out.contains("cfg (all (all () , unix))"), "{out}");
    }

    #[test]
    fn doc_code_fences_become_text() {
        let features = Vec::new();
        let mut fix = CfgFix::new(&features);
        let mut file: syn::File = syn::parse_str(
            "/// Example:\n/// ```\n/// let x = 1;\n/// ```\n/// ```rust,ignore\n/// y\n/// ```\nfn f() {}",
        )
        .unwrap();
        fix.visit_file_mut(&mut file);
        let out = quote!(#file).to_string();
        assert_eq!(out.matches("```text").count(), 2, "{out}");
        assert_eq!(out.matches("```").count(), 4, "{out}");
    }
}
