//! The names of the hooked structs seen so far in this compilation.
//!
//! A struct literal of a hooked type needs the type's hidden field, so an annotated item
//! rewrites the literals of hooked types it writes (`Mlp { .. }` inside another type's
//! impl). The impl cannot see the struct's definition; the struct's expansion records
//! its name here, and the literal is rewritten when the name is known. Expansion runs
//! items in source order, so a struct defined before its use is always known; `Self`
//! literals need no registry. Data structs are never recorded: their literals are left
//! as they are.

use std::collections::HashSet;
use std::sync::Mutex;
use syn::Ident;

static HOOKED: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// Records that `name` is a hooked struct.
pub fn register_hooked(name: &Ident) {
    let mut set = HOOKED.lock().unwrap_or_else(|e| e.into_inner());
    set.get_or_insert_with(HashSet::new)
        .insert(name.to_string());
}

/// Whether a struct called `name` was recorded as hooked.
pub fn is_hooked(name: &Ident) -> bool {
    let set = HOOKED.lock().unwrap_or_else(|e| e.into_inner());
    set.as_ref().is_some_and(|s| s.contains(&name.to_string()))
}
