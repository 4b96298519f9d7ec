//! Adam (torch's update, bias-corrected) with global gradient-norm clipping.

use crate::error::{Error, Result};
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

/// Adam over named variables; its moments are kept, saved and restored by name. The
/// trainer's own optimiser (not exported).
#[derive(Debug)]
pub(crate) struct Adam {
    params: Vec<Param>,
    t: u64,
    beta1: f64,
    beta2: f64,
    eps: f64,
}

/// One variable with its name and moments.
#[derive(Debug)]
struct Param {
    name: String,
    var: Var,
    m: Tensor,
    v: Tensor,
}

impl Adam {
    /// Adam with torch's `eps = 1e-8` over `(name, variable)` pairs.
    pub fn new<S: Into<String>>(
        vars: impl IntoIterator<Item = (S, Var)>,
        beta1: f64,
        beta2: f64,
    ) -> Result<Self> {
        let params = vars
            .into_iter()
            .map(|(name, var)| {
                let m = var.zeros_like()?;
                Ok(Param {
                    name: name.into(),
                    v: m.clone(),
                    m,
                    var,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            params,
            t: 0,
            beta1,
            beta2,
            eps: 1e-8,
        })
    }

    /// One update with learning rate `lr`; with `clip`, gradients are first scaled so
    /// their global L2 norm is at most `clip` (torch's `clip_grad_norm_`). Returns the
    /// norm before clipping.
    pub fn step(&mut self, grads: &GradStore, lr: f64, clip: Option<f64>) -> Result<f64> {
        // Detached: a gradient computed from a variable would otherwise keep this step's
        // whole graph alive through the moments, step after step.
        let grads: Vec<Option<Tensor>> = self
            .params
            .iter()
            .map(|p| grads.get(p.var.as_tensor()).map(Tensor::detach))
            .collect();
        self.update(grads, lr, clip)
    }

    /// [`Adam::step`] with the gradients given by name (`None`: that variable is left
    /// as it is).
    pub(crate) fn step_named(
        &mut self,
        grad: impl Fn(&str) -> Option<Tensor>,
        lr: f64,
        clip: Option<f64>,
    ) -> Result<f64> {
        let grads = self.params.iter().map(|p| grad(&p.name)).collect();
        self.update(grads, lr, clip)
    }

    /// The update, with one gradient per variable in order.
    fn update(&mut self, grads: Vec<Option<Tensor>>, lr: f64, clip: Option<f64>) -> Result<f64> {
        let mut sq = 0f64;
        for g in grads.iter().flatten() {
            sq += g
                .sqr()?
                .sum_all()?
                .to_dtype(candle_core::DType::F64)?
                .to_scalar::<f64>()?;
        }
        let norm = sq.sqrt();
        let scale = match clip {
            Some(max) => (max / (norm + 1e-6)).min(1.0),
            None => 1.0,
        };
        self.t += 1;
        let t = self.t as i32;
        let bc1 = 1.0 - self.beta1.powi(t);
        let bc2 = 1.0 - self.beta2.powi(t);
        let (beta1, beta2, eps) = (self.beta1, self.beta2, self.eps);
        for (p, g) in self.params.iter_mut().zip(grads) {
            let Some(g) = g else { continue };
            let g = if scale < 1.0 { (g * scale)? } else { g };
            let m = ((&p.m * beta1)? + (&g * (1.0 - beta1))?)?;
            let v = ((&p.v * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            let denom = ((&v / bc2)?.sqrt()? + eps)?;
            let update = ((&m / denom)? * (lr / bc1))?;
            p.var.set(&(p.var.as_tensor() - update)?)?;
            (p.m, p.v) = (m, v);
        }
        Ok(norm)
    }

    /// Steps taken.
    pub fn steps(&self) -> u64 {
        self.t
    }

    /// `(name, first moment, second moment)` of each variable, for a checkpoint.
    pub fn moments(&self) -> impl Iterator<Item = (&str, &Tensor, &Tensor)> {
        self.params.iter().map(|p| (p.name.as_str(), &p.m, &p.v))
    }

    /// Restores the moments of the variable `name` and the step count (what
    /// [`Adam::moments`] and [`Adam::steps`] gave); an unknown name or a shape other
    /// than the variable's is an error naming it.
    pub fn restore(&mut self, name: &str, m: Tensor, v: Tensor, steps: u64) -> Result<()> {
        let p = self
            .params
            .iter_mut()
            .find(|p| p.name == name)
            .ok_or_else(|| Error::Invalid(format!("Adam has no variable `{name}`")))?;
        for (what, t) in [("first", &m), ("second", &v)] {
            if t.dims() != p.var.dims() {
                return Err(Error::Invalid(format!(
                    "Adam's {what} moment of `{name}` has shape {:?}, the variable {:?}",
                    t.dims(),
                    p.var.dims()
                )));
            }
        }
        (p.m, p.v, self.t) = (m, v, steps);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn the_first_step_moves_each_weight_by_lr_and_moments_are_named() -> Result<()> {
        let w = Var::new(&[1f32, -1.0], &Device::Cpu)?;
        let mut adam = Adam::new([("w", w.clone())], 0.9, 0.999)?;
        let loss = w.as_tensor().sqr()?.sum_all()?;
        adam.step(&loss.backward()?, 0.1, Some(1.0))?;
        let w = w.to_vec1::<f32>()?;
        assert!((w[0] - 0.9).abs() < 1e-6 && (w[1] + 0.9).abs() < 1e-6);
        let names: Vec<&str> = adam.moments().map(|(name, _, _)| name).collect();
        assert_eq!(names, ["w"]);
        Ok(())
    }
}
