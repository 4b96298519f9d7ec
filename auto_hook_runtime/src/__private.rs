//! Items used by the code that `#[auto_hook]` generates. Not a public API.

pub use crate::module::{HookedField, Walker, WalkerMut};
pub use crate::output::ForwardReturn;
pub use crate::schema::Schema;
use crate::wrappers::Param;
use candle_core::Tensor;

/// The own output hook point of an `#[auto_hook]` struct.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an #[auto_hook] struct",
    note = "put #[auto_hook] on the definition of `{Self}` as well as on its impl blocks"
)]
pub trait OwnHookPoint {
    fn own_hook_point(&self) -> &crate::HookPoint;
}

/// Passes a forward's output through the struct's own hook point.
#[inline]
pub fn fire_output<R: ForwardReturn>(point: &crate::HookPoint, out: R) -> R {
    out.fire_output(point)
}

/// A value that an arithmetic use of a parameter produced.
pub trait ParamResult: Sized {
    fn fire_param(self, param: &Param) -> Self;
}

impl<E: From<candle_core::Error>> ParamResult for Result<Tensor, E> {
    #[inline]
    fn fire_param(self, param: &Param) -> Self {
        match self {
            Ok(t) => param.hook_point().fire(t).map_err(E::from),
            Err(e) => Err(e),
        }
    }
}

/// Autoref specialisation: `(&Probe(&self.field)).fire_use(result)` fires the field's hook
/// point when the field is a [`Param`] and is the identity otherwise. The macro cannot see
/// field types from an impl block, so it probes every `self.field` in arithmetic.
pub struct Probe<'a, T: ?Sized>(pub &'a T);

pub trait FireParam {
    fn fire_use<R: ParamResult>(&self, result: R) -> R;
}

impl FireParam for Probe<'_, Param> {
    #[inline]
    fn fire_use<R: ParamResult>(&self, result: R) -> R {
        result.fire_param(self.0)
    }
}

/// An optional parameter (`Option<Tensor>` field) used through `Some(b)`.
impl FireParam for Probe<'_, Option<Param>> {
    #[inline]
    fn fire_use<R: ParamResult>(&self, result: R) -> R {
        match self.0 {
            Some(param) => result.fire_param(param),
            None => result,
        }
    }
}

pub trait FireNothing {
    fn fire_use<R>(&self, result: R) -> R;
}

impl<T: ?Sized> FireNothing for &Probe<'_, T> {
    #[inline]
    fn fire_use<R>(&self, result: R) -> R {
        result
    }
}

/// `self.param.clone()` in annotated methods keeps meaning "clone the tensor".
pub trait CloneParam {
    fn clone_field(&self) -> Tensor;
}

impl CloneParam for Probe<'_, Param> {
    #[inline]
    fn clone_field(&self) -> Tensor {
        self.0.tensor().clone()
    }
}

pub trait CloneOther {
    type Cloned;
    fn clone_field(&self) -> Self::Cloned;
}

impl<T: Clone> CloneOther for &Probe<'_, T> {
    type Cloned = T;
    #[inline]
    fn clone_field(&self) -> T {
        self.0.clone()
    }
}
