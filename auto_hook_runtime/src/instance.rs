//! `auto_hook(instance)`: the hooked-root API for an already-built module.
//!
//! Rust cannot look inside a value at run time the way Python's `auto_hook(model)`
//! does, and a generic function cannot ask "is this type annotated?" on stable Rust.
//! So the wrapper's kind comes from the type, and for a candle `Module` from a registry
//! that every annotated struct (without generics) joins when it is built:
//! - a candle `Module` ([`RootOnly`]): an annotated model keeps every point it has (its
//!   own `hook_point` is the root's); any other module (`Linear`, a candle-transformers
//!   model, your own) gets one point, `hook_point`, on its output;
//! - an annotated model that is not a `Module` (its forward takes other arguments) and
//!   the runtime's containers of hooked values ([`InnerPoints`]) keep their points.
//!
//! An annotated struct with type parameters is not registered (it cannot be named as a
//! `'static` type where it is built): wrapped as a `Module`, it gets only the root
//! point; use the model itself, which has the whole API already.

use crate::hook_point::HookPoint;
use crate::module::{HookedModule, Walker, WalkerMut};
use crate::schema::Schema;
use candle_core::{Module, Result, Tensor};
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::{OnceLock, RwLock};

/// The kind of an [`AutoHooked`] wrapper: a plain module seen from outside, one point.
#[derive(Clone, Copy, Debug, Default)]
pub struct RootOnly;

/// The kind of an [`AutoHooked`] wrapper around an annotated model: every point of the
/// model, whose own `hook_point` is the root's.
///
/// `SLOT` tells apart the kinds an annotated type gets from each of its inherent
/// forwards (generated code); write plain `InnerPoints`.
#[derive(Clone, Copy, Debug, Default)]
pub struct InnerPoints<const SLOT: u8 = 0>;

/// What [`auto_hook`] can wrap, and as which kind: every candle `Module` as
/// [`RootOnly`] (with the model's own points when it is annotated); annotated models
/// that are not a `Module`, and containers of hooked values, as [`InnerPoints`].
#[diagnostic::on_unimplemented(
    message = "`auto_hook(..)` cannot wrap `{Self}`: it is neither a candle `Module` nor an #[auto_hook] model",
    note = "implement candle_core::Module for `{Self}` (one hook point on its output), or annotate it with #[auto_hook] (a point on every sub-module and parameter)"
)]
pub trait AutoHook<Kind> {
    /// For a candle `Module` that is an annotated model: how to walk its points.
    #[doc(hidden)]
    fn inner_points() -> Option<&'static Vtable> {
        None
    }
}

impl<M: Module + 'static> AutoHook<RootOnly> for M {
    fn inner_points() -> Option<&'static Vtable> {
        registered::<M>()
    }
}
impl<T: HookedModule> AutoHook<InnerPoints> for Vec<T> {}
impl<T: HookedModule, const N: usize> AutoHook<InnerPoints> for [T; N] {}
impl<T: HookedModule> AutoHook<InnerPoints> for Option<T> {}
impl<T: HookedModule> AutoHook<InnerPoints> for Box<T> {}
impl<K: AsRef<str>, T: HookedModule> AutoHook<InnerPoints> for std::collections::BTreeMap<K, T> {}
impl<K: AsRef<str> + Eq + std::hash::Hash, T: HookedModule, S> AutoHook<InnerPoints>
    for std::collections::HashMap<K, T, S>
{
}

