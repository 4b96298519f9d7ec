//! `auto_hook(instance)`: the hooked-root API for an already-built module.

use crate::hook_point::HookPoint;
use crate::module::{HookedModule, Walker, WalkerMut};
use crate::schema::Schema;
use candle_core::{Module, Result, Tensor};
use std::ops::Deref;

/// Wraps any built value that implements candle's `Module` (annotated or not) so it has
/// the hooked-root API, with one hook point, `hook_point`, on its output.
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
pub fn auto_hook<M: Module>(instance: M) -> AutoHooked<M> {
    AutoHooked {
        inner: instance,
        hook_point: HookPoint::new(),
    }
}

/// A module wrapped by [`auto_hook`].
#[derive(Clone, Debug)]
pub struct AutoHooked<M> {
    inner: M,
    hook_point: HookPoint,
}

impl<M> AutoHooked<M> {
    /// Gives back the original value.
    pub fn unwrap(self) -> M {
        self.inner
    }

    /// The root hook point.
    pub fn hook_point(&self) -> &HookPoint {
        &self.hook_point
    }
}

impl<M> Deref for AutoHooked<M> {
    type Target = M;
    fn deref(&self) -> &M {
        &self.inner
    }
}

impl<M: Module> Module for AutoHooked<M> {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.hook_point.fire(self.inner.forward(xs)?)
    }
}

impl<M> HookedModule for AutoHooked<M> {
    const SCHEMA: Schema = Schema::Struct(&[("hook_point", &Schema::Point)]);
    fn visit_hooks<'s>(&'s self, walker: &mut Walker<'_, 's>) {
        walker.module(std::any::type_name::<M>());
        walker.child("hook_point", &self.hook_point);
    }
    fn visit_hooks_mut(&mut self, walker: &mut WalkerMut<'_>) {
        walker.child("hook_point", &mut self.hook_point);
    }
}
