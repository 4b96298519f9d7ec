//! TransformerLens names on any hooked model: a table of name patterns with `{l}`-style
//! placeholders (`blocks.{l}.hook_resid_post` ↔ `layers.{l}.hook_point`), and
//! [`Aliased`], a model whose points are seen under those names.
//!
//! Names the model's structure cannot expose (a point inside a function, such as the
//! attention pattern) are listed with [`Aliases::missing`], never faked: a hook on one is
//! the usual unknown-name error, and [`Aliases::missing_names`] says why.

use crate::module::{HookedModule, Walker, WalkerMut};
use crate::schema::Schema;
use std::ops::{Deref, DerefMut};

/// A name pattern split at dots: literal segments and `{name}` placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern(Vec<String>);

impl Pattern {
    fn new(text: &str) -> Self {
        Pattern(text.split('.').map(str::to_owned).collect())
    }

    fn is_placeholder(segment: &str) -> bool {
        segment.len() > 2 && segment.starts_with('{') && segment.ends_with('}')
    }

    /// The placeholder values if `name` matches.
    fn capture<'n>(&self, name: &'n str) -> Option<Vec<(&str, &'n str)>> {
        let parts: Vec<&str> = name.split('.').collect();
        if parts.len() != self.0.len() {
            return None;
        }
        let mut captured = Vec::new();
        for (pattern, part) in self.0.iter().zip(parts) {
            if Self::is_placeholder(pattern) {
                captured.push((pattern.as_str(), part));
            } else if pattern != part {
                return None;
            }
        }
        Some(captured)
    }

    fn fill(&self, values: &[(&str, &str)]) -> String {
        let segments: Vec<&str> = self
            .0
            .iter()
            .map(|s| {
                values
                    .iter()
                    .find(|(p, _)| *p == s)
                    .map_or(s.as_str(), |(_, v)| v)
            })
            .collect();
        segments.join(".")
    }
}

/// A table of TransformerLens names (with `{l}`-style placeholders) for a model's own
/// point names, plus the names its structure cannot expose.
///
/// ```
/// use auto_hook_runtime::Aliases;
/// let names = Aliases::new()
///     .alias("blocks.{l}.hook_resid_post", "layers.{l}.hook_point")
///     .missing("blocks.{l}.attn.hook_pattern", "computed inside the attention's forward");
/// assert_eq!(names.to_alias("layers.3.hook_point"), "blocks.3.hook_resid_post");
/// assert_eq!(names.to_own("blocks.3.hook_resid_post").as_deref(), Some("layers.3.hook_point"));
/// assert_eq!(names.to_alias("layers.3.mlp.hook_point"), "layers.3.mlp.hook_point");
/// assert_eq!(names.missing_names()[0].0, "blocks.{l}.attn.hook_pattern");
/// ```
#[derive(Debug, Clone, Default)]
pub struct Aliases {
    rules: Vec<(Pattern, Pattern)>,
    missing: Vec<(String, String)>,
}

impl Aliases {
    /// An empty table: every point keeps its own name.
    pub fn new() -> Self {
        Self::default()
    }

    /// Shows the points matching `own` (`layers.{l}.hook_point`) as `alias`
    /// (`blocks.{l}.hook_resid_post`); both use the same placeholders.
    pub fn alias(mut self, alias: &str, own: &str) -> Self {
        self.rules.push((Pattern::new(alias), Pattern::new(own)));
        self
    }

    /// Records a name the model cannot expose, and why.
    pub fn missing(mut self, alias: &str, why: &str) -> Self {
        self.missing.push((alias.to_owned(), why.to_owned()));
        self
    }

    /// The names listed as missing, with the reason.
    pub fn missing_names(&self) -> &[(String, String)] {
        &self.missing
    }

    /// The alias patterns this table maps, in the order they were added.
    pub fn alias_patterns(&self) -> Vec<String> {
        self.rules.iter().map(|(a, _)| a.0.join(".")).collect()
    }

    /// The name a point called `own` is seen under (its own name when no rule matches).
    pub fn to_alias(&self, own: &str) -> String {
        self.rules
            .iter()
            .find_map(|(alias, pattern)| pattern.capture(own).map(|v| alias.fill(&v)))
            .unwrap_or_else(|| own.to_owned())
    }

    /// The model's own name for an alias, if a rule maps it.
    pub fn to_own(&self, alias: &str) -> Option<String> {
        self.rules
            .iter()
            .find_map(|(pattern, own)| pattern.capture(alias).map(|v| own.fill(&v)))
    }

    /// Wraps `model` so its points are seen under these names.
    pub fn wrap<M: HookedModule>(self, model: M) -> Aliased<M> {
        Aliased {
            inner: model,
            names: self,
        }
    }
}

/// A model whose hook points are seen under the names of an [`Aliases`] table (points
/// without a rule keep their own). It has the whole hooked-root API; the model itself is
/// reached through `Deref`, so `|m| m.forward(&x)` works as before. Its names exist per
/// instance only: the type lists none (`hook_names()` is empty).
///
/// ```
/// use auto_hook_runtime::{Aliases, Hooked, HookedRoot};
/// let layers = vec![Hooked::new(candle_nn::Activation::Relu), Hooked::new(candle_nn::Activation::Gelu)];
/// let model = Aliases::new().alias("blocks.{l}.hook_mlp_out", "{l}.hook_point").wrap(layers);
/// assert_eq!(model.hook_point_names(), ["blocks.0.hook_mlp_out", "blocks.1.hook_mlp_out"]);
/// ```
#[derive(Debug, Clone)]
pub struct Aliased<M> {
    inner: M,
    names: Aliases,
}

impl<M> Aliased<M> {
    /// The name table.
    pub fn aliases(&self) -> &Aliases {
        &self.names
    }

    /// Gives back the model.
    pub fn into_inner(self) -> M {
        self.inner
    }
}

impl<M> Deref for Aliased<M> {
    type Target = M;
    fn deref(&self) -> &M {
        &self.inner
    }
}

impl<M> DerefMut for Aliased<M> {
    fn deref_mut(&mut self) -> &mut M {
        &mut self.inner
    }
}

impl<M: HookedModule> HookedModule for Aliased<M> {
    const SCHEMA: Schema = Schema::Struct(&[]);

    fn visit_hooks<'s>(&'s self, walker: &mut Walker<'_, 's>) {
        let names = &self.names;
        let mut rename = |name: &str, point: &'s crate::HookPoint| {
            walker.child(names.to_alias(name), point);
        };
        self.inner.visit_hooks(&mut Walker::new(&mut rename));
    }

    fn visit_hooks_mut(&mut self, walker: &mut WalkerMut<'_>) {
        let names = &self.names;
        let mut rename = |name: &str, point: &mut crate::HookPoint| {
            walker.child(names.to_alias(name), point);
        };
        self.inner.visit_hooks_mut(&mut WalkerMut::new(&mut rename));
    }
}
