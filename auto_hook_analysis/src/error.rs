//! The analysis crate's error type.

use std::fmt;

/// `Result` with the analysis crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// What can go wrong in an analysis: a bad argument (a layer, head or position outside
/// the model or the cache, a stack of the wrong shape), a hook error from the model's
/// run (unknown hook name with its nearest names, ...), a figure that cannot be written.
///
/// ```
/// use auto_hook_analysis::Error;
/// let err = Error::OutOfRange { what: "layer", index: 7, len: 2 };
/// assert_eq!(err.to_string(), "layer 7 is out of range 0..2");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A layer, head, neuron or position index outside `0..len`.
    OutOfRange {
        what: &'static str,
        index: i64,
        len: usize,
    },
    /// An argument of the wrong shape or kind.
    Input(String),
    /// The model's run failed (an unknown hook name, a replacement that does not fit,
    /// a missing activation in the cache, ...).
    Hook(auto_hook::Error),
    /// A figure could not be drawn or written.
    Plot(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::OutOfRange { what, index, len } => {
                write!(f, "{what} {index} is out of range 0..{len}")
            }
            Error::Input(m) => write!(f, "bad input: {m}"),
            Error::Hook(e) => write!(f, "{e}"),
            Error::Plot(m) => write!(f, "figure: {m}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Hook(e) => Some(e),
            _ => None,
        }
    }
}

impl From<auto_hook::Error> for Error {
    fn from(e: auto_hook::Error) -> Self {
        Error::Hook(e)
    }
}

/// An analysis error that travelled through a forward comes back typed.
impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        match auto_hook::take_error::<Error>(e) {
            Ok(ours) => ours,
            Err(other) => Error::Hook(other.into()),
        }
    }
}

/// Carried so that it can be found again (see [`auto_hook::carry_error`]).
impl From<Error> for candle_core::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Hook(inner) => inner.into(),
            other => auto_hook::carry_error(other),
        }
    }
}

/// `index` checked against `0..len`.
pub(crate) fn check_index(what: &'static str, index: usize, len: usize) -> Result<usize> {
    if index < len {
        Ok(index)
    } else {
        Err(Error::OutOfRange {
            what,
            index: index as i64,
            len,
        })
    }
}
