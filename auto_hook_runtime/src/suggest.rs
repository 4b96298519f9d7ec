//! Nearest hook names, at compile time as well as at run time.
//!
//! [`edit_distance`] is the one measure every "did you mean" of the crate uses: the
//! runtime's [`nearest_names`](crate::nearest_names) over a model's names, and
//! `hook_name!`'s compile error, which lists the nearest patterns of the model's
//! [`Schema`] from a `const` evaluation ([`UnknownName`]).

use crate::schema::Schema;

/// Longest name or pattern compared in full (bytes); longer ones are compared on their
/// first `MAX_NAME` bytes.
const MAX_NAME: usize = 160;
/// Room for the compile-time message.
const MESSAGE: usize = 640;
/// Suggestions listed.
const SUGGESTIONS: usize = 3;

/// Levenshtein distance between two names, byte by byte (names are ASCII).
pub(crate) const fn edit_distance(a: &[u8], b: &[u8]) -> usize {
    let a_len = if a.len() < MAX_NAME {
        a.len()
    } else {
        MAX_NAME
    };
    let b_len = if b.len() < MAX_NAME {
        b.len()
    } else {
        MAX_NAME
    };
    let mut row = [0usize; MAX_NAME + 1];
    let mut j = 0;
    while j <= b_len {
        row[j] = j;
        j += 1;
    }
    let mut i = 0;
    while i < a_len {
        let mut diagonal = row[0];
        row[0] = i + 1;
        let mut j = 0;
        while j < b_len {
            let substitute = diagonal + (a[i] != b[j]) as usize;
            diagonal = row[j + 1];
            let mut best = row[j] + 1;
            if row[j + 1] + 1 < best {
                best = row[j + 1] + 1;
            }
            if substitute < best {
                best = substitute;
            }
            row[j + 1] = best;
            j += 1;
        }
        i += 1;
    }
    row[b_len]
}

/// A byte buffer filled in a `const` evaluation.
#[derive(Clone, Copy)]
struct Buf<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> Buf<N> {
    const fn new() -> Self {
        Self {
            bytes: [0; N],
            len: 0,
        }
    }

    /// Appends `s`, cut at capacity.
    const fn push(&mut self, s: &[u8]) {
        let mut i = 0;
        while i < s.len() && self.len < N {
            self.bytes[self.len] = s[i];
            self.len += 1;
            i += 1;
        }
    }

    const fn as_bytes(&self) -> &[u8] {
        self.bytes.split_at(self.len).0
    }
}

/// The message of `hook_name!` for a name the model does not have: the name, the model,
/// and the model's nearest hook-name patterns (`*` for a list index).
///
/// ```
/// use auto_hook_runtime::__private::{Schema, UnknownName};
/// static LEAF: Schema = Schema::Struct(&[("hook_point", &Schema::Point)]);
/// static MODEL: Schema = Schema::Struct(&[("fc1", &LEAF), ("layers", &Schema::Seq(&LEAF))]);
/// let msg = UnknownName::new(&MODEL, "layers.3.hok_point", "Model");
/// assert!(msg.as_str().contains("did you mean `layers.*.hook_point`"));
/// ```
pub struct UnknownName {
    message: Buf<MESSAGE>,
}

impl UnknownName {
    /// The message for `name`, not a hook name of `schema` (the type `model`).
    pub const fn new(schema: &Schema, name: &str, model: &str) -> Self {
        let mut nearest = Nearest::new(normalized(name.as_bytes()));
        nearest.walk(schema, &mut Buf::new());
        let mut message = Buf::new();
        message.push(b"unknown hook name `");
        message.push(name.as_bytes());
        message.push(b"` for model `");
        message.push(model.as_bytes());
        message.push(b"`");
        let mut i = 0;
        while i < nearest.count {
            message.push(if i == 0 { b"; did you mean `" } else { b"`, `" });
            message.push(nearest.found[i].as_bytes());
            i += 1;
        }
        if nearest.count > 0 {
            message.push(b"`?");
        }
        message.push(b" (every name: `");
        message.push(model.as_bytes());
        message.push(b"::hook_names()`)");
        Self { message }
    }

    /// The message.
    pub const fn as_str(&self) -> &str {
        match core::str::from_utf8(self.message.as_bytes()) {
            Ok(s) => s,
            Err(_) => "unknown hook name",
        }
    }
}

