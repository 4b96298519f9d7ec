//! Path fixes: code taken out of its crate names that crate, its parent modules and its
//! dependencies the way the calling package sees them.
//!
//! - `crate::a::b` becomes `::lib::a::b` (`lib` is the calling package's name for the
//!   dependency);
//! - `super::x` leaving the file becomes the absolute path of the parent module in the
//!   dependency (`super::with_tracing` in `models/qwen2.rs` is
//!   `::candle_transformers::models::with_tracing`); `super` inside an inline `mod` of
//!   the file stays;
//! - a dependency of the dependency under its own name (`candle::Tensor`, where
//!   candle-transformers renames candle-core) becomes the calling package's name for the
//!   same package (`::candle_core::Tensor`);
//! - `pub(in crate::..)` becomes `pub(crate)`.
//!
//! Macro bodies and attribute arguments (`#[derive(serde::Deserialize)]`) get the same
//! fixes on their tokens.

use proc_macro2::{Group, Ident, Punct, Spacing, Span, TokenStream, TokenTree};
use std::collections::BTreeMap;
use syn::visit_mut::{self, VisitMut};
use syn::{Path, PathSegment, UseTree, Visibility};

pub(crate) struct PathFix<'a> {
    /// The calling package's name for the dependency.
    pub lib: &'a str,
    /// The file's module path inside the dependency (`["models", "qwen2"]`).
    pub module: &'a [String],
    /// The dependency's names for its dependencies → the caller's name (or none) and package.
    pub renames: &'a BTreeMap<String, (Option<String>, String)>,
    /// How many inline `mod` blocks of the file we are in.
    pub depth: usize,
    /// Names used by the file that the calling package lacks, with their package.
    pub missing: BTreeMap<String, String>,
}

impl PathFix<'_> {
    /// The absolute replacement (without the leading `::`) for a path starting with
    /// `first` followed by `supers` more `super`s, or `None` to keep it.
    fn replacement(&mut self, first: &str, supers: usize) -> Option<Vec<String>> {
        match first {
            "crate" => Some(vec![self.lib.to_owned()]),
            "super" if supers > self.depth => {
                let up = supers - self.depth;
                let keep = self.module.len().checked_sub(up)?;
                let mut segs = vec![self.lib.to_owned()];
                segs.extend(self.module[..keep].iter().cloned());
                Some(segs)
            }
            name => match self.renames.get(name)? {
                (Some(ours), _) => Some(vec![ours.clone()]),
                (None, package) => {
                    self.missing.insert(name.to_owned(), package.clone());
                    None
                }
            },
        }
    }

    fn fix_path(&mut self, path: &mut Path) {
        if path.leading_colon.is_some() || path.segments.len() < 2 {
            return;
        }
        let first = path.segments[0].ident.to_string();
        let supers = path
            .segments
            .iter()
            .take_while(|s| s.ident == "super")
            .count();
        let Some(prefix) = self.replacement(&first, supers) else {
            return;
        };
        let drop = if first == "super" { supers } else { 1 };
        let rest: Vec<PathSegment> = path.segments.iter().skip(drop).cloned().collect();
        let span = path.segments[0].ident.span();
        path.segments = prefix
            .iter()
            .map(|s| PathSegment::from(Ident::new(s, span)))
            .chain(rest)
            .collect();
        path.leading_colon = Some(Default::default());
    }

    fn fix_use(&mut self, leading: &mut Option<syn::Token![::]>, tree: &mut UseTree) {
        if leading.is_some() {
            return;
        }
        let (first, supers) = use_prefix(tree);
        let Some(first) = first else { return };
        let Some(prefix) = self.replacement(&first, supers) else {
            return;
        };
        let drop = if first == "super" { supers } else { 1 };
        let mut rest = tree.clone();
        for _ in 0..drop {
            rest = match rest {
                UseTree::Path(p) => *p.tree,
                other => return self.rename_leaf(other, tree, &prefix),
            };
        }
        *tree = prefix.iter().rev().fold(rest, |inner, seg| {
            UseTree::Path(syn::UsePath {
                ident: Ident::new(seg, Span::call_site()),
                colon2_token: Default::default(),
                tree: Box::new(inner),
            })
        });
        *leading = Some(Default::default());
    }

    /// `use candle;` / `use candle as c;`: the crate itself imported by name.
    fn rename_leaf(&mut self, leaf: UseTree, tree: &mut UseTree, prefix: &[String]) {
        if prefix.len() != 1 {
            return;
        }
        let ident = Ident::new(&prefix[0], Span::call_site());
        *tree = match leaf {
            UseTree::Name(n) => UseTree::Rename(syn::UseRename {
                ident,
                as_token: Default::default(),
                rename: n.ident,
            }),
            UseTree::Rename(r) => UseTree::Rename(syn::UseRename { ident, ..r }),
            other => other,
        };
    }

    /// The same fixes on raw tokens (macro bodies, attribute arguments).
    pub fn fix_tokens(&mut self, tokens: TokenStream) -> TokenStream {
        let tts: Vec<TokenTree> = tokens.into_iter().collect();
        let mut out = Vec::with_capacity(tts.len());
        let mut i = 0;
        while i < tts.len() {
            if let TokenTree::Group(g) = &tts[i] {
                let mut fixed = Group::new(g.delimiter(), self.fix_tokens(g.stream()));
                fixed.set_span(g.span());
                out.push(TokenTree::Group(fixed));
                i += 1;
                continue;
            }
            if let Some((prefix, consumed)) = self.token_path_head(&tts, i) {
                out.extend(absolute_path_tokens(&prefix));
                i += consumed;
                continue;
            }
            out.push(tts[i].clone());
            i += 1;
        }
        out.into_iter().collect()
    }

    /// At `tts[i]`, a path head to replace: the replacement and how many tokens it eats
    /// (the head idents and their `::`, not the separator before the rest).
    fn token_path_head(&mut self, tts: &[TokenTree], i: usize) -> Option<(Vec<String>, usize)> {
        let TokenTree::Ident(first) = &tts[i] else {
            return None;
        };
        if continues_path(tts, i) || !is_sep(tts, i + 1) {
            return None;
        }
        let first = first.to_string();
        let mut supers = 0;
        if first == "super" {
            while matches!(tts.get(i + supers * 3), Some(TokenTree::Ident(s)) if s == "super")
                && is_sep(tts, i + supers * 3 + 1)
            {
                supers += 1;
            }
        }
        let prefix = self.replacement(&first, supers)?;
        let eaten = if first == "super" { supers * 3 - 2 } else { 1 };
        Some((prefix, eaten))
    }
}

