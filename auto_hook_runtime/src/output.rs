//! Forward outputs: which tensor of a forward's output the struct's own hook point sees.

use crate::hook_point::HookPoint;
use candle_core::{Result, Tensor};

/// A forward output whose first tensor can pass through a hook point; the rest passes
/// through untouched. Implemented for `Tensor`, tuples whose first element is an output,
/// and `Vec<Tensor>`; implement it for your own output struct to hook it.
///
/// ```
/// use auto_hook_runtime::{HookOutput, HookPoint};
/// use candle_core::{Device, Result, Tensor};
/// struct Out { logits: Tensor, n_tokens: usize }
/// impl HookOutput for Out {
///     fn fire_first(self, point: &HookPoint) -> Result<Self> {
///         Ok(Out { logits: point.fire(self.logits)?, ..self })
///     }
/// }
/// let out = Out { logits: Tensor::zeros(2, candle_core::DType::F32, &Device::Cpu)?, n_tokens: 2 };
/// assert_eq!(out.fire_first(&HookPoint::new())?.n_tokens, 2);
/// # Ok::<(), candle_core::Error>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "auto_hook cannot hook a forward that returns `{Self}`",
    note = "return `Result<Tensor>`, a tuple that starts with a Tensor, or implement `auto_hook::HookOutput` for your output type"
)]
pub trait HookOutput: Sized {
    /// Passes the first tensor through `point`.
    fn fire_first(self, point: &HookPoint) -> Result<Self>;
}

impl HookOutput for Tensor {
    #[inline]
    fn fire_first(self, point: &HookPoint) -> Result<Self> {
        point.fire(self)
    }
}

impl HookOutput for Vec<Tensor> {
    fn fire_first(mut self, point: &HookPoint) -> Result<Self> {
        if let Some(first) = self.first_mut() {
            *first = point.fire(first.clone())?;
        }
        Ok(self)
    }
}

macro_rules! tuple_output {
    ($($rest:ident),*) => {
        impl<A: HookOutput, $($rest),*> HookOutput for (A, $($rest),*) {
            #[allow(non_snake_case)]
            fn fire_first(self, point: &HookPoint) -> Result<Self> {
                let (a, $($rest),*) = self;
                Ok((a.fire_first(point)?, $($rest),*))
            }
        }
    };
}

tuple_output!(B);
tuple_output!(B, C);
tuple_output!(B, C, D);
tuple_output!(B, C, D, E);

/// The return type of an annotated forward: a `Result` of a [`HookOutput`], with any
/// error type that candle errors convert into (`candle_core::Error`, `anyhow::Error`, ...).
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "auto_hook cannot hook a forward that returns `{Self}`",
    note = "a hooked forward returns `Result<T, E>` where T is a Tensor (or a tuple starting with one, or implements `HookOutput`) and E: From<candle_core::Error>"
)]
pub trait ForwardReturn: Sized {
    fn fire_output(self, point: &HookPoint) -> Self;
}

impl<T: HookOutput, E: From<candle_core::Error>> ForwardReturn for std::result::Result<T, E> {
    #[inline]
    fn fire_output(self, point: &HookPoint) -> Self {
        match self {
            Ok(out) => out.fire_first(point).map_err(E::from),
            Err(e) => Err(e),
        }
    }
}
