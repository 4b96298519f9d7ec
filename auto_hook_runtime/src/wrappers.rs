//! Wrappers that `#[auto_hook]` puts around a struct's fields: [`Hooked`] for candle
//! modules, [`HookedT`] for train-mode modules, [`Param`] for tensor parameters. Each
//! dereferences to what it wraps, so the user's code keeps calling the same methods.

use crate::hook_point::HookPoint;
use crate::module::{HookedModule, Walker, WalkerMut};
use crate::schema::Schema;
use candle_core::{Module, ModuleT, Result, Tensor};
use std::ops::{Deref, DerefMut};

const WRAPPER_SCHEMA: Schema = Schema::Struct(&[("hook_point", &Schema::Point)]);

macro_rules! wrapper_common {
    ($name:ident) => {
        impl<M> $name<M> {
            /// Wraps `inner`; its output will pass through a new hook point.
            pub fn new(inner: M) -> Self {
                Self {
                    inner,
                    hook_point: HookPoint::new(),
                }
            }
            /// The wrapped module.
            pub fn inner(&self) -> &M {
                &self.inner
            }
            /// Gives back the wrapped module.
            pub fn into_inner(self) -> M {
                self.inner
            }
            /// The hook point on the module's output.
            pub fn hook_point(&self) -> &HookPoint {
                &self.hook_point
            }
        }

        impl<M> Deref for $name<M> {
            type Target = M;
            fn deref(&self) -> &M {
                &self.inner
            }
        }

        impl<M> DerefMut for $name<M> {
            fn deref_mut(&mut self) -> &mut M {
                &mut self.inner
            }
        }

        impl<M> From<M> for $name<M> {
            fn from(inner: M) -> Self {
                Self::new(inner)
            }
        }

        impl<M> HookedModule for $name<M> {
            const SCHEMA: Schema = WRAPPER_SCHEMA;
            fn visit_hooks<'s>(&'s self, walker: &mut Walker<'_, 's>) {
                walker.module(std::any::type_name::<M>());
                walker.child("hook_point", &self.hook_point);
            }
            fn visit_hooks_mut(&mut self, walker: &mut WalkerMut<'_>) {
                walker.child("hook_point", &mut self.hook_point);
            }
        }
    };
}

/// A candle [`Module`] whose output passes through `hook_point`.
///
/// ```
/// use auto_hook_runtime::Hooked;
/// use candle_core::{Device, Module, Tensor};
/// let relu = Hooked::new(candle_nn::Activation::Relu);
/// let y = relu.forward(&Tensor::new(&[-1f32, 2.0], &Device::Cpu)?)?;
/// assert_eq!(y.to_vec1::<f32>()?, [0.0, 2.0]);
/// # Ok::<(), candle_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Hooked<M> {
    inner: M,
    hook_point: HookPoint,
}

wrapper_common!(Hooked);

impl<M: Module> Module for Hooked<M> {
    #[inline]
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.hook_point.fire(self.inner.forward(xs)?)
    }
}

/// A candle [`ModuleT`] (a module with a train flag, such as `Dropout` or `BatchNorm`)
/// whose output passes through `hook_point`.
///
/// ```
/// use auto_hook_runtime::HookedT;
/// use candle_core::{Device, ModuleT, Tensor};
/// let dropout = HookedT::new(candle_nn::Dropout::new(0.5));
/// let x = Tensor::ones(4, candle_core::DType::F32, &Device::Cpu)?;
/// assert_eq!(dropout.forward_t(&x, false)?.to_vec1::<f32>()?, [1.0; 4]);
/// # Ok::<(), candle_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct HookedT<M> {
    inner: M,
    hook_point: HookPoint,
}

wrapper_common!(HookedT);

impl<M: ModuleT> ModuleT for HookedT<M> {
    #[inline]
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        self.hook_point.fire(self.inner.forward_t(xs, train)?)
    }
}

impl HookedT<candle_nn::Dropout> {
    /// `Dropout::forward`, hooked (shadows the inner inherent method).
    pub fn forward(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_t(xs, train)
    }
}

/// A tensor parameter (a `Tensor` field of an `#[auto_hook]` struct). Inside annotated
/// methods, the result of each arithmetic use of the parameter passes through
/// `hook_point`; everywhere else it reads like the tensor it wraps.
///
/// ```
/// use auto_hook_runtime::Param;
/// use candle_core::{Device, Tensor};
/// let w = Param::new(Tensor::eye(2, candle_core::DType::F32, &Device::Cpu)?);
/// assert_eq!(w.dims(), [2, 2]);
/// # Ok::<(), candle_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Param {
    tensor: Tensor,
    hook_point: HookPoint,
}

impl Param {
    /// Wraps a tensor as a hooked parameter.
    pub fn new(tensor: Tensor) -> Self {
        Self {
            tensor,
            hook_point: HookPoint::new(),
        }
    }
    /// The parameter's value.
    pub fn tensor(&self) -> &Tensor {
        &self.tensor
    }
    /// The hook point that arithmetic results of this parameter pass through.
    pub fn hook_point(&self) -> &HookPoint {
        &self.hook_point
    }
    /// Gives back the tensor.
    pub fn into_tensor(self) -> Tensor {
        self.tensor
    }
    /// Replaces the value (state such as a cache); the hook point stays.
    pub fn set(&mut self, tensor: Tensor) {
        self.tensor = tensor;
    }
}

impl Deref for Param {
    type Target = Tensor;
    fn deref(&self) -> &Tensor {
        &self.tensor
    }
}

impl AsRef<Tensor> for Param {
    fn as_ref(&self) -> &Tensor {
        &self.tensor
    }
}

impl From<Tensor> for Param {
    fn from(tensor: Tensor) -> Self {
        Self::new(tensor)
    }
}

impl From<Param> for Tensor {
    fn from(p: Param) -> Tensor {
        p.tensor
    }
}

impl HookedModule for Param {
    const SCHEMA: Schema = WRAPPER_SCHEMA;
    fn visit_hooks<'s>(&'s self, walker: &mut Walker<'_, 's>) {
        walker.child("hook_point", &self.hook_point);
    }
    fn visit_hooks_mut(&mut self, walker: &mut WalkerMut<'_>) {
        walker.child("hook_point", &mut self.hook_point);
    }
}