impl VisitMut for PathFix<'_> {
    fn visit_path_mut(&mut self, path: &mut Path) {
        self.fix_path(path);
        visit_mut::visit_path_mut(self, path);
    }

    fn visit_item_use_mut(&mut self, item: &mut syn::ItemUse) {
        self.fix_use(&mut item.leading_colon, &mut item.tree);
    }

    fn visit_visibility_mut(&mut self, vis: &mut Visibility) {
        if let Visibility::Restricted(r) = vis {
            let first = r.path.segments.first().map(|s| s.ident.to_string());
            if r.in_token.is_some() && first.as_deref() == Some("crate") {
                r.in_token = None;
                *r.path = Path::from(Ident::new("crate", Span::call_site()));
            }
        }
    }

    fn visit_item_mod_mut(&mut self, item: &mut syn::ItemMod) {
        self.depth += 1;
        visit_mut::visit_item_mod_mut(self, item);
        self.depth -= 1;
    }

    fn visit_macro_mut(&mut self, mac: &mut syn::Macro) {
        visit_mut::visit_macro_mut(self, mac);
        mac.tokens = self.fix_tokens(std::mem::take(&mut mac.tokens));
    }

    fn visit_meta_list_mut(&mut self, list: &mut syn::MetaList) {
        visit_mut::visit_meta_list_mut(self, list);
        list.tokens = self.fix_tokens(std::mem::take(&mut list.tokens));
    }
}

/// The first name of a `use` tree and how many leading `super`s it has.
fn use_prefix(tree: &UseTree) -> (Option<String>, usize) {
    let mut supers = 0;
    let mut t = tree;
    let first = match t {
        UseTree::Path(p) => Some(p.ident.to_string()),
        UseTree::Name(n) => Some(n.ident.to_string()),
        UseTree::Rename(r) => Some(r.ident.to_string()),
        _ => None,
    };
    while let UseTree::Path(p) = t {
        if p.ident != "super" {
            break;
        }
        supers += 1;
        t = &p.tree;
    }
    (first, supers)
}

