//! One way for a typed error to travel inside `candle_core::Error` and be found again.
//!
//! A model's forward returns `candle_core::Result`, so the errors of the runtime, of the
//! model ports and of the SAE crate cross candle's error type on their way out. They
//! travel in candle's variant for arbitrary errors (`Error::Wrapped`, what
//! `candle_core::Error::wrap` makes), keep their own message there, and are found again
//! by type: [`find_error`] looks through candle's context, path and backtrace wrappers,
//! [`Error::find`](crate::Error::find) through a hooked run's error as well. No other
//! variant is borrowed for them: code that matches candle's device or I/O variants
//! never sees "bad input".

use std::cell::Cell;
use std::error::Error as StdError;
use std::fmt;

/// The carrier candle holds as `Box<dyn Display>`. Private: only [`carry_error`] makes one
/// and boxes it directly, which is what lets [`probe`] recognise it by its address.
struct Carried {
    error: Box<dyn StdError + Send + Sync>,
}

thread_local! {
    /// Set while [`probe`] formats a candle error: a `Carried` then reports its address
    /// instead of writing its message.
    static PROBING: Cell<bool> = const { Cell::new(false) };
    static FOUND: Cell<*const ()> = const { Cell::new(std::ptr::null()) };
}

impl fmt::Display for Carried {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if PROBING.with(Cell::get) {
            FOUND.with(|found| found.set(self as *const Carried as *const ()));
            return Ok(());
        }
        fmt::Display::fmt(&self.error, f)
    }
}

/// Puts a typed error into a `candle_core::Error` whose message is the error's own.
///
/// ```
/// use auto_hook_runtime::{carry_error, find_error, Error};
/// let err = carry_error(Error::Internal("an invariant".into()));
/// assert_eq!(err.to_string(), "internal error (a bug in auto_hook): an invariant");
/// assert!(matches!(find_error::<Error>(&err), Some(Error::Internal(_))));
/// ```
pub fn carry_error<E: StdError + Send + Sync + 'static>(error: E) -> candle_core::Error {
    carry_boxed(Box::new(error))
}

fn carry_boxed(error: Box<dyn StdError + Send + Sync>) -> candle_core::Error {
    candle_core::Error::Wrapped(Box::new(Carried { error }))
}

/// The carrier inside candle's `Wrapped` box, if that box holds one.
fn probe(wrapped: &(dyn fmt::Display + Send + Sync)) -> Option<&Carried> {
    struct Sink;
    impl fmt::Write for Sink {
        fn write_str(&mut self, _: &str) -> fmt::Result {
            Ok(())
        }
    }
    /// Ends the probe even if the foreign `Display` being probed panics.
    struct Probing;
    impl Drop for Probing {
        fn drop(&mut self) {
            PROBING.with(|p| p.set(false));
        }
    }
    FOUND.with(|found| found.set(std::ptr::null()));
    PROBING.with(|p| p.set(true));
    let probing = Probing;
    let _ = fmt::write(&mut Sink, format_args!("{wrapped}"));
    drop(probing);
    let found = FOUND.with(|found| found.replace(std::ptr::null()));
    let data = wrapped as *const (dyn fmt::Display + Send + Sync) as *const ();
    // SAFETY: `found` is the address of a `Carried` whose `fmt` ran during the probe.
    // It equals the address of the boxed value, which lives as long as `wrapped`.
    // `Carried` is private and is only ever boxed directly by `carry_error`, so a value
    // at that address whose formatting reached a `Carried` there is that `Carried`.
    (!found.is_null() && found == data).then(|| unsafe { &*(found as *const Carried) })
}

/// The typed error of type `E` carried inside a candle error (through candle's
/// context, path and backtrace wrappers), or `None`.
///
/// ```
/// use auto_hook_runtime::{carry_error, find_error, Error};
/// let err = carry_error(Error::StopAtNeverFired { names: vec!["x".into()] })
///     .context("while running the model");
/// assert!(matches!(find_error::<Error>(&err), Some(Error::StopAtNeverFired { .. })));
/// assert!(find_error::<Error>(&candle_core::Error::Msg("plain".into())).is_none());
/// ```
pub fn find_error<E: StdError + 'static>(err: &candle_core::Error) -> Option<&E> {
    use candle_core::Error as C;
    match err {
        C::Wrapped(boxed) => probe(boxed.as_ref())?.error.downcast_ref::<E>(),
        C::WrappedContext { wrapped, .. } => wrapped.downcast_ref::<E>(),
        C::Context { inner, .. } | C::WithPath { inner, .. } | C::WithBacktrace { inner, .. } => {
            find_error(inner)
        }
        _ => None,
    }
}

/// Takes the typed error of type `E` back out of a candle error that carries it at its
/// top level; any other candle error comes back unchanged.
///
/// ```
/// use auto_hook_runtime::{carry_error, take_error, Error};
/// let err = carry_error(Error::Internal("x".into()));
/// assert!(matches!(take_error::<Error>(err), Ok(Error::Internal(_))));
/// assert!(take_error::<Error>(candle_core::Error::Msg("m".into())).is_err());
/// ```
pub fn take_error<E: StdError + 'static>(
    err: candle_core::Error,
) -> std::result::Result<E, candle_core::Error> {
    let candle_core::Error::Wrapped(boxed) = err else {
        return Err(err);
    };
    if probe(boxed.as_ref()).is_none_or(|c| !c.error.is::<E>()) {
        return Err(candle_core::Error::Wrapped(boxed));
    }
    // SAFETY: `probe` found that the boxed value is a `Carried` (see there), so the box
    // was made as `Box<Carried>` by `carry_error` and can be turned back into one.
    let carried = unsafe { Box::from_raw(Box::into_raw(boxed) as *mut Carried) };
    match carried.error.downcast::<E>() {
        Ok(ours) => Ok(*ours),
        Err(error) => Err(carry_boxed(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Other;
    impl fmt::Display for Other {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("other")
        }
    }
    impl StdError for Other {}

    #[test]
    fn a_carried_error_keeps_its_message_and_is_found_by_type_only() {
        let err = carry_error(Other);
        assert_eq!(err.to_string(), "other");
        assert!(find_error::<Other>(&err).is_some());
        assert!(find_error::<crate::Error>(&err).is_none());
        let err = take_error::<crate::Error>(err).unwrap_err();
        assert!(matches!(take_error::<Other>(err), Ok(Other)));
    }

    #[test]
    fn a_wrapped_display_that_is_not_carried_is_not_found() {
        let err = candle_core::Error::Wrapped(Box::new("a plain message"));
        assert!(find_error::<Other>(&err).is_none());
        assert!(take_error::<Other>(err).is_err());
        // a foreign Display that formats a carried error is not mistaken for it
        struct Outer(candle_core::Error);
        impl fmt::Display for Outer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "outer: {}", self.0)
            }
        }
        let err = candle_core::Error::Wrapped(Box::new(Outer(carry_error(Other))));
        assert_eq!(err.to_string(), "outer: other");
        assert!(find_error::<Other>(&err).is_none());
    }

    #[test]
    fn device_variants_never_hold_a_carried_error() {
        let err = carry_error(Other);
        assert!(matches!(err, candle_core::Error::Wrapped(_)));
    }
}
