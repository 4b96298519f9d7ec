//! What this compilation has seen so far: the hooked structs, and the types each source
//! file defines.
//!
//! A struct literal of a hooked type needs the type's hidden field, so an annotated item
//! rewrites the literals of hooked types it writes (`Mlp { .. }` inside another type's
//! impl). The impl cannot see the struct's definition; the struct's expansion records
//! its name here, and the literal is rewritten when the name is known. rustc does not
//! promise an order of expansion: today it expands a file's items in source order, so a
//! struct defined before its use is known, but nothing here may depend on it for
//! soundness; a literal whose type is not (yet) recorded is left as written and a wrong
//! guess is a compile error, never wrong code. `Self` literals need no registry. Data
//! structs are never recorded: their literals are left as they are.
//!
//! A type defined in the file being hooked (bert's own `struct Dropout`, quantized
//! llama's tracing `struct QMatMul`) is not candle's type of that name: fields of such a
//! type are left to the compiler (see `classify`). The build helper records every type
//! of a file before rewriting it; the attribute records each struct it expands, keyed by
//! its source file, so a type defined before its use is known.

use std::collections::HashSet;
use std::sync::Mutex;
use syn::Ident;

static HOOKED: Mutex<Option<HashSet<String>>> = Mutex::new(None);
static LOCAL: Mutex<Option<HashSet<(String, String)>>> = Mutex::new(None);

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

/// The source file an identifier was written in (empty where the toolchain cannot say).
fn file_of(name: &Ident) -> String {
    name.span().file()
}

/// Records that the file of `name` defines a type called `name`.
pub fn register_local(name: &Ident) {
    let mut set = LOCAL.lock().unwrap_or_else(|e| e.into_inner());
    set.get_or_insert_with(HashSet::new)
        .insert((file_of(name), name.to_string()));
}

/// Whether the file `name` is written in defines a type called `name`.
pub fn is_local(name: &Ident) -> bool {
    let set = LOCAL.lock().unwrap_or_else(|e| e.into_inner());
    set.as_ref()
        .is_some_and(|s| s.contains(&(file_of(name), name.to_string())))
}

/// Forgets the local types (the build helper hooks one file after another).
pub fn clear_local() {
    let mut set = LOCAL.lock().unwrap_or_else(|e| e.into_inner());
    *set = None;
}
