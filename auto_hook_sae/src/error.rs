//! The crate's error type: one enum whose variants name what was wrong.

use std::fmt;
use std::path::PathBuf;

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong loading, saving, training or running an SAE.
///
/// ```
/// use auto_hook_sae::Error;
/// let err = Error::Config { key: "d_sae".into(), problem: "missing".into() };
/// assert_eq!(err.to_string(), "cfg.json: `d_sae`: missing");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A `cfg.json` key that is missing, of the wrong type, or has an unknown value.
    Config { key: String, problem: String },
    /// A weight that is missing from `sae_weights.safetensors` or has the wrong shape.
    Weights { name: String, problem: String },
    /// An array of an npz file (Gemma Scope's `params.npz`) that is missing, has the
    /// wrong shape, or cannot be read.
    Npz {
        path: PathBuf,
        name: String,
        problem: String,
    },
    /// An activation (or other input) whose shape the SAE cannot take.
    Shape { what: String, problem: String },
    /// A hook point's activation width differs from the SAE's `d_in`.
    DInMismatch {
        hook: String,
        d_in: usize,
        width: usize,
    },
    /// NaN or infinite values in an activation batch.
    NonFinite { what: String },
    /// A training or store setting that cannot work (e.g. `k > d_sae`).
    Invalid(String),
    /// A file that cannot be read or written.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// An error from the hooked model (unknown hook name, stop_at, ...).
    Hook(auto_hook::Error),
    /// An error from candle.
    Candle(candle_core::Error),
    /// A tokenizer error.
    Tokenizer(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config { key, problem } => write!(f, "cfg.json: `{key}`: {problem}"),
            Error::Weights { name, problem } => {
                write!(f, "sae_weights.safetensors: `{name}`: {problem}")
            }
            Error::Npz {
                path,
                name,
                problem,
            } => write!(f, "{}: array `{name}`: {problem}", path.display()),
            Error::Shape { what, problem } => write!(f, "{what}: {problem}"),
            Error::DInMismatch { hook, d_in, width } => write!(
                f,
                "hook `{hook}` gives activations of width {width}, but the SAE has d_in = {d_in}"
            ),
            Error::NonFinite { what } => write!(f, "{what} contains NaN or infinite values"),
            Error::Invalid(msg) => write!(f, "{msg}"),
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::Hook(e) => write!(f, "{e}"),
            Error::Candle(e) => write!(f, "{e}"),
            Error::Tokenizer(msg) => write!(f, "tokenizer: {msg}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Hook(e) => Some(e),
            Error::Candle(e) => Some(e),
            _ => None,
        }
    }
}

/// An SAE error that travelled through a forward comes back typed; a runtime error
/// comes back as [`Error::Hook`].
impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        match auto_hook::take_error::<Error>(e) {
            Ok(ours) => ours,
            Err(other) => auto_hook::Error::from(other).into(),
        }
    }
}

impl From<auto_hook::Error> for Error {
    fn from(e: auto_hook::Error) -> Self {
        match e {
            auto_hook::Error::Candle(inner) => match auto_hook::take_error::<Error>(inner) {
                Ok(ours) => ours,
                Err(inner) => Error::Candle(inner),
            },
            other => Error::Hook(other),
        }
    }
}

/// Carried so that it can be found again: `auto_hook::find_error::<Error>(&e)` (see
/// [`auto_hook::carry_error`]).
impl From<Error> for candle_core::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Candle(inner) => inner,
            Error::Hook(inner) => inner.into(),
            other => auto_hook::carry_error(other),
        }
    }
}

/// So an SAE's forward can run inside `run_with_hooks` / `run_with_cache` closures; the
/// run's error finds it again with `err.find::<auto_hook_sae::Error>()`.
impl From<Error> for auto_hook::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Hook(inner) => inner,
            Error::Candle(inner) => auto_hook::Error::Candle(inner),
            other => auto_hook::Error::Candle(auto_hook::carry_error(other)),
        }
    }
}

/// Shorthand for an [`Error::Config`].
pub(crate) fn config_err(key: &str, problem: impl Into<String>) -> Error {
    Error::Config {
        key: key.to_owned(),
        problem: problem.into(),
    }
}

/// Shorthand for an [`Error::Io`].
pub(crate) fn io_err(path: &std::path::Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_owned(),
        source,
    }
}
