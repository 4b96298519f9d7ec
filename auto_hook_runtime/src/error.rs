//! The runtime's error type.

use std::fmt;

/// `Result` with the runtime's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong when hooking a model.
///
/// Each variant names the hook point involved. Inside a model's forward (which returns
/// a `candle_core::Result`) these errors travel as `candle_core::Error`; the root API
/// (`run_with_hooks`, `run_with_cache`, ...) hands back the typed variant.
///
/// ```
/// use auto_hook_runtime::Error;
/// let err = Error::UnknownHook { name: "fc1.hok_point".into(), nearest: vec!["fc1.hook_point".into()] };
/// assert!(err.to_string().contains("did you mean `fc1.hook_point`"));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An exact hook name that the model does not have.
    UnknownHook { name: String, nearest: Vec<String> },
    /// A glob, list or predicate that selects no hook point of the model.
    NoMatch {
        filter: String,
        nearest: Vec<String>,
    },
    /// A hook returned a replacement whose shape, dtype or device differs from the activation.
    ReplacementMismatch {
        hook: String,
        expected: String,
        got: String,
    },
    /// `stop_at` was asked but these requested hook points never fired.
    StopAtNeverFired { names: Vec<String> },
    /// Hooks were given to a run, but not one hook point of the model fired during it, so
    /// the hooks never had a chance. The forward ran on a clone of the model (a clone
    /// has new hook points), on another model or thread, or outside the run closure.
    /// A run that legitimately runs no forward says so with `Hooks::may_not_fire`.
    NoHookFired { hooks: Vec<String> },
    /// A hook (or a check) failed with its own error.
    HookFailed {
        hook: String,
        source: candle_core::Error,
    },
    /// `check_auto_hook` in strict mode found problems.
    CheckFailed { failures: Vec<String> },
    /// An activation cache file that cannot be read or written, or a cache lookup
    /// (a gradient) that has nothing to give.
    Cache(String),
    /// An invariant of the runtime itself did not hold: a bug in auto_hook, never the
    /// user's input.
    Internal(String),
    /// An error from candle that is not about a hook.
    Candle(candle_core::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::UnknownHook { name, nearest } => {
                write!(f, "unknown hook name `{name}`")?;
                write_nearest(f, nearest)
            }
            Error::NoMatch { filter, nearest } => {
                write!(f, "hook filter {filter} matches no hook point")?;
                write_nearest(f, nearest)
            }
            Error::ReplacementMismatch { hook, expected, got } => write!(
                f,
                "hook at `{hook}` returned a replacement that does not fit: expected {expected}, got {got}"
            ),
            Error::StopAtNeverFired { names } => write!(
                f,
                "stop_at: the forward finished but these requested hook points never fired: {}",
                names.join(", ")
            ),
            Error::NoHookFired { hooks } => write!(
                f,
                "no hook point of the model fired during the run, so its hooks ({}) never ran: \
                 the forward ran on a clone of the model (`m.clone().forward(..)`: a clone has \
                 new hook points), on another model or thread, or outside the run closure; \
                 call the forward on the closure's argument (a run that may legitimately \
                 run no forward says so with `Hooks::may_not_fire()`)",
                hooks.join(", ")
            ),
            Error::HookFailed { hook, source } => write!(f, "hook at `{hook}` failed: {source}"),
            Error::CheckFailed { failures } => {
                write!(f, "check_auto_hook found {} problem(s):", failures.len())?;
                for failure in failures {
                    write!(f, "\n  - {failure}")?;
                }
                Ok(())
            }
            Error::Cache(msg) => write!(f, "activation cache: {msg}"),
            Error::Internal(msg) => write!(f, "internal error (a bug in auto_hook): {msg}"),
            Error::Candle(e) => write!(f, "{e}"),
        }
    }
}

fn write_nearest(f: &mut fmt::Formatter<'_>, nearest: &[String]) -> fmt::Result {
    match nearest {
        [] => Ok(()),
        [one] => write!(f, "; did you mean `{one}`?"),
        many => write!(f, "; did you mean one of `{}`?", many.join("`, `")),
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::HookFailed { source, .. } | Error::Candle(source) => Some(source),
            _ => None,
        }
    }
}

impl Error {
    /// The typed error of type `E` in this error: this error itself, or an error of the
    /// runtime, a model port, an SAE, ... that a forward or a hook returned inside candle's
    /// error (see [`carry_error`](crate::carry_error)).
    ///
    /// ```
    /// use auto_hook_runtime::{carry_error, Error};
    /// let run = Error::HookFailed {
    ///     hook: "fc1.hook_point".into(),
    ///     source: carry_error(Error::NoMatch { filter: "`x*`".into(), nearest: vec![] }),
    /// };
    /// assert!(matches!(run.find::<Error>(), Some(Error::HookFailed { .. })));
    /// let inner = match &run { Error::HookFailed { source, .. } => source, _ => unreachable!() };
    /// assert!(matches!(auto_hook_runtime::find_error::<Error>(inner), Some(Error::NoMatch { .. })));
    /// ```
    pub fn find<E: std::error::Error + 'static>(&self) -> Option<&E> {
        if let Some(this) = (self as &dyn std::any::Any).downcast_ref::<E>() {
            return Some(this);
        }
        match self {
            Error::Candle(e) | Error::HookFailed { source: e, .. } => crate::find_error(e),
            _ => None,
        }
    }
}

/// A runtime error that travelled through a forward comes back typed.
impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        crate::take_error::<Error>(e).unwrap_or_else(Error::Candle)
    }
}

/// Carried so that it can be found again: see [`carry_error`](crate::carry_error).
impl From<Error> for candle_core::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Candle(inner) => inner,
            other => crate::carry_error(other),
        }
    }
}