/// How to walk an annotated type seen as `dyn Any` (a [`RootOnly`] wrapper of it).
#[derive(Debug)]
#[doc(hidden)]
pub struct Vtable {
    visit: for<'a, 's> fn(&'s dyn Any, &mut Walker<'a, 's>),
    visit_mut: fn(&mut dyn Any, &mut WalkerMut<'_>),
    schema: &'static Schema,
}

fn visit_as<'s, M: HookedModule + 'static>(model: &'s dyn Any, walker: &mut Walker<'_, 's>) {
    if let Some(model) = model.downcast_ref::<M>() {
        model.visit_hooks(walker);
    }
}

fn visit_mut_as<M: HookedModule + 'static>(model: &mut dyn Any, walker: &mut WalkerMut<'_>) {
    if let Some(model) = model.downcast_mut::<M>() {
        model.visit_hooks_mut(walker);
    }
}

type Registry = RwLock<HashMap<TypeId, &'static Vtable>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// Records that `M` is an annotated model (called by its generated constructor), so
/// that `auto_hook` of one keeps its points.
#[doc(hidden)]
pub fn register_hooked<M: HookedModule + 'static>() {
    let id = TypeId::of::<M>();
    let known = registry().read().map_or(true, |r| r.contains_key(&id));
    if !known {
        let vtable = Box::leak(Box::new(Vtable {
            visit: visit_as::<M>,
            visit_mut: visit_mut_as::<M>,
            schema: M::SCHEMA_REF,
        }));
        if let Ok(mut r) = registry().write() {
            r.entry(id).or_insert(vtable);
        }
    }
}

fn registered<M: 'static>() -> Option<&'static Vtable> {
    registry().read().ok()?.get(&TypeId::of::<M>()).copied()
}

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
        inner_points: M::inner_points(),
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
    /// Set for a `RootOnly` wrapper of an annotated model: its own points are walked.
    inner_points: Option<&'static Vtable>,
    kind: PhantomData<K>,
}

impl<M: Clone, K> Clone for AutoHooked<M, K> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            hook_point: self.hook_point.clone(),
            inner_points: self.inner_points,
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
    /// The root hook point (not listed when the wrapped model is annotated: its own
    /// `hook_point` is the root's then).
    pub fn hook_point(&self) -> &HookPoint {
        &self.hook_point
    }

    /// Whether the wrapped module is an annotated model whose points are listed.
    pub fn has_inner_points(&self) -> bool {
        self.inner_points.is_some()
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
/// module's own methods, through `&` or `&mut`, bypass the wrapper's one point: only
/// the wrapper's `forward` fires it.)
impl<M, K> DerefMut for AutoHooked<M, K> {
    fn deref_mut(&mut self) -> &mut M {
        &mut self.inner
    }
}

impl<M: Module> Module for AutoHooked<M, RootOnly> {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let out = self.inner.forward(xs)?;
        if self.inner_points.is_some() {
            // the annotated model fired its own points, its own `hook_point` included
            return Ok(out);
        }
        self.hook_point.fire(out)
    }
}

/// The annotated model fires its own points, its own `hook_point` included.
impl<M: Module + HookedModule, const S: u8> Module for AutoHooked<M, InnerPoints<S>> {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.inner.forward(xs)
    }
}

/// The compile-time layout is the root point's; the run-time walk (and [`schema`]) is
/// the annotated model's when it is one.
///
/// [`schema`]: HookedModule::schema
impl<M: 'static> HookedModule for AutoHooked<M, RootOnly> {
    const SCHEMA: Schema = Schema::Struct(&[("hook_point", &Schema::Point)]);
    fn visit_hooks<'s>(&'s self, walker: &mut Walker<'_, 's>) {
        if let Some(inner) = self.inner_points {
            return (inner.visit)(&self.inner, walker);
        }
        walker.module(std::any::type_name::<M>());
        walker.child("hook_point", &self.hook_point);
    }
    fn visit_hooks_mut(&mut self, walker: &mut WalkerMut<'_>) {
        if let Some(inner) = self.inner_points {
            return (inner.visit_mut)(&mut self.inner, walker);
        }
        walker.child("hook_point", &mut self.hook_point);
    }
    fn schema(&self) -> &'static Schema {
        self.inner_points
            .map_or(Self::SCHEMA_REF, |inner| inner.schema)
    }
}

impl<M: HookedModule, const S: u8> HookedModule for AutoHooked<M, InnerPoints<S>> {
    const SCHEMA: Schema = M::SCHEMA;
    fn visit_hooks<'s>(&'s self, walker: &mut Walker<'_, 's>) {
        self.inner.visit_hooks(walker);
    }
    fn visit_hooks_mut(&mut self, walker: &mut WalkerMut<'_>) {
        self.inner.visit_hooks_mut(walker);
    }
}