fn is_colon(tt: Option<&TokenTree>) -> bool {
    matches!(tt, Some(TokenTree::Punct(p)) if p.as_char() == ':')
}

/// Whether `tts[i]`, `tts[i + 1]` is a `::`.
fn is_sep(tts: &[TokenTree], i: usize) -> bool {
    is_colon(tts.get(i)) && is_colon(tts.get(i + 1))
}

/// Whether the ident at `i` is a later segment of a path or already absolute
/// (`a::here`, `::here`, `$crate`, `x.here`).
fn continues_path(tts: &[TokenTree], i: usize) -> bool {
    let prev = |k: usize| i.checked_sub(k).and_then(|j| tts.get(j));
    match prev(1) {
        Some(TokenTree::Punct(p)) if p.as_char() == '$' || p.as_char() == '.' => true,
        Some(TokenTree::Punct(p)) if p.as_char() == ':' => is_colon(prev(2)),
        _ => false,
    }
}

/// `:: a :: b` (the `::` before the rest of the path stays in the input).
fn absolute_path_tokens(prefix: &[String]) -> Vec<TokenTree> {
    let mut out = Vec::new();
    for seg in prefix {
        out.push(TokenTree::Punct(Punct::new(':', Spacing::Joint)));
        out.push(TokenTree::Punct(Punct::new(':', Spacing::Alone)));
        out.push(TokenTree::Ident(Ident::new(seg, Span::call_site())));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn fixed(code: &str) -> (String, BTreeMap<String, String>) {
        let module = vec!["models".to_owned(), "qwen2".to_owned()];
        let mut renames = BTreeMap::new();
        renames.insert(
            "candle".into(),
            (Some("candle_core".into()), "candle-core".into()),
        );
        renames.insert("serde".into(), (None, "serde".into()));
        let mut fix = PathFix {
            lib: "ct",
            module: &module,
            renames: &renames,
            depth: 0,
            missing: BTreeMap::new(),
        };
        let mut file: syn::File = syn::parse_str(code).unwrap();
        fix.visit_file_mut(&mut file);
        (quote!(#file).to_string().replace(' ', ""), fix.missing)
    }

    #[test]
    fn crate_and_super_paths_name_the_dependency() {
        let (out, _) = fixed(
            "use crate::models::with_tracing::{linear, Linear};
             use super::with_tracing::RmsNorm;
             fn f(c: &crate::utils::Cache) -> super::llama::Config { crate::utils::repeat_kv(x) }
             mod inner { use super::Local; fn g() -> super::super::phi::X { todo!() } }",
        );
        assert!(
            out.contains("use::ct::models::with_tracing::{linear,Linear};"),
            "{out}"
        );
        assert!(
            out.contains("use::ct::models::with_tracing::RmsNorm;"),
            "{out}"
        );
        assert!(out.contains("c:&::ct::utils::Cache"), "{out}");
        assert!(out.contains("->::ct::models::llama::Config"), "{out}");
        assert!(out.contains("::ct::utils::repeat_kv(x)"), "{out}");
        assert!(out.contains("usesuper::Local;"), "{out}");
        assert!(out.contains("->::ct::models::phi::X"), "{out}");
    }

    #[test]
    fn renamed_crates_and_macro_tokens_are_fixed() {
        let (out, missing) = fixed(
            "use candle::{Tensor, D};
             use candle;
             #[derive(Debug, serde::Deserialize)]
             struct C { t: candle::DType }
             fn f() { candle::bail!(\"x\"); vec![crate::a::b(), $crate::c(), x.candle] }",
        );
        assert!(out.contains("use::candle_core::{Tensor,D};"), "{out}");
        assert!(out.contains("usecandle_coreascandle;"), "{out}");
        assert!(out.contains("t:::candle_core::DType"), "{out}");
        assert!(out.contains("::candle_core::bail!"), "{out}");
        assert!(
            out.contains("vec![::ct::a::b(),$crate::c(),x.candle]"),
            "{out}"
        );
        assert!(out.contains("serde::Deserialize"), "{out}");
        assert_eq!(missing.get("serde").map(String::as_str), Some("serde"));
    }

    #[test]
    fn crate_restricted_visibility_stays_valid() {
        let (out, _) = fixed("pub(in crate::models) fn f() {} pub(crate) fn g() {}");
        assert!(out.contains("pub(crate)fnf()"), "{out}");
        assert!(out.contains("pub(crate)fng()"), "{out}");
    }
}
