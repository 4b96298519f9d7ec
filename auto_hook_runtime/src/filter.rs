//! Selecting hook points: exact names, lists, globs and predicates.

use crate::error::{Error, Result};
use crate::suggest::edit_distance;
use std::fmt;
use std::sync::Arc;

/// Which hook points a hook (or a cache) applies to.
///
/// A `&str` without wildcards is an exact name and must exist; with `*` (any run of
/// characters inside one dotted segment), `**` (any run, dots included) or `?` it is a
/// glob and must match at least one name. Lists combine filters; predicates see every name.
///
/// ```
/// use auto_hook_runtime::Filter;
/// let f = Filter::from("layers.*.fc1.hook_point");
/// assert!(f.matches("layers.3.fc1.hook_point"));
/// assert!(!f.matches("layers.3.fc2.hook_point"));
/// assert!(Filter::from("**hook_point").matches("a.b.hook_point"));
/// assert!(Filter::pred(|n| n.ends_with("fc2.hook_point")).matches("fc2.hook_point"));
/// ```
#[derive(Clone)]
pub enum Filter {
    /// Every hook point.
    All,
    /// One exact name.
    Exact(String),
    /// A glob pattern.
    Glob(String),
    /// Any of these filters.
    Any(Vec<Filter>),
    /// A predicate on the name.
    Pred(Arc<dyn Fn(&str) -> bool + Send + Sync>),
}

impl Filter {
    /// A filter from a predicate on hook names.
    pub fn pred(f: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        Filter::Pred(Arc::new(f))
    }

    /// Whether `name` is selected.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Filter::All => true,
            Filter::Exact(exact) => exact == name,
            Filter::Glob(pattern) => glob_match(pattern.as_bytes(), name.as_bytes()),
            Filter::Any(filters) => filters.iter().any(|f| f.matches(name)),
            Filter::Pred(pred) => pred(name),
        }
    }

    /// Checks the filter against the model's names: every exact name must exist and
    /// every glob, predicate or list must select something.
    pub fn validate<'n>(&self, names: impl Iterator<Item = &'n str> + Clone) -> Result<()> {
        match self {
            Filter::All => Ok(()),
            Filter::Exact(exact) => {
                if names.clone().any(|n| n == exact) {
                    Ok(())
                } else {
                    Err(Error::UnknownHook {
                        name: exact.clone(),
                        nearest: nearest_names(exact, names),
                    })
                }
            }
            Filter::Any(filters) => filters.iter().try_for_each(|f| f.validate(names.clone())),
            Filter::Glob(_) | Filter::Pred(_) => {
                if names.clone().any(|n| self.matches(n)) {
                    Ok(())
                } else {
                    let probe = match self {
                        Filter::Glob(p) => p.as_str(),
                        _ => "",
                    };
                    Err(Error::NoMatch {
                        filter: self.to_string(),
                        nearest: nearest_names(probe, names),
                    })
                }
            }
        }
    }
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::All => write!(f, "<all>"),
            Filter::Exact(n) => write!(f, "`{n}`"),
            Filter::Glob(g) => write!(f, "glob `{g}`"),
            Filter::Any(list) => {
                let parts: Vec<String> = list.iter().map(|x| x.to_string()).collect();
                write!(f, "[{}]", parts.join(", "))
            }
            Filter::Pred(_) => write!(f, "<predicate>"),
        }
    }
}

impl From<&str> for Filter {
    fn from(s: &str) -> Self {
        if s.contains(['*', '?']) {
            Filter::Glob(s.to_owned())
        } else {
            Filter::Exact(s.to_owned())
        }
    }
}

impl From<String> for Filter {
    fn from(s: String) -> Self {
        Filter::from(s.as_str())
    }
}

impl From<&String> for Filter {
    fn from(s: &String) -> Self {
        Filter::from(s.as_str())
    }
}

impl<T: Into<Filter>> From<Vec<T>> for Filter {
    fn from(list: Vec<T>) -> Self {
        Filter::Any(list.into_iter().map(Into::into).collect())
    }
}

impl<T: Into<Filter> + Clone> From<&[T]> for Filter {
    fn from(list: &[T]) -> Self {
        Filter::Any(list.iter().cloned().map(Into::into).collect())
    }
}

impl<T: Into<Filter>, const N: usize> From<[T; N]> for Filter {
    fn from(list: [T; N]) -> Self {
        Filter::Any(list.into_iter().map(Into::into).collect())
    }
}

/// Glob match: `*` stays inside a dotted segment, `**` crosses dots, `?` is one character.
pub(crate) fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) if rest.first() == Some(&b'*') => {
            let rest = &rest[1..];
            (0..=name.len()).any(|i| glob_match(rest, &name[i..]))
        }
        Some((b'*', rest)) => {
            let segment_end = name.iter().position(|&c| c == b'.').unwrap_or(name.len());
            (0..=segment_end).any(|i| glob_match(rest, &name[i..]))
        }
        Some((b'?', rest)) => !name.is_empty() && name[0] != b'.' && glob_match(rest, &name[1..]),
        Some((&c, rest)) => name.first() == Some(&c) && glob_match(rest, &name[1..]),
    }
}

/// Up to three names closest to `probe` by edit distance.
pub fn nearest_names<'n>(probe: &str, names: impl Iterator<Item = &'n str>) -> Vec<String> {
    let mut scored: Vec<(usize, &str)> = names
        .map(|n| (edit_distance(probe.as_bytes(), n.as_bytes()), n))
        .collect();
    scored.sort_by_key(|&(d, _)| d);
    scored.dedup_by_key(|(_, n)| *n);
    scored
        .into_iter()
        .take(3)
        .map(|(_, n)| n.to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_star_stays_inside_one_segment() {
        assert!(glob_match(b"layers.*.hook_point", b"layers.10.hook_point"));
        assert!(!glob_match(
            b"layers.*.hook_point",
            b"layers.1.fc1.hook_point"
        ));
        assert!(glob_match(b"**.hook_point", b"layers.1.fc1.hook_point"));
        assert!(glob_match(b"fc?.hook_point", b"fc2.hook_point"));
    }

    #[test]
    fn nearest_names_ranks_by_edit_distance() {
        let names = [
            "fc1.hook_point",
            "fc2.hook_point",
            "hook_point",
            "layers.0.hook_point",
        ];
        let nearest = nearest_names("fc1.hok_point", names.into_iter());
        assert_eq!(nearest[0], "fc1.hook_point");
        assert_eq!(nearest.len(), 3);
    }

    #[test]
    fn unknown_exact_name_is_an_error_with_suggestions() {
        let names = ["fc1.hook_point", "fc2.hook_point"];
        let err = Filter::from("fc3.hook_point")
            .validate(names.into_iter())
            .unwrap_err();
        assert!(matches!(err, Error::UnknownHook { ref nearest, .. } if nearest.len() == 2));
        let err = Filter::from("attn.*")
            .validate(names.into_iter())
            .unwrap_err();
        assert!(matches!(err, Error::NoMatch { .. }), "{err}");
    }
}
