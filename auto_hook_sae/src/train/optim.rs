//! Adam (torch's update, bias-corrected) with global gradient-norm clipping.

use crate::error::Result;
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

/// Adam over a fixed list of variables; its moments can be saved and restored.
///
/// ```
/// use auto_hook_sae::Adam;
/// use candle_core::{Device, Var};
/// let w = Var::new(&[1f32, -1.0], &Device::Cpu)?;
/// let mut adam = Adam::new(vec![w.clone()], 0.9, 0.999)?;
/// let loss = w.as_tensor().sqr()?.sum_all()?;
/// adam.step(&loss.backward()?, 0.1, Some(1.0))?;
/// let w = w.to_vec1::<f32>()?; // the first Adam step moves each weight by lr
/// assert!((w[0] - 0.9).abs() < 1e-6 && (w[1] + 0.9).abs() < 1e-6);
/// # Ok::<(), auto_hook_sae::Error>(())
/// ```
#[derive(Debug)]
pub struct Adam {
    vars: Vec<Var>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    t: u64,
    beta1: f64,
    beta2: f64,
    eps: f64,
}

impl Adam {
    /// Adam with torch's `eps = 1e-8`.
    pub fn new(vars: Vec<Var>, beta1: f64, beta2: f64) -> Result<Self> {
        let m = vars
            .iter()
            .map(|v| v.zeros_like())
            .collect::<candle_core::Result<Vec<_>>>()?;
        let v = m.clone();
        Ok(Self {
            vars,
            m,
            v,
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
            .vars
            .iter()
            .map(|v| grads.get(v.as_tensor()).map(Tensor::detach))
            .collect();
        self.step_grads(grads, lr, clip)
    }

    /// [`Adam::step`] with the gradients given in the order of the variables (`None`:
    /// that variable is left as it is).
    pub(crate) fn step_grads(
        &mut self,
        grads: Vec<Option<Tensor>>,
        lr: f64,
        clip: Option<f64>,
    ) -> Result<f64> {
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
        for (i, g) in grads.into_iter().enumerate() {
            let Some(g) = g else { continue };
            let g = if scale < 1.0 { (g * scale)? } else { g };
            let m = ((&self.m[i] * self.beta1)? + (&g * (1.0 - self.beta1))?)?;
            let v = ((&self.v[i] * self.beta2)? + (g.sqr()? * (1.0 - self.beta2))?)?;
            let denom = ((&v / bc2)?.sqrt()? + self.eps)?;
            let update = ((&m / denom)? * (lr / bc1))?;
            self.vars[i].set(&(self.vars[i].as_tensor() - update)?)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(norm)
    }

    /// Steps taken.
    pub fn steps(&self) -> u64 {
        self.t
    }

    /// `(first moments, second moments, steps)` for a checkpoint.
    pub fn state(&self) -> (&[Tensor], &[Tensor], u64) {
        (&self.m, &self.v, self.t)
    }

    /// Restores what [`Adam::state`] gave.
    pub fn restore(&mut self, m: Vec<Tensor>, v: Vec<Tensor>, t: u64) {
        self.m = m;
        self.v = v;
        self.t = t;
    }
}
