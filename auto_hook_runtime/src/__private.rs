//! Items used by the code that `#[auto_hook]` generates. Not a public API.

pub use crate::module::{HookedField, Walker, WalkerMut};
pub use crate::output::ForwardReturn;
pub use crate::schema::Schema;
pub use crate::suggest::UnknownName;
use crate::wrappers::Param;
use candle_core::Tensor;

/// The own output hook point of an `#[auto_hook]` struct.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an #[auto_hook] struct",
    note = "put #[auto_hook] on the definition of `{Self}` as well as on its impl blocks"
)]
pub trait OwnHookPoint {
    /// `None` for a data struct (one that `#[auto_hook]` left as it is).
    fn own_hook_point(&self) -> Option<&crate::HookPoint>;
}

/// `<OwnProbe<Self>>::own_hook_point(self)` in a hooked forward: the struct's own point
/// when `Self` is an annotated struct, `None` for any other type (an enum of modules, a
/// type whose definition carries no attribute), decided by the compiler.
pub struct OwnProbe<T: ?Sized>(std::marker::PhantomData<T>);

impl<T: OwnHookPoint + ?Sized> OwnProbe<T> {
    #[inline]
    pub fn own_hook_point(value: &T) -> Option<&crate::HookPoint> {
        value.own_hook_point()
    }
}

/// What [`OwnProbe`] gives a type that is not an annotated struct: no point.
pub trait NoOwnHookPoint<T: ?Sized> {
    #[inline]
    fn own_hook_point(_value: &T) -> Option<&crate::HookPoint> {
        None
    }
}

impl<T: ?Sized> NoOwnHookPoint<T> for OwnProbe<T> {}

/// Implemented by the annotated impl blocks that wrap a forward of `Self` (one slot `K`
/// per trait and method name): the struct lists its own `hook_point` only then.
pub trait HasForward<const K: u8> {}

/// `<ForwardProbe<T, K>>::YES`: whether `T: HasForward<K>`, decided by the compiler
/// ([`NoForward`] answers `false` for other types).
pub struct ForwardProbe<T: ?Sized, const K: u8>(std::marker::PhantomData<T>);

impl<T: HasForward<K> + ?Sized, const K: u8> ForwardProbe<T, K> {
    pub const YES: bool = true;
}

/// What [`ForwardProbe`] answers for a type without that forward.
pub trait NoForward {
    const YES: bool = false;
}

impl<T: ?Sized, const K: u8> NoForward for ForwardProbe<T, K> {}

/// `<ModuleProbe<T>>::IS_MODULE`: whether `T: candle_core::Module`, decided by the
/// compiler ([`NotModule`] answers `false` for other types). An annotated struct that is
/// a `Module` without an annotated forward is a compile error (a forgotten attribute).
pub struct ModuleProbe<T: ?Sized>(std::marker::PhantomData<T>);

impl<T: candle_core::Module + ?Sized> ModuleProbe<T> {
    pub const IS_MODULE: bool = true;
}

/// What [`ModuleProbe`] answers for a type that is not a `Module`.
pub trait NotModule {
    const IS_MODULE: bool = false;
}

impl<T: ?Sized> NotModule for ModuleProbe<T> {}

/// `&self.param` in annotated methods reads as `&Tensor`, as the field was written;
/// any other field keeps its type ([`RefOther`]).
pub trait RefParam<'a> {
    fn field_ref(&self) -> &'a Tensor;
}

impl<'a> RefParam<'a> for Probe<'a, Param> {
    #[inline]
    fn field_ref(&self) -> &'a Tensor {
        self.0.tensor()
    }
}

pub trait RefOther<'a, T: ?Sized> {
    fn field_ref(&self) -> &'a T;
}

impl<'a, T: ?Sized> RefOther<'a, T> for &Probe<'a, T> {
    #[inline]
    fn field_ref(&self) -> &'a T {
        self.0
    }
}

/// Passes a forward's output through the struct's own hook point.
#[inline]
pub fn fire_output<R: ForwardReturn>(point: Option<&crate::HookPoint>, out: R) -> R {
    match point {
        Some(point) => out.fire_output(point),
        None => out,
    }
}

/// A field whose type the macro does not know: `<FieldProbe<T>>::visit` walks it when
/// `T` is a [`HookedModule`](crate::HookedModule) (an annotated struct, a container of
/// them) and does nothing otherwise ([`ProbeFallback`]), decided by the compiler.
pub struct FieldProbe<T: ?Sized>(std::marker::PhantomData<T>);

impl<T: crate::HookedModule> FieldProbe<T> {
    pub const SCHEMA: &'static Schema = &T::SCHEMA;

    #[inline]
    pub fn visit<'s>(segment: &str, value: &'s T, walker: &mut Walker<'_, 's>) {
        walker.child(segment, value);
    }

    #[inline]
    pub fn visit_mut(segment: &str, value: &mut T, walker: &mut WalkerMut<'_>) {
        walker.child(segment, value);
    }
}

/// What [`FieldProbe`] does for a type without hook points: nothing.
pub trait ProbeFallback<T: ?Sized> {
    const SCHEMA: &'static Schema = &Schema::Struct(&[]);

    #[inline]
    fn visit<'s>(_segment: &str, _value: &'s T, _walker: &mut Walker<'_, 's>) {}

    #[inline]
    fn visit_mut(_segment: &str, _value: &mut T, _walker: &mut WalkerMut<'_>) {}
}

