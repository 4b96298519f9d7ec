//! The models crate's error type, and the checks of a forward's token ids.
//!
//! Forwards and `generate` return `candle_core::Result`, as candle models do. Errors of
//! this crate travel inside it unchanged (the runtime's [`auto_hook::carry_error`]):
//! `auto_hook::find_error::<Error>(&e)` gets them back from a `candle_core::Error`, and
//! `e.find::<Error>()` from the `auto_hook::Error` that `run_with_hooks` /
//! `run_with_cache` return, so bad input can be told apart from an internal failure by
//! matching a variant.

use candle_core::{DType, Tensor};
use std::fmt;

/// `Result` with the models crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// What can go wrong when loading or running a hooked port.
///
/// ```
/// use auto_hook_models::Error;
/// // A forward returns candle's error; this crate's error is inside it, matchable.
/// let candle: candle_core::Error = Error::EmptyInput { what: "input_ids".into() }.into();
/// assert!(matches!(auto_hook::find_error::<Error>(&candle), Some(Error::EmptyInput { .. })));
/// assert_eq!(candle.to_string(), "bad input: input_ids has no tokens");
/// ```
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
    /// A GGUF file that cannot be read: truncated or corrupt, a metadata key missing or
    /// of the wrong type, a tensor of the wrong shape.
    Gguf(String),
    /// A tokenizer that cannot be built or used: a missing tokenizer field, an
    /// unsupported tokenizer model, no tokenizer on the model, a broken chat template.
    Tokenizer(String),
    /// A Hugging Face repo id that cannot be resolved: a file missing from the local
    /// cache (and, with the `hub` feature, not downloadable), or a malformed id.
    Hub(String),
    /// Bad input to a forward or to `generate` (shape, dtype, mask, sampling options).
    Input(String),
    /// An empty token sequence (`input_ids` of shape `[batch, 0]` or `[0, pos]`), or an
    /// empty prompt to `generate`.
    EmptyInput { what: String },
    /// A token id that is not in the vocabulary (`0..vocab_size`).
    TokenOutOfVocabulary {
        id: i64,
        /// Row of the batch.
        batch: usize,
        /// Position in the sequence.
        position: usize,
        vocab_size: usize,
    },
    /// An error from candle.
    Candle(candle_core::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(m) => write!(f, "config: {m}"),
            Error::Unsupported(m) => write!(f, "unsupported checkpoint: {m}"),
            Error::Io(m) => write!(f, "{m}"),
            Error::Gguf(m) => write!(f, "GGUF: {m}"),
            Error::Tokenizer(m) => write!(f, "tokenizer: {m}"),
            Error::Hub(m) => write!(f, "Hugging Face hub: {m}"),
            Error::Input(m) => write!(f, "bad input: {m}"),
            Error::EmptyInput { what } => write!(f, "bad input: {what} has no tokens"),
            Error::TokenOutOfVocabulary {
                id,
                batch,
                position,
                vocab_size,
            } => write!(
                f,
                "bad input: token id {id} at [batch {batch}, position {position}] is not in \
                 the vocabulary of {vocab_size} tokens (ids 0..={})",
                vocab_size.saturating_sub(1)
            ),
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
        auto_hook::take_error::<Error>(e).unwrap_or_else(Error::Candle)
    }
}

/// Keeps the error matchable: `auto_hook::find_error::<Error>(&e)` finds it again (see
/// [`auto_hook::carry_error`]).
impl From<Error> for candle_core::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Candle(e) => e,
            other => auto_hook::carry_error(other),
        }
    }
}

impl From<Error> for auto_hook::Error {
    fn from(e: Error) -> Self {
        auto_hook::Error::Candle(e.into())
    }
}

/// Checks `input_ids` before a forward: `[batch, pos]`, integer, not empty, every id
/// in `0..vocab_size`. Reads the ids once (they are small next to the activations).
pub(crate) fn check_token_ids(input_ids: &Tensor, vocab_size: usize) -> Result<()> {
    let (b, t) = match input_ids.dims() {
        &[b, t] => (b, t),
        dims => {
            return Err(Error::Input(format!(
                "input_ids must be [batch, pos] token ids, got shape {dims:?}"
            )))
        }
    };
    if b == 0 || t == 0 {
        return Err(Error::EmptyInput {
            what: format!("input_ids (shape [{b}, {t}])"),
        });
    }
    if !matches!(input_ids.dtype(), DType::U8 | DType::U32 | DType::I64) {
        return Err(Error::Input(format!(
            "input_ids must be integer token ids (u32, i64 or u8), got {:?}",
            input_ids.dtype()
        )));
    }
    let ids = input_ids.to_dtype(DType::I64)?.to_vec2::<i64>()?;
    for (batch, row) in ids.iter().enumerate() {
        if let Some(position) = row
            .iter()
            .position(|&id| id < 0 || id as u64 >= vocab_size as u64)
        {
            return Err(Error::TokenOutOfVocabulary {
                id: row[position],
                batch,
                position,
                vocab_size,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn token_checks_name_the_id_its_place_and_the_vocabulary() {
        let ids = Tensor::new(&[[1u32, 2, 3], [4, 64, 5]], &Device::Cpu).unwrap();
        let err = check_token_ids(&ids, 64).unwrap_err();
        assert!(matches!(
            err,
            Error::TokenOutOfVocabulary {
                id: 64,
                batch: 1,
                position: 1,
                vocab_size: 64
            }
        ));
        assert!(err.to_string().contains("ids 0..=63"), "{err}");
        assert!(check_token_ids(&ids, 65).is_ok());
        let empty = Tensor::zeros((1, 0), DType::U32, &Device::Cpu).unwrap();
        assert!(matches!(
            check_token_ids(&empty, 64),
            Err(Error::EmptyInput { .. })
        ));
        let flat = Tensor::new(&[1u32, 2], &Device::Cpu).unwrap();
        assert!(matches!(check_token_ids(&flat, 64), Err(Error::Input(_))));
        let float = Tensor::new(&[[1f32]], &Device::Cpu).unwrap();
        assert!(matches!(check_token_ids(&float, 64), Err(Error::Input(_))));
    }

    #[test]
    fn a_converted_error_round_trips_through_candle() {
        let candle: candle_core::Error = Error::Unsupported("x".into()).into();
        assert!(matches!(Error::from(candle), Error::Unsupported(_)));
        let plain = candle_core::Error::Msg("m".into());
        assert!(matches!(Error::from(plain), Error::Candle(_)));
    }
}
