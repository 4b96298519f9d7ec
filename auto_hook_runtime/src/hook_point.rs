//! `HookPoint`: a named place in a model where hooks can read or replace an activation.

use crate::context::{self, Backward};
use crate::hook::{check_replacement, HookInfo, SharedHook};
use candle_core::{Module, Result, Tensor};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A process-unique identity of one hook point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HookId(u64);

/// A hook point: an identity function that hooks can observe or edit.
///
/// `#[auto_hook]` puts one on every module output and parameter. A model can also hold
/// its own, as a field, and call it in its forward like any module:
///
/// ```
/// use auto_hook_runtime::HookPoint;
/// use candle_core::{Device, Module, Tensor};
/// let hook_relu = HookPoint::new();
/// let x = Tensor::new(&[1f32, -1.0], &Device::Cpu)?;
/// let y = hook_relu.forward(&x.relu()?)?; // identity unless a hook is attached
/// assert_eq!(y.to_vec1::<f32>()?, [1.0, 0.0]);
/// # Ok::<(), candle_core::Error>(())
/// ```
///
/// With no hook attached, firing costs one thread-local read: no allocation, no lock.
/// Cloning gives a new, independent hook point that keeps the persistent hooks.
pub struct HookPoint {
    id: HookId,
    persistent: Vec<PersistentHook>,
}

/// A hook added with `add_hook` / `add_perma_hook`; it stays until removed.
#[derive(Clone)]
pub(crate) struct PersistentHook {
    pub(crate) name: Arc<str>,
    pub(crate) hook: SharedHook,
    pub(crate) permanent: bool,
    pub(crate) scope: u64,
    /// A backward hook (runs on the gradient) rather than a forward hook.
    pub(crate) backward: bool,
}

impl HookPoint {
    /// A fresh hook point with its own id and no hooks.
    pub fn new() -> Self {
        Self {
            id: HookId(NEXT_ID.fetch_add(1, Ordering::Relaxed)),
            persistent: Vec::new(),
        }
    }

    /// This point's identity.
    pub fn id(&self) -> HookId {
        self.id
    }

    /// How many persistent hooks are attached here.
    pub fn persistent_hook_count(&self) -> usize {
        self.persistent.len()
    }

    /// Whether a hook may see this point's value now: it has persistent hooks, or a
    /// `run_with_hooks` / `run_with_cache` call is active on this thread. When `false`,
    /// [`fire`](Self::fire) returns its input untouched, so a module may skip work that
    /// only observers need (making a view contiguous, say).
    ///
    /// ```
    /// use auto_hook_runtime::HookPoint;
    /// assert!(!HookPoint::new().is_observed());
    /// ```
    #[inline]
    pub fn is_observed(&self) -> bool {
        !self.persistent.is_empty() || context::is_active()
    }

    /// Whether something will see or edit this point's value in the current call: it has
    /// persistent hooks, or the active `run_with_hooks` / `run_with_cache` /
    /// `run_with_cache_stop_at` call (or one it is nested in) selects it. When `false`,
    /// a module may compute its output without the intermediate value this point holds
    /// (a fused kernel instead of the ops that expose it), provided the output is the
    /// same to the bit; it then need not fire the point.
    ///
    /// ```
    /// use auto_hook_runtime::{auto_hook, HookPoint, HookedRoot};
    /// use candle_core::{Device, Module, Tensor};
    /// let relu = auto_hook(candle_nn::Activation::Relu);
    /// let x = Tensor::new(&[1f32], &Device::Cpu)?;
    /// assert!(!HookPoint::new().is_hooked());
    /// let (_, cache) = relu.run_with_cache("hook_point", |m| m.forward(&x))?;
    /// # let _ = cache;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn is_hooked(&self) -> bool {
        !self.persistent.is_empty() || (context::is_active() && context::selects(self.id))
    }

    /// Passes `x` through the hooks attached here: persistent hooks first, then the hooks
    /// of the active `run_with_hooks` / `run_with_cache` call on this thread.
    #[inline]
    pub fn fire(&self, x: Tensor) -> Result<Tensor> {
        if !self.is_observed() {
            return Ok(x);
        }
        self.fire_hooks(x)
    }

    #[inline(never)]
    fn fire_hooks(&self, mut x: Tensor) -> Result<Tensor> {
        let mut backward = Backward::default();
        for p in &self.persistent {
            if p.backward {
                backward.push(&p.name, &p.hook);
            } else if let Some(replacement) = (p.hook)(&x, &HookInfo::new(&p.name))? {
                check_replacement(&p.name, &x, &replacement)?;
                x = replacement;
            }
        }
        let x = context::fire(self.id, x, &mut backward)?;
        backward.attach(x)
    }

    pub(crate) fn push_persistent(&mut self, hook: PersistentHook) {
        self.persistent.push(hook);
    }

    pub(crate) fn retain_persistent(&mut self, keep: impl FnMut(&PersistentHook) -> bool) {
        self.persistent.retain(keep);
    }
}

impl Default for HookPoint {
    fn default() -> Self {
        Self::new()
    }
}

impl Clone for HookPoint {
    fn clone(&self) -> Self {
        Self {
            id: HookPoint::new().id,
            persistent: self.persistent.clone(),
        }
    }
}

impl fmt::Debug for HookPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HookPoint")
            .field("id", &self.id.0)
            .field("persistent_hooks", &self.persistent.len())
            .finish()
    }
}

impl Module for HookPoint {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.fire(xs.clone())
    }
}