impl<T: ?Sized> ProbeFallback<T> for FieldProbe<T> {}

pub use crate::param_ops::Assign;

/// `place = value` in annotated methods (see [`Assign`]).
#[inline]
pub fn assign<T: Assign<V>, V>(place: &mut T, value: V) {
    place.assign_value(value);
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

/// `&self.field` given to a module call (`emb.forward(&self.position_ids)`): a
/// parameter fires its point on its value ([`ReadParam`]); any other field is passed as
/// it is ([`ReadOther`]).
pub trait ReadParam<'a> {
    fn read_arg(&self) -> candle_core::Result<std::borrow::Cow<'a, Tensor>>;
}

impl<'a> ReadParam<'a> for Probe<'a, Param> {
    #[inline]
    fn read_arg(&self) -> candle_core::Result<std::borrow::Cow<'a, Tensor>> {
        let point = self.0.hook_point();
        if !point.is_observed() {
            return Ok(std::borrow::Cow::Borrowed(self.0.tensor()));
        }
        point
            .fire(self.0.tensor().clone())
            .map(std::borrow::Cow::Owned)
    }
}

pub trait ReadOther<'a, T: ?Sized> {
    fn read_arg(&self) -> candle_core::Result<&'a T>;
}

impl<'a, T: ?Sized> ReadOther<'a, T> for &Probe<'a, T> {
    #[inline]
    fn read_arg(&self) -> candle_core::Result<&'a T> {
        Ok(self.0)
    }
}

/// Autoref specialisation in the generated constructor of a struct without type
/// parameters: a hooked one joins `auto_hook`'s registry, a data one does nothing.
pub struct TypeProbe<T: ?Sized>(std::marker::PhantomData<T>);

impl<T: ?Sized> TypeProbe<T> {
    #[inline]
    pub fn new() -> Self {
        Self(std::marker::PhantomData)
    }
}

impl<T: ?Sized> Default for TypeProbe<T> {
    fn default() -> Self {
        Self::new()
    }
}

pub trait RegisterHooked {
    fn register(&self);
}

impl<T: crate::HookedModule + 'static> RegisterHooked for TypeProbe<T> {
    #[inline]
    fn register(&self) {
        crate::instance::register_hooked::<T>();
    }
}

pub trait RegisterNothing {
    fn register(&self);
}

impl<T: ?Sized> RegisterNothing for &TypeProbe<T> {
    #[inline]
    fn register(&self) {}
}

/// Autoref specialisation for memo guards: whether a field is a parameter whose hook
/// point is hooked in the current call (false for any other field).
pub trait ParamHooked {
    fn param_hooked(&self) -> bool;
}

impl ParamHooked for Probe<'_, Param> {
    #[inline]
    fn param_hooked(&self) -> bool {
        self.0.hook_point().is_hooked()
    }
}

impl ParamHooked for Probe<'_, Option<Param>> {
    #[inline]
    fn param_hooked(&self) -> bool {
        self.0.as_ref().is_some_and(|p| p.hook_point().is_hooked())
    }
}

impl ParamHooked for Probe<'_, Vec<Param>> {
    #[inline]
    fn param_hooked(&self) -> bool {
        self.0.iter().any(|p| p.hook_point().is_hooked())
    }
}

pub trait OtherHooked {
    fn param_hooked(&self) -> bool;
}

impl<T: ?Sized> OtherHooked for &Probe<'_, T> {
    #[inline]
    fn param_hooked(&self) -> bool {
        false
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

/// `Arc<M>` / `Rc<M>` fields of modules: a new handle around a converted copy.
pub trait Shared<T> {
    type To<U>;
    fn share<U>(&self, value: U) -> Self::To<U>;
}

impl<T> Shared<T> for std::sync::Arc<T> {
    type To<U> = std::sync::Arc<U>;
    fn share<U>(&self, value: U) -> std::sync::Arc<U> {
        std::sync::Arc::new(value)
    }
}

impl<T> Shared<T> for std::rc::Rc<T> {
    type To<U> = std::rc::Rc<U>;
    fn share<U>(&self, value: U) -> std::rc::Rc<U> {
        std::rc::Rc::new(value)
    }
}

/// `(&Probe(&shared)).unshare()`: a hooked value behind an `Arc` / `Rc` is copied into a
/// handle of its own (new hook points, so two holders never share a point); anything
/// else keeps its handle ([`KeepShared`]).
pub trait UnshareHooked<S> {
    fn unshare(&self) -> S;
}

impl<T: crate::HookedModule + Clone> UnshareHooked<std::sync::Arc<T>>
    for Probe<'_, std::sync::Arc<T>>
{
    fn unshare(&self) -> std::sync::Arc<T> {
        std::sync::Arc::new((**self.0).clone())
    }
}

impl<T: crate::HookedModule + Clone> UnshareHooked<std::rc::Rc<T>> for Probe<'_, std::rc::Rc<T>> {
    fn unshare(&self) -> std::rc::Rc<T> {
        std::rc::Rc::new((**self.0).clone())
    }
}

pub trait KeepShared<S> {
    fn unshare(&self) -> S;
}

impl<S: Clone> KeepShared<S> for &Probe<'_, S> {
    fn unshare(&self) -> S {
        self.0.clone()
    }
}
