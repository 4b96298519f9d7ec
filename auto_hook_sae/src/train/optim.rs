//! Adam (torch's update, bias-corrected) with global gradient-norm clipping.

use super::kernels::{sum_squares, values, values_mut, with_values};
use crate::error::{Error, Result};
use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, InplaceOp2, InplaceOp3, Layout, Result as CResult, Tensor, Var};

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
                // Two storages: the fused update writes each moment in place.
                Ok(Param {
                    name: name.into(),
                    m: var.zeros_like()?,
                    v: var.zeros_like()?,
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
            sq += match with_values(g, sum_squares) {
                Some(sq) => sq,
                None => g
                    .sqr()?
                    .sum_all()?
                    .to_dtype(candle_core::DType::F64)?
                    .to_scalar::<f64>()?,
            };
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
        let fused = Fused {
            scale: scale as f32,
            beta1: beta1 as f32,
            rest1: (1.0 - beta1) as f32,
            beta2: beta2 as f32,
            rest2: (1.0 - beta2) as f32,
            inv_bc2: (1.0 / bc2) as f32,
            eps: eps as f32,
            lr: (lr / bc1) as f32,
        };
        for (p, g) in self.params.iter_mut().zip(grads) {
            let Some(g) = g else { continue };
            if fused.applies(p, &g) {
                p.m.inplace_op2(&g, &Moment(fused, false))?;
                p.v.inplace_op2(&g, &Moment(fused, true))?;
                p.var.as_tensor().inplace_op3(&p.m, &p.v, &Apply(fused))?;
                continue;
            }
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

/// The CPU f32 update without a temporary: three in-place passes (`m`, `v`, the
/// variable) that round every step as the tensor-op path does.
#[derive(Clone, Copy)]
struct Fused {
    /// Clipping's gradient scale (1: none).
    scale: f32,
    beta1: f32,
    /// `1 − β₁`, rounded from f64 as the tensor path's constant.
    rest1: f32,
    beta2: f32,
    rest2: f32,
    /// `1 / (1 − β₂ᵗ)`.
    inv_bc2: f32,
    eps: f32,
    /// `lr / (1 − β₁ᵗ)`.
    lr: f32,
}

impl Fused {
    /// Whether the variable, its moments and the gradient are all contiguous CPU f32.
    fn applies(&self, p: &Param, g: &Tensor) -> bool {
        [p.var.as_tensor(), &p.m, &p.v, g]
            .iter()
            .all(|t| with_values(t, |_| ()).is_some())
    }

    fn grad(&self, g: f32) -> f32 {
        if self.scale < 1.0 {
            g * self.scale
        } else {
            g
        }
    }
}

/// `m ← β₁ m + (1 − β₁) g` (or `v ← β₂ v + (1 − β₂) g²` when `.1`).
struct Moment(Fused, bool);

impl InplaceOp2 for Moment {
    fn name(&self) -> &'static str {
        "adam-moment"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<()> {
        let (Some(m), Some(g)) = (values_mut(s1, l1), values(s2, l2)) else {
            candle_core::bail!("adam-moment: contiguous CPU f32 tensors only")
        };
        let Moment(c, square) = *self;
        let (beta, rest) = match square {
            false => (c.beta1, c.rest1),
            true => (c.beta2, c.rest2),
        };
        m.iter_mut().zip(g).for_each(|(m, &g)| {
            let g = c.grad(g);
            let g = if square { g * g } else { g };
            *m = *m * beta + g * rest;
        });
        Ok(())
    }
}

/// `w ← w − lr · m / (sqrt(v / (1 − β₂ᵗ)) + eps)`.
struct Apply(Fused);

impl InplaceOp3 for Apply {
    fn name(&self) -> &'static str {
        "adam-apply"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> CResult<()> {
        let (Some(w), Some(m), Some(v)) = (values_mut(s1, l1), values(s2, l2), values(s3, l3))
        else {
            candle_core::bail!("adam-apply: contiguous CPU f32 tensors only")
        };
        let c = self.0;
        for ((w, &m), &v) in w.iter_mut().zip(m).zip(v) {
            let denom = (v * c.inv_bc2).sqrt() + c.eps;
            *w -= m / denom * c.lr;
        }
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

    /// The fused in-place update (contiguous CPU f32 gradients) gives bit for bit what
    /// the tensor-op path gives (a non-contiguous gradient takes it), and keeps the two
    /// moments apart. With clipping, the scale comes from norms summed differently (f64
    /// lanes against candle's f32 sum): equal within rounding.
    #[test]
    fn the_fused_update_matches_the_tensor_path_bit_for_bit() -> Result<()> {
        let dev = Device::Cpu;
        let init = Tensor::randn(0f32, 1.0, (6, 5), &dev)?;
        let (a, b) = (
            Var::from_tensor(&init.copy()?)?,
            Var::from_tensor(&init.copy()?)?,
        );
        let mut fused = Adam::new([("w", a.clone())], 0.9, 0.999)?;
        let mut plain = Adam::new([("w", b.clone())], 0.9, 0.999)?;
        for (step, clip) in [(0, None), (1, Some(100.0)), (2, Some(0.5))] {
            let g = (Tensor::randn(0f32, 1.0, (6, 5), &dev)? * (step + 1) as f64)?;
            let strided = g.t()?.contiguous()?.t()?;
            assert!(!strided.is_contiguous());
            let n1 = fused.step_named(|_| Some(g.clone()), 0.01, clip)?;
            let n2 = plain.step_named(|_| Some(strided.clone()), 0.01, clip)?;
            assert!((n1 - n2).abs() < 1e-5 * n2, "norm {n1} vs {n2}");
            if step < 2 {
                assert_eq!(a.to_vec2::<f32>()?, b.to_vec2::<f32>()?, "step {step}");
            } else {
                let diff = auto_hook::max_abs_diff(a.as_tensor(), b.as_tensor())?;
                assert!(diff < 1e-6, "clipped step: {diff}");
            }
        }
        let (m, v) = fused
            .moments()
            .map(|(_, m, v)| (m.clone(), v.clone()))
            .next()
            .unwrap();
        assert_ne!(m.to_vec2::<f32>()?, v.to_vec2::<f32>()?);
        Ok(())
    }
}
