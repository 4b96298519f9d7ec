//! What a user does to a copied candle-transformers file, done mechanically: fix the paths
//! that pointed into candle-transformers, then put `#[auto_hook]` on every struct and impl.
//! Shared by `build.rs` (through `#[path]`) and the [`sweep`](crate::sweep): plain text
//! processing, no parser, like a user's search-and-replace.

/// `crate::x` → `{lib}::x` and `super::x` → `{lib}::{parent}::x` (the file's parent
/// module, `models` for `src/models/qwen2.rs`): the edits any copy outside its crate needs.
/// `super::` inside an inline `mod name { .. }` of the file names the file and stays.
///
/// ```
/// let src = "use super::with_tracing::Linear;\nmod inner {\n    use super::*;\n}";
/// let out = auto_hook_ct::user_edits::fix_paths(src, "ct", "models");
/// assert_eq!(out, "use ct::models::with_tracing::Linear;\nmod inner {\n    use super::*;\n}");
/// ```
pub fn fix_paths(src: &str, lib: &str, parent: &str) -> String {
    let src = replace_path_head(src, "crate::", &format!("{lib}::"));
    let up = format!("{lib}::{parent}::");
    let mut inline = false;
    let lines: Vec<String> = src
        .lines()
        .map(|line| {
            inline = inline_mod_state(inline, line);
            if inline {
                line.to_owned()
            } else {
                replace_path_head(line, "super::", &up)
            }
        })
        .collect();
    lines.join("\n")
}

/// Whether the line after `line` is inside a top-level inline `mod name {` block
/// (opened by a column-0 `mod`/`pub mod` line ending in `{`, closed by a column-0 `}`).
fn inline_mod_state(inside: bool, line: &str) -> bool {
    if inside {
        return line != "}";
    }
    let rest = line.strip_prefix("pub ").unwrap_or(line);
    let rest = rest.strip_prefix("pub(crate) ").unwrap_or(rest);
    rest.starts_with("mod ") && line.trim_end().ends_with('{')
}

/// Replaces `head` where it starts a path (not `$crate::`, not `a_crate::`).
fn replace_path_head(src: &str, head: &str, with: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut rest = src;
    while let Some(at) = rest.find(head) {
        let before = rest[..at].chars().next_back();
        let starts_path = !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$');
        out.push_str(&rest[..at]);
        out.push_str(if starts_path { with } else { head });
        rest = &rest[at + head.len()..];
    }
    out.push_str(rest);
    out
}

/// Drops the file's inner attributes and `//!` docs (`include!` accepts neither), keeping
/// the line count so compiler messages point at the same lines as the original.
///
/// ```
/// assert_eq!(auto_hook_ct::user_edits::strip_inner("//! Docs\nfn f() {}"), "\nfn f() {}");
/// ```
pub fn strip_inner(src: &str) -> String {
    src.lines()
        .map(|l| {
            if l.starts_with("//!") || l.starts_with("#![") {
                ""
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Puts `attr` (`#[auto_hook::auto_hook]`) on its own line before every struct and impl
/// at the top level or in a top-level inline `mod` (indented by four spaces there), above
/// the item's doc comments and other attributes.
///
/// ```
/// let out = auto_hook_ct::user_edits::annotate("#[derive(Debug)]\nstruct A;", "#[x]");
/// assert_eq!(out, "#[x]\n#[derive(Debug)]\nstruct A;");
/// ```
pub fn annotate(src: &str, attr: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut inline = false;
    for line in src.lines() {
        let indent = if inline { "    " } else { "" };
        if line.strip_prefix(indent).is_some_and(is_struct_or_impl) {
            let mut at = out.len();
            while at > 0 && is_attached(&out[at - 1], indent) {
                at -= 1;
            }
            out.insert(at, format!("{indent}{attr}"));
        }
        inline = inline_mod_state(inline, line);
        out.push(line.to_owned());
    }
    out.join("\n")
}

fn is_struct_or_impl(line: &str) -> bool {
    let rest = match line.strip_prefix("pub") {
        Some(r) if r.starts_with(' ') => r.trim_start(),
        Some(r) if r.starts_with('(') => r.split_once(')').map_or("", |(_, r)| r.trim_start()),
        Some(_) => return false,
        None => line,
    };
    let word = |w: &str| {
        rest.strip_prefix(w)
            .is_some_and(|r| r.starts_with([' ', '<']))
    };
    word("struct") || word("impl")
}

/// Whether `line` belongs to the item below it (an attribute or a doc comment at the
/// item's indentation; candle-transformers has no multi-line attributes on items).
fn is_attached(line: &str, indent: &str) -> bool {
    line.strip_prefix(indent)
        .is_some_and(|l| l.starts_with("#[") || l.starts_with("///"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_goes_above_docs_and_derives() {
        let src = "use x;\n/// A config\n#[derive(Debug)]\npub struct Config {\n}\nimpl Config {}\npub(crate) struct A;\nfn impl_x() {}";
        let out = annotate(src, "#[a]");
        assert_eq!(
            out,
            "use x;\n#[a]\n/// A config\n#[derive(Debug)]\npub struct Config {\n}\n#[a]\nimpl Config {}\n#[a]\npub(crate) struct A;\nfn impl_x() {}"
        );
        let inline = annotate(
            "mod m {\n    #[derive(Debug)]\n    struct B;\n    fn f() { struct C; }\n}",
            "#[a]",
        );
        assert_eq!(
            inline,
            "mod m {\n    #[a]\n    #[derive(Debug)]\n    struct B;\n    fn f() { struct C; }\n}"
        );
    }

    #[test]
    fn paths_into_the_crate_are_made_absolute() {
        let out = fix_paths(
            "use crate::utils; use super::with_tracing::Linear; $crate::x; my_crate::y",
            "ct",
            "models",
        );
        assert_eq!(
            out,
            "use ct::utils; use ct::models::with_tracing::Linear; $crate::x; my_crate::y"
        );
    }
}
