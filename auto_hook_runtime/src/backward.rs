//! Backward hooks: at a hook point where gradients are wanted, the activation passes
//! through an identity op whose backward runs the hooks on the gradient flowing into
//! the point (and records it for the cache).
//!
//! The op is added only where a backward hook or a gradient cache asks for it, so a
//! forward without them builds exactly the graph it would without auto_hook. The hooks
//! live in the graph of the run that created them: they fire when a loss from that run
//! is backpropagated, never in another run.

use crate::hook::{check_replacement, HookInfo, SharedHook};
use candle_core::backend::{BackendDevice, BackendStorage};
use candle_core::cpu_backend::CpuDevice;
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor, Var};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Gradients recorded during backward, by hook name.
#[derive(Default, Debug)]
pub(crate) struct GradSink {
    grads: Mutex<HashMap<Arc<str>, Tensor>>,
}

impl GradSink {
    /// Backward visits the last use of a point first; that use is the one whose
    /// activation the cache kept, so the first gradient recorded wins.
    fn record(&self, name: &str, grad: &Tensor) {
        let mut grads = self.grads.lock().unwrap_or_else(|e| e.into_inner());
        if !grads.contains_key(name) {
            grads.insert(Arc::from(name), grad.clone());
        }
    }

    pub(crate) fn get(&self, name: &str) -> Option<Tensor> {
        self.grads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.grads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }
}

impl GradSink {
    /// A backward hook that records the gradient it sees.
    pub(crate) fn recorder(self: &Arc<Self>) -> SharedHook {
        let sink = self.clone();
        Arc::new(move |grad: &Tensor, info: &HookInfo| {
            sink.record(info.name(), grad);
            Ok(None)
        })
    }
}

/// What one hook point does during backward: its hooks, in order (persistent hooks,
/// then outer runs' hooks, then inner runs' hooks and gradient recorders).
pub(crate) struct BackwardPoint {
    pub(crate) name: Arc<str>,
    pub(crate) hooks: Vec<SharedHook>,
}

impl BackwardPoint {
    /// Puts the op on `x`. An activation that tracks no gradient (the model's weights
    /// are plain tensors) first becomes a leaf that does, so gradients exist from here on.
    pub(crate) fn attach(self, x: Tensor) -> Result<Tensor> {
        if !x.dtype().is_float() {
            return Ok(x);
        }
        let x = if x.track_op() {
            x
        } else {
            Var::from_tensor(&x)?.into_inner()
        };
        x.apply_op1(self)
    }
}

impl CustomOp1 for BackwardPoint {
    fn name(&self) -> &'static str {
        "auto_hook-backward-point"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        // SAFETY: every element of `out` is written by the strided copy just below.
        let mut out = unsafe { CpuDevice.alloc_uninit(layout.shape(), storage.dtype())? };
        storage.copy_strided_src(&mut out, 0, layout)?;
        Ok((out, layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let mut grad = grad_res.clone();
        for hook in &self.hooks {
            if let Some(replacement) = hook(&grad, &HookInfo::new(&self.name))? {
                check_replacement(&self.name, &grad, &replacement)
                    .map_err(|e| candle_core::Error::Msg(format!("backward {e}")))?;
                grad = replacement;
            }
        }
        Ok(Some(grad))
    }
}
