//! One module file of a dependency → the hooked source text the caller includes.

use crate::cfg::CfgFix;
use crate::fix::PathFix;
use crate::{Dependency, Error};
use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use std::path::Path;
use syn::visit_mut::VisitMut;
use syn::{AttrStyle, Attribute, Ident, Item};

/// The module path of a file under `src/` (`models/qwen2.rs` → `["models", "qwen2"]`,
/// `models/whisper/mod.rs` → `["models", "whisper"]`, `lib.rs` → `[]`).
pub(crate) fn module_path(file: &str) -> Vec<String> {
    let file = file.trim_start_matches("./").trim_end_matches(".rs");
    let mut segs: Vec<String> = file.split('/').map(str::to_owned).collect();
    if matches!(
        segs.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        segs.pop();
    }
    segs
}

/// Reads `file` of `dep`, hooks its structs and impls and returns the source of
/// `pub mod <name> { .. }` with its paths fixed for the calling package.
pub(crate) fn hook_file(dep: &Dependency, file: &str, name: &str) -> Result<String, Error> {
    let (path, mut ast) = load(dep, file)?;
    // every hooked struct of the file is known before any literal of one is rewritten
    auto_hook_internals::register_structs(&ast.items);
    let mut errors = Vec::new();
    hook_items(&mut ast.items, &mut errors);
    if let Some(line) = errors.first().map(|(line, _)| *line) {
        let message = errors
            .iter()
            .map(|(line, msg)| format!("line {line}: {msg}"))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(Error::Rewrite {
            file: path,
            line,
            message,
        });
    }
    Ok(print(dep, file, name, ast, "hooked by auto_hook_build"))
}

/// The module-or-data decision of every struct of `file`, in source order.
pub(crate) fn struct_report(
    dep: &Dependency,
    file: &str,
) -> Result<Vec<crate::StructDecision>, Error> {
    let (_, ast) = load(dep, file)?;
    auto_hook_internals::register_structs(&ast.items);
    Ok(auto_hook_internals::decisions(&ast.items)
        .into_iter()
        .map(|(ident, d)| crate::StructDecision {
            name: ident.to_string(),
            module: d.module,
            reason: d.reason,
        })
        .collect())
}

/// [`hook_file`] without the hooks: only the path and feature fixes.
pub(crate) fn fixed_file(dep: &Dependency, file: &str, name: &str) -> Result<String, Error> {
    let (_, ast) = load(dep, file)?;
    Ok(print(dep, file, name, ast, "with its paths fixed"))
}

fn print(dep: &Dependency, file: &str, name: &str, ast: syn::File, what: &str) -> String {
    let module = wrap(dep, file, name, ast, what);
    let header = format!(
        "// Generated from {} {} src/{file}, {what}: do not edit.\n",
        dep.package, dep.version
    );
    header + &prettyplease::unparse(&module)
}

/// Reads and parses `file` of `dep` and applies the path fixes.
fn load(dep: &Dependency, file: &str) -> Result<(std::path::PathBuf, syn::File), Error> {
    let path = dep.src_dir.join(file);
    if !path.is_file() {
        return Err(Error::FileNotFound {
            crate_name: dep.package.clone(),
            path: file.to_owned(),
            looked_at: path,
        });
    }
    let mut ast = read_parsed(&path)?;
    let dir = module_path(file)
        .iter()
        .fold(dep.src_dir.clone(), |dir, seg| dir.join(seg));
    inline_file_modules(&dir, &mut ast.items)?;
    fix_paths(dep, file, &path, &mut ast)?;
    Ok((path, ast))
}

/// Reads and parses one source file.
fn read_parsed(path: &Path) -> Result<syn::File, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    syn::parse_file(&text).map_err(|e| {
        let start = e.span().start();
        Error::Parse {
            file: path.to_path_buf(),
            line: start.line,
            column: start.column + 1,
            message: e.to_string(),
        }
    })
}

/// `mod sub;` whose file is in the dependency (`dir/sub.rs` or `dir/sub/mod.rs`, `dir`
/// being the folder of the including module) becomes `mod sub { .. }` with that file's
/// items, recursively, before any fix: a directory module (`models/clip/mod.rs`) is
/// hooked whole, and `super::` inside it keeps naming the hooked parent.
fn inline_file_modules(dir: &Path, items: &mut [Item]) -> Result<(), Error> {
    for item in items {
        let Item::Mod(m) = item else { continue };
        let has_path_attr = m.attrs.iter().any(|a| a.path().is_ident("path"));
        if m.content.is_some() || has_path_attr {
            continue;
        }
        let name = m.ident.to_string();
        let Some(file) = [
            dir.join(format!("{name}.rs")),
            dir.join(&name).join("mod.rs"),
        ]
        .into_iter()
        .find(|f| f.is_file()) else {
            continue;
        };
        let mut sub = read_parsed(&file)?;
        inline_file_modules(&dir.join(&name), &mut sub.items)?;
        m.attrs
            .extend(sub.attrs.into_iter().filter(|a| a.path().is_ident("allow")));
        m.content = Some((Default::default(), sub.items));
        m.semi = None;
    }
    Ok(())
}

