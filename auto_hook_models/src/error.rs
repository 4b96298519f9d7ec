//! The models crate's error type.

use std::fmt;

/// `Result` with the models crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// What can go wrong when loading or running a hooked port.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// `config.json` is missing, unreadable or malformed.
    Config(String),
    /// The checkpoint asks for something these ports do not implement (an architecture,
    /// a rope scaling type, an activation, ...): refused rather than computed wrongly.
    Unsupported(String),
    /// Weights or tokenizer that cannot be read.
    Io(String),
    /// Bad input to a forward or to `generate`.
    Input(String),
    /// An error from candle.
    Candle(candle_core::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(m) => write!(f, "config: {m}"),
            Error::Unsupported(m) => write!(f, "unsupported checkpoint: {m}"),
            Error::Io(m) => write!(f, "{m}"),
            Error::Input(m) => write!(f, "bad input: {m}"),
            Error::Candle(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Candle(e) => Some(e),
            _ => None,
        }
    }
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::Candle(e)
    }
}

impl From<Error> for candle_core::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Candle(e) => e,
            other => candle_core::Error::Msg(other.to_string()),
        }
    }
}

impl From<Error> for auto_hook::Error {
    fn from(e: Error) -> Self {
        auto_hook::Error::Candle(e.into())
    }
}
