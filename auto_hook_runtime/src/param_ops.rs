//! Operators on [`Param`]: a parameter field reads like the tensor it wraps in every
//! expression that compiles for a `Tensor` (`&self.w + 1.0`, `x * &self.w`,
//! `(&self.a - &self.b)?`), and a tensor can be stored into it (state such as a cache).

use crate::wrappers::Param;
use candle_core::{Result, Tensor};
use std::borrow::Borrow;

impl Borrow<Tensor> for Param {
    fn borrow(&self) -> &Tensor {
        self.tensor()
    }
}

impl Borrow<Tensor> for &Param {
    fn borrow(&self) -> &Tensor {
        self.tensor()
    }
}

macro_rules! param_op {
    ($trait:ident, $fn:ident) => {
        param_op!(@rhs $trait, $fn, Tensor, &Tensor, &Param, Param, Result<Tensor>, f64);

        impl std::ops::$trait<&Param> for f64 {
            type Output = Result<Tensor>;
            fn $fn(self, rhs: &Param) -> Result<Tensor> {
                std::ops::$trait::$fn(self, rhs.tensor().clone())
            }
        }

        impl std::ops::$trait<Param> for f64 {
            type Output = Result<Tensor>;
            fn $fn(self, rhs: Param) -> Result<Tensor> {
                std::ops::$trait::$fn(self, rhs.into_tensor())
            }
        }

        impl std::ops::$trait<Param> for Result<Tensor> {
            type Output = Result<Tensor>;
            fn $fn(self, rhs: Param) -> Result<Tensor> {
                std::ops::$trait::$fn(self, rhs.tensor())
            }
        }

        // `Tensor op &Param` and `&Tensor op &Param`: candle's own impls, through `Borrow`.
        impl std::ops::$trait<&Param> for Result<Tensor> {
            type Output = Result<Tensor>;
            fn $fn(self, rhs: &Param) -> Result<Tensor> {
                std::ops::$trait::$fn(self, rhs.tensor())
            }
        }
    };
    (@rhs $trait:ident, $fn:ident, $($rhs:ty),*) => {$(
        impl std::ops::$trait<$rhs> for &Param {
            type Output = Result<Tensor>;
            fn $fn(self, rhs: $rhs) -> Result<Tensor> {
                std::ops::$trait::$fn(self.tensor(), param_op!(@arg rhs, $rhs))
            }
        }

        /// A parameter by value (a field moved out of a destructured struct).
        impl std::ops::$trait<$rhs> for Param {
            type Output = Result<Tensor>;
            fn $fn(self, rhs: $rhs) -> Result<Tensor> {
                std::ops::$trait::$fn(self.tensor(), param_op!(@arg rhs, $rhs))
            }
        }
    )*};
    (@arg $v:ident, &Param) => { $v.tensor() };
    (@arg $v:ident, Param) => { $v.tensor() };
    (@arg $v:ident, $other:ty) => { $v };
}

param_op!(Add, add);
param_op!(Sub, sub);
param_op!(Mul, mul);
param_op!(Div, div);

/// Stores a value into a field: the value as it is, or, for a parameter field, a
/// tensor (the field keeps its hook point). Annotated methods assign fields through it.
#[doc(hidden)]
pub trait Assign<V> {
    fn assign_value(&mut self, value: V);
}

impl<T> Assign<T> for T {
    #[inline]
    fn assign_value(&mut self, value: T) {
        *self = value;
    }
}

impl Assign<Tensor> for Param {
    #[inline]
    fn assign_value(&mut self, value: Tensor) {
        self.set(value);
    }
}

impl<const N: usize> Assign<[Tensor; N]> for [Param; N] {
    fn assign_value(&mut self, value: [Tensor; N]) {
        for (p, t) in self.iter_mut().zip(value) {
            p.set(t);
        }
    }
}

impl Assign<Vec<Tensor>> for Vec<Param> {
    fn assign_value(&mut self, value: Vec<Tensor>) {
        *self = value.into_iter().map(Param::new).collect();
    }
}

impl Assign<Option<Tensor>> for Option<Param> {
    fn assign_value(&mut self, value: Option<Tensor>) {
        match (self.as_mut(), value) {
            (Some(p), Some(t)) => p.set(t),
            (_, value) => *self = value.map(Param::new),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn param_operators_match_tensor_operators() -> Result<()> {
        let t = Tensor::new(&[1f32, 2.0], &Device::Cpu)?;
        let p = Param::new(t.clone());
        assert_eq!((&p + 1.0)?.to_vec1::<f32>()?, [2.0, 3.0]);
        assert_eq!((&t * &p)?.to_vec1::<f32>()?, [1.0, 4.0]);
        assert_eq!((&p - t.clone())?.to_vec1::<f32>()?, [0.0, 0.0]);
        assert_eq!((2.0 / &p)?.to_vec1::<f32>()?, [2.0, 1.0]);
        assert_eq!((&p + &p)?.to_vec1::<f32>()?, [2.0, 4.0]);
        assert_eq!((p.clone() / t.clone())?.to_vec1::<f32>()?, [1.0, 1.0]);
        assert_eq!((t.clone() * p.clone())?.to_vec1::<f32>()?, [1.0, 4.0]);
        Ok(())
    }

    #[test]
    fn assigning_a_tensor_keeps_the_parameters_hook_point() -> Result<()> {
        let mut p = Param::new(Tensor::zeros(2, candle_core::DType::F32, &Device::Cpu)?);
        let id = p.hook_point().id();
        p.assign_value(Tensor::ones(2, candle_core::DType::F32, &Device::Cpu)?);
        assert_eq!(p.hook_point().id(), id);
        assert_eq!(p.to_vec1::<f32>()?, [1.0, 1.0]);
        Ok(())
    }
}
