//! `auto_hook(instance)`: the hooked-root API for an already-built module.
//!
//! Rust cannot look inside a value at run time the way Python's `auto_hook(model)`
//! does, and a generic function cannot ask "is this type annotated?" on stable Rust.
//! So the wrapper's kind is chosen by a trait at the call site:
//! - a module that is not hooked (any candle `Module`: `Linear`, a candle-transformers
//!   model, your own) gets one point, `hook_point`, on its output ([`RootOnly`]);
//! - an annotated model ([`HookedModule`]) keeps every point it has ([`InnerPoints`]):
//!   its own `hook_point` is the root's. An annotated model that also implements
//!   `Module` matches both kinds, so name the kind: `auto_hook::<_, InnerPoints>(model)`
//!   (or use the model itself: it already has the whole API).

use crate::hook_point::HookPoint;
use crate::module::{HookedModule, Walker, WalkerMut};
use crate::schema::Schema;
use candle_core::{Module, Result, Tensor};
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

/// The kind of an [`AutoHooked`] wrapper: a plain module seen from outside, one point.
#[derive(Clone, Copy, Debug, Default)]
pub struct RootOnly;

/// The kind of an [`AutoHooked`] wrapper around an annotated model: every point of the
/// model, whose own `hook_point` is the root's.
#[derive(Clone, Copy, Debug, Default)]
pub struct InnerPoints;

/// What [`auto_hook`] can wrap, and as which kind: every candle `Module` as
/// [`RootOnly`], every hooked model as [`InnerPoints`].
#[diagnostic::on_unimplemented(
    message = "`auto_hook(..)` cannot wrap `{Self}`: it is neither a candle `Module` nor an #[auto_hook] model",
    note = "implement candle_core::Module for `{Self}` (one hook point on its output), or annotate it with #[auto_hook] (a point on every sub-module and parameter)"
)]
pub trait AutoHook<Kind> {}

impl<M: Module> AutoHook<RootOnly> for M {}
impl<M: HookedModule> AutoHook<InnerPoints> for M {}

/// Wraps an already-built value so it has the hooked-root API. A candle module that is
/// not annotated gets one hook point, `hook_point`, on its output: Rust cannot see
/// inside a value, so for points inside it annotate its type with `#[auto_hook]`
/// (or, for a dependency's model file, hook it at build time). An annotated model keeps
/// all its points.
///
/// ```
/// use auto_hook_runtime::{auto_hook, HookedRoot, Hooks};
/// use candle_core::{Device, Module, Tensor};
/// let relu = auto_hook(candle_nn::Activation::Relu);
/// assert_eq!(relu.hook_dict().names().collect::<Vec<_>>(), ["hook_point"]);
/// let x = Tensor::new(&[-1f32, 2.0], &Device::Cpu)?;
/// let y = relu.run_with_hooks(Hooks::new().add("hook_point", |a, _| a * 10.0), |m| m.forward(&x))?;
/// assert_eq!(y.to_vec1::<f32>()?, [0.0, 20.0]);
/// let _inner: candle_nn::Activation = relu.unwrap();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// A hooked model keeps its points (here a `Vec` of wrapped layers, which is hooked but
/// not a `Module`, so the kind is found without help):
///
/// ```
/// use auto_hook_runtime::{auto_hook, Hooked, HookedRoot};
/// let layers = vec![Hooked::new(candle_nn::Activation::Relu), Hooked::new(candle_nn::Activation::Gelu)];
/// let wrapped = auto_hook(layers);
/// assert_eq!(wrapped.hook_point_names(), ["0.hook_point", "1.hook_point"]);
/// ```
pub fn auto_hook<M: AutoHook<K>, K>(instance: M) -> AutoHooked<M, K> {
    AutoHooked {
        inner: instance,
        hook_point: HookPoint::new(),
        kind: PhantomData,
    }
}

/// A module wrapped by [`auto_hook`]; `K` is [`RootOnly`] or [`InnerPoints`].
#[derive(Debug)]
pub struct AutoHooked<M, K = RootOnly> {
    inner: M,
    hook_point: HookPoint,
    kind: PhantomData<K>,
}

impl<M: Clone, K> Clone for AutoHooked<M, K> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            hook_point: self.hook_point.clone(),
            kind: PhantomData,
        }
    }
}

impl<M, K> AutoHooked<M, K> {
    /// Gives back the original value.
    pub fn unwrap(self) -> M {
        self.inner
    }
}

impl<M> AutoHooked<M, RootOnly> {
    /// The root hook point.
    pub fn hook_point(&self) -> &HookPoint {
        &self.hook_point
    }
}

impl<M, K> Deref for AutoHooked<M, K> {
    type Target = M;
    fn deref(&self) -> &M {
        &self.inner
    }
}

/// An annotated model keeps firing its own points through `&mut`, so a `&mut self`
/// forward runs as `wrapped.run_with_hooks_mut(hooks, |m| m.forward(..))`. (A plain
/// module's `&mut` methods would bypass the wrapper's one point, so `RootOnly` has none.)
impl<M> DerefMut for AutoHooked<M, InnerPoints> {
    fn deref_mut(&mut self) -> &mut M {
        &mut self.inner
    }
}

impl<M: Module> Module for AutoHooked<M, RootOnly> {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.hook_point.fire(self.inner.forward(xs)?)
    }
}

/// The annotated model fires its own points, its own `hook_point` included.
impl<M: Module + HookedModule> Module for AutoHooked<M, InnerPoints> {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.inner.forward(xs)
    }
}

impl<M> HookedModule for AutoHooked<M, RootOnly> {
    const SCHEMA: Schema = Schema::Struct(&[("hook_point", &Schema::Point)]);
    fn visit_hooks<'s>(&'s self, walker: &mut Walker<'_, 's>) {
        walker.module(std::any::type_name::<M>());
        walker.child("hook_point", &self.hook_point);
    }
    fn visit_hooks_mut(&mut self, walker: &mut WalkerMut<'_>) {
        walker.child("hook_point", &mut self.hook_point);
    }
}

impl<M: HookedModule> HookedModule for AutoHooked<M, InnerPoints> {
    const SCHEMA: Schema = M::SCHEMA;
    fn visit_hooks<'s>(&'s self, walker: &mut Walker<'_, 's>) {
        self.inner.visit_hooks(walker);
    }
    fn visit_hooks_mut(&mut self, walker: &mut WalkerMut<'_>) {
        self.inner.visit_hooks_mut(walker);
    }
}
