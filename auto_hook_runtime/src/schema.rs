//! The hook-name layout of a model *type*, known at compile time.
//!
//! Every hooked type has a `const SCHEMA: Schema` (see `HookedModule`). From it the
//! hook-name patterns are listed without building a model, and `hook_name!` checks a
//! written name in a `const` item, so a misspelled name fails `cargo build`.

/// The layout of hook names under one value.
#[derive(Debug, Clone, Copy)]
pub enum Schema {
    /// A hook point: the path that reaches it is its name.
    Point,
    /// Named children, in declaration order.
    Struct(&'static [(&'static str, &'static Schema)]),
    /// A dynamic collection (`Vec`, `HashMap`, `BTreeMap`): one segment per element, listed as `*`.
    Seq(&'static Schema),
    /// A fixed-size array: segments `0..N`, listed as `*`.
    Array(usize, &'static Schema),
}

impl Schema {
    /// The hook-name patterns of this layout, in declaration order; `*` stands for an
    /// element index or map key.
    ///
    /// ```
    /// use auto_hook_runtime::Schema;
    /// static LEAF: Schema = Schema::Struct(&[("hook_point", &Schema::Point)]);
    /// static ROOT: Schema = Schema::Struct(&[("hook_point", &Schema::Point), ("layers", &Schema::Seq(&LEAF))]);
    /// assert_eq!(ROOT.patterns(), ["hook_point", "layers.*.hook_point"]);
    /// ```
    pub fn patterns(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.collect_patterns(&mut String::new(), &mut out);
        out
    }

    fn collect_patterns(&self, prefix: &mut String, out: &mut Vec<String>) {
        let mut child = |segment: &str, schema: &Schema, prefix: &mut String| {
            let len = prefix.len();
            if !prefix.is_empty() {
                prefix.push('.');
            }
            prefix.push_str(segment);
            schema.collect_patterns(prefix, out);
            prefix.truncate(len);
        };
        match self {
            Schema::Point => out.push(prefix.clone()),
            Schema::Struct(fields) => fields
                .iter()
                .for_each(|(name, schema)| child(name, schema, prefix)),
            Schema::Seq(inner) | Schema::Array(_, inner) => child("*", inner, prefix),
        }
    }

    /// Whether `name` (a concrete name, or a pattern with `*` in place of indices and
    /// keys) is a hook name of this layout. Usable in `const` items.
    ///
    /// ```
    /// use auto_hook_runtime::Schema;
    /// static LEAF: Schema = Schema::Struct(&[("hook_point", &Schema::Point)]);
    /// static ROOT: Schema = Schema::Struct(&[("layers", &Schema::Array(2, &LEAF))]);
    /// const OK: bool = ROOT.matches("layers.1.hook_point");
    /// assert!(OK);
    /// assert!(!ROOT.matches("layers.2.hook_point"));
    /// assert!(ROOT.matches("layers.*.hook_point"));
    /// ```
    pub const fn matches(&self, name: &str) -> bool {
        let name = name.as_bytes();
        !name.is_empty() && matches_at(self, name, 0)
    }
}

const fn matches_at(schema: &Schema, name: &[u8], pos: usize) -> bool {
    match schema {
        Schema::Point => pos == name.len(),
        Schema::Struct(fields) => {
            let mut i = 0;
            while i < fields.len() {
                let (segment, child) = fields[i];
                if let Some(next) = eat_literal(name, pos, segment.as_bytes()) {
                    if matches_after(child, name, next) {
                        return true;
                    }
                }
                i += 1;
            }
            false
        }
        Schema::Seq(child) => match eat_segment(name, pos) {
            Some(next) => matches_after(child, name, next),
            None => false,
        },
        Schema::Array(len, child) => match eat_index(name, pos, *len) {
            Some(next) => matches_after(child, name, next),
            None => false,
        },
    }
}

const fn matches_after(child: &Schema, name: &[u8], next: usize) -> bool {
    if next == name.len() {
        matches_at(child, name, next)
    } else {
        name[next] == b'.' && matches_at(child, name, next + 1)
    }
}

const fn segment_end(name: &[u8], pos: usize) -> usize {
    let mut end = pos;
    while end < name.len() && name[end] != b'.' {
        end += 1;
    }
    end
}

const fn eat_literal(name: &[u8], pos: usize, segment: &[u8]) -> Option<usize> {
    if segment_end(name, pos) - pos != segment.len() {
        return None;
    }
    let mut i = 0;
    while i < segment.len() {
        if name[pos + i] != segment[i] {
            return None;
        }
        i += 1;
    }
    Some(pos + segment.len())
}

const fn eat_segment(name: &[u8], pos: usize) -> Option<usize> {
    let end = segment_end(name, pos);
    if end == pos {
        None
    } else {
        Some(end)
    }
}

const fn eat_index(name: &[u8], pos: usize, len: usize) -> Option<usize> {
    let end = segment_end(name, pos);
    if end == pos + 1 && name[pos] == b'*' {
        return Some(end);
    }
    if end == pos || end - pos > 18 {
        return None;
    }
    let mut value = 0usize;
    let mut i = pos;
    while i < end {
        if !name[i].is_ascii_digit() {
            return None;
        }
        value = value * 10 + (name[i] - b'0') as usize;
        i += 1;
    }
    if value < len {
        Some(end)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static LEAF: Schema = Schema::Struct(&[("hook_point", &Schema::Point)]);
    static MODEL: Schema = Schema::Struct(&[
        ("hook_point", &Schema::Point),
        ("relu_hook_point", &Schema::Point),
        ("experts", &Schema::Seq(&LEAF)),
    ]);

    #[test]
    fn matches_concrete_names_and_patterns_but_not_prefixes() {
        assert!(MODEL.matches("experts.gate.hook_point"));
        assert!(MODEL.matches("experts.*.hook_point"));
        assert!(MODEL.matches("relu_hook_point"));
        assert!(!MODEL.matches("experts.gate"));
        assert!(!MODEL.matches("experts..hook_point"));
        assert!(!MODEL.matches("hook_point.x"));
        assert!(!MODEL.matches(""));
    }

    #[test]
    fn patterns_follow_declaration_order() {
        assert_eq!(
            MODEL.patterns(),
            ["hook_point", "relu_hook_point", "experts.*.hook_point"]
        );
    }
}