/// Applies the feature, path and out-of-line module fixes to the whole file.
pub(crate) fn fix_paths(
    dep: &Dependency,
    file: &str,
    path: &Path,
    ast: &mut syn::File,
) -> Result<(), Error> {
    CfgFix::new(&dep.features).visit_file_mut(ast);
    let module = module_path(file);
    let mut fix = PathFix {
        lib: &dep.lib_name,
        module: &module,
        renames: &dep.renames,
        depth: 0,
        missing: Default::default(),
    };
    fix.visit_file_mut(ast);
    if !fix.missing.is_empty() {
        return Err(Error::MissingDependency {
            files: vec![path.to_path_buf()],
            missing: fix.missing.into_iter().collect(),
        });
    }
    reexport_file_modules(&mut ast.items, &dep.lib_name, &module);
    Ok(())
}

/// `mod sub;` left out of line (a `#[path]` one, or its file missing) cannot be
/// included from another folder: it becomes a re-export of the dependency's own
/// (unhooked) module.
fn reexport_file_modules(items: &mut [Item], lib: &str, module: &[String]) {
    for item in items {
        let Item::Mod(m) = item else { continue };
        if m.content.is_some() {
            continue;
        }
        let segs = std::iter::once(lib)
            .chain(module.iter().map(String::as_str))
            .map(|s| Ident::new(s, Span::call_site()));
        let (attrs, vis, ident) = (&m.attrs, &m.vis, &m.ident);
        *item = syn::parse_quote!(#(#attrs)* #vis use #(::#segs)*::#ident;);
    }
}

/// Rewrites every struct, impl and free function (also inside inline modules) as
/// `#[auto_hook]` does, collecting `(line, message)` for each refusal. Functions are
/// rewritten for the struct literals they hold (`fn linear(..) -> Linear { Linear { .. } }`).
fn hook_items(items: &mut Vec<Item>, errors: &mut Vec<(usize, String)>) {
    let mut out = Vec::with_capacity(items.len());
    for item in std::mem::take(items) {
        match item {
            Item::Struct(_) | Item::Enum(_) | Item::Impl(_) | Item::Fn(_)
                if !has_auto_hook(&item) =>
            {
                let line = item_line(&item);
                let tokens =
                    auto_hook_internals::attribute(TokenStream::new(), item.to_token_stream());
                match syn::parse2::<syn::File>(tokens) {
                    Ok(file) => {
                        for expanded in file.items {
                            match compile_error(&expanded) {
                                Some(msg) => errors.push((line, msg)),
                                None => out.push(expanded),
                            }
                        }
                    }
                    Err(e) => errors.push((line, format!("rewrite output does not parse: {e}"))),
                }
            }
            Item::Mod(mut m) => {
                if let Some((_, inner)) = &mut m.content {
                    hook_items(inner, errors);
                }
                out.push(Item::Mod(m));
            }
            other => out.push(other),
        }
    }
    *items = out;
}

fn has_auto_hook(item: &Item) -> bool {
    let attrs = match item {
        Item::Struct(s) => &s.attrs,
        Item::Enum(e) => &e.attrs,
        Item::Impl(i) => &i.attrs,
        Item::Fn(f) => &f.attrs,
        _ => return false,
    };
    attrs.iter().any(|a| {
        a.path()
            .segments
            .last()
            .is_some_and(|s| s.ident == "auto_hook")
    })
}

fn item_line(item: &Item) -> usize {
    item.to_token_stream()
        .into_iter()
        .next()
        .map(|t| t.span().start().line)
        .unwrap_or(0)
}

/// The message of a `compile_error!` item (how the rewrite reports a refusal).
fn compile_error(item: &Item) -> Option<String> {
    let Item::Macro(m) = item else { return None };
    let last = m.mac.path.segments.last()?;
    if last.ident != "compile_error" {
        return None;
    }
    let lit: syn::LitStr = syn::parse2(m.mac.tokens.clone()).ok()?;
    Some(lit.value())
}

/// `#[allow(..)] pub mod name { #![inner attrs] items }`: the lints of the dependency's
/// code are not the caller's to fix.
fn wrap(dep: &Dependency, file: &str, name: &str, ast: syn::File, what: &str) -> syn::File {
    let ident = Ident::new(name, Span::call_site());
    let (inner, outer): (Vec<Attribute>, Vec<Attribute>) = ast
        .attrs
        .into_iter()
        .partition(|a| matches!(a.style, AttrStyle::Inner(_)));
    let doc = format!(" `{}` {} `src/{file}`, {what}.", dep.package, dep.version);
    let items = ast.items;
    let module: Item = syn::parse_quote! {
        #[doc = #doc]
        #[allow(dead_code, unused, missing_docs, non_snake_case, unexpected_cfgs, clippy::all, rustdoc::all)]
        #(#outer)*
        pub mod #ident {
            #(#inner)*
            #(#items)*
        }
    };
    syn::File {
        shebang: None,
        frontmatter: None,
        attrs: Vec::new(),
        items: vec![module],
    }
}