/// `name` with each all-digit segment written `*`, as the schema writes list indices.
const fn normalized(name: &[u8]) -> Buf<MAX_NAME> {
    let mut out = Buf::new();
    let mut start = 0;
    while start <= name.len() {
        let mut end = start;
        while end < name.len() && name[end] != b'.' {
            end += 1;
        }
        let segment = name.split_at(end).0.split_at(start).1;
        let mut digits = !segment.is_empty();
        let mut i = 0;
        while i < segment.len() {
            digits = digits && segment[i].is_ascii_digit();
            i += 1;
        }
        out.push(if digits { b"*" } else { segment });
        if end < name.len() {
            out.push(b".");
        }
        start = end + 1;
    }
    out
}

/// The closest patterns seen so far, closest first.
struct Nearest {
    probe: Buf<MAX_NAME>,
    found: [Buf<MAX_NAME>; SUGGESTIONS],
    distance: [usize; SUGGESTIONS],
    count: usize,
}

impl Nearest {
    const fn new(probe: Buf<MAX_NAME>) -> Self {
        Self {
            probe,
            found: [Buf::new(); SUGGESTIONS],
            distance: [usize::MAX; SUGGESTIONS],
            count: 0,
        }
    }

    /// Every pattern of `schema` under `prefix`.
    const fn walk(&mut self, schema: &Schema, prefix: &mut Buf<MAX_NAME>) {
        match schema {
            Schema::Point => self.offer(prefix),
            Schema::Struct(fields) => {
                let mut i = 0;
                while i < fields.len() {
                    self.child(fields[i].0.as_bytes(), fields[i].1, prefix);
                    i += 1;
                }
            }
            Schema::Seq(inner) | Schema::Array(_, inner) => self.child(b"*", inner, prefix),
        }
    }

    const fn child(&mut self, segment: &[u8], schema: &Schema, prefix: &mut Buf<MAX_NAME>) {
        let len = prefix.len;
        if len > 0 {
            prefix.push(b".");
        }
        prefix.push(segment);
        self.walk(schema, prefix);
        prefix.len = len;
    }

    /// Keeps `pattern` if it is among the closest (ties: the first seen stays first).
    const fn offer(&mut self, pattern: &Buf<MAX_NAME>) {
        let d = edit_distance(self.probe.as_bytes(), pattern.as_bytes());
        let mut at = self.count;
        while at > 0 && d < self.distance[at - 1] {
            at -= 1;
        }
        if at >= SUGGESTIONS {
            return;
        }
        let mut i = if self.count < SUGGESTIONS {
            self.count
        } else {
            SUGGESTIONS - 1
        };
        while i > at {
            self.found[i] = self.found[i - 1];
            self.distance[i] = self.distance[i - 1];
            i -= 1;
        }
        self.found[at] = *pattern;
        self.distance[at] = d;
        if self.count < SUGGESTIONS {
            self.count += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static LEAF: Schema = Schema::Struct(&[("hook_point", &Schema::Point)]);
    static MODEL: Schema = Schema::Struct(&[
        ("hook_point", &Schema::Point),
        ("fc1", &LEAF),
        ("fc2", &LEAF),
        (
            "blocks",
            &Schema::Seq(&Schema::Struct(&[("hook_resid_post", &Schema::Point)])),
        ),
    ]);

    #[test]
    fn distance_counts_edits() {
        assert_eq!(edit_distance(b"hook_point", b"hook_point"), 0);
        assert_eq!(edit_distance(b"hok_point", b"hook_point"), 1);
        assert_eq!(edit_distance(b"", b"abc"), 3);
        assert_eq!(edit_distance(b"kitten", b"sitting"), 3);
    }

    #[test]
    fn the_message_lists_the_nearest_patterns_closest_first() {
        let msg = UnknownName::new(&MODEL, "fc1.hok_point", "Model");
        assert_eq!(
            msg.as_str(),
            "unknown hook name `fc1.hok_point` for model `Model`; did you mean \
             `fc1.hook_point`, `fc2.hook_point`, `hook_point`? (every name: `Model::hook_names()`)"
        );
        let msg = UnknownName::new(&MODEL, "blocks.11.hook_resid_pst", "Model");
        assert!(
            msg.as_str()
                .contains("did you mean `blocks.*.hook_resid_post`"),
            "{}",
            msg.as_str()
        );
    }

    /// It runs where `hook_name!` runs it: in a `const`.
    const IN_CONST: UnknownName = UnknownName::new(&MODEL, "fc3.hook_point", "M");

    #[test]
    fn it_evaluates_in_a_const() {
        assert!(IN_CONST.as_str().contains("`fc1.hook_point`"));
    }
}
