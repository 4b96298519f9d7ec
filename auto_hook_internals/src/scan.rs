//! The whole-file pass before any item is expanded: which types a file defines, which
//! structs and enums will be hooked, and the module-or-data decision of each struct (the
//! build helper's report).

use crate::ast::{parse_fields, Mode};
use crate::decide::{decide, Decision, Override};
use syn::{Ident, Item};

/// Records which of `items` (and of their inline modules) are hooked structs and enums,
/// before any is expanded, so a literal that comes before its struct's definition is
/// rewritten too, and which types the file defines (a local `Dropout` is not candle's).
/// The build helper calls it on a whole file; the attribute sees one item at a time.
pub fn register_structs(items: &[Item]) {
    crate::registry::clear_local();
    register_local(items);
    register_enums(items);
    // a struct holding a hooked struct is hooked: repeat until nothing changes
    let mut hooked = 0;
    loop {
        let now: Vec<Ident> = decisions(items)
            .into_iter()
            .filter(|(_, d)| d.module)
            .map(|(i, _)| i)
            .collect();
        now.iter().for_each(crate::registry::register_hooked);
        if now.len() == hooked {
            break;
        }
        hooked = now.len();
    }
}

/// Calls `f` on every item of `items` and of their inline modules.
fn each_item(items: &[Item], f: &mut dyn FnMut(&Item)) {
    for item in items {
        match item {
            Item::Mod(m) => {
                if let Some((_, inner)) = &m.content {
                    each_item(inner, f);
                }
            }
            other => f(other),
        }
    }
}

fn register_enums(items: &[Item]) {
    each_item(items, &mut |item| {
        if let Item::Enum(e) = item {
            if crate::expand_enum::is_hooked_enum(e) {
                crate::registry::register_hooked(&e.ident);
            }
        }
    });
}

fn register_local(items: &[Item]) {
    each_item(items, &mut |item| match item {
        Item::Struct(s) => crate::registry::register_local(&s.ident),
        Item::Enum(e) => crate::registry::register_local(&e.ident),
        _ => {}
    });
}

/// The module-or-data decision for every struct of `items` (inline modules included),
/// in source order, as `#[auto_hook]` would take it (see `decide`).
pub fn decisions(items: &[Item]) -> Vec<(Ident, Decision)> {
    let mut out = Vec::new();
    each_item(items, &mut |item| {
        if let Item::Struct(s) = item {
            let mut errors = darling::Error::accumulator();
            let mut copy = s.clone();
            let fields = match copy.fields {
                syn::Fields::Named(_) => parse_fields(&mut copy, Mode::Annotate, &mut errors),
                _ => Vec::new(),
            };
            let _ = errors.finish();
            out.push((s.ident.clone(), decide(s, &fields, Override::None)));
        }
    });
    out
}
