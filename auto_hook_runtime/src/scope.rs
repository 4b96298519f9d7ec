//! `HookScope`: a guard whose hooks are removed when it drops (TransformerLens's
//! `with model.hooks(...)` and hook levels).

use crate::error::Result;
use crate::filter::Filter;
use crate::hook::{HookInfo, HookReturn};
use crate::module::{walk_mut, HookedModule};
use crate::root::{add_persistent, shared, Persistence};
use candle_core::Tensor;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};

static NEXT_SCOPE: AtomicU64 = AtomicU64::new(1);

/// A scope of persistent hooks over a model, from `model.hook_scope()`. It dereferences
/// to the model, so the model runs through it; hooks added with
/// [`HookScope::add_hook`] are removed when the scope drops, even on error or panic.
/// Scopes nest: an inner scope removes only its own hooks.
pub struct HookScope<'m, M: HookedModule + ?Sized> {
    model: &'m mut M,
    level: u64,
}

impl<'m, M: HookedModule + ?Sized> HookScope<'m, M> {
    pub(crate) fn new(model: &'m mut M) -> Self {
        Self {
            model,
            level: NEXT_SCOPE.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// This scope's level (unique, increasing with nesting).
    pub fn level(&self) -> u64 {
        self.level
    }

    /// Attaches a hook until this scope ends.
    pub fn add_hook<F, R>(&mut self, filter: impl Into<Filter>, hook: F) -> Result<()>
    where
        F: Fn(&Tensor, &HookInfo) -> R + Send + Sync + 'static,
        R: HookReturn,
    {
        add_persistent(
            self.model,
            filter.into(),
            shared(hook),
            Persistence {
                scope: self.level,
                ..Persistence::default()
            },
        )
    }

    /// Opens a nested scope.
    pub fn hook_scope(&mut self) -> HookScope<'_, M> {
        HookScope::new(self.model)
    }
}

impl<M: HookedModule + ?Sized> Deref for HookScope<'_, M> {
    type Target = M;
    fn deref(&self) -> &M {
        self.model
    }
}

impl<M: HookedModule + ?Sized> DerefMut for HookScope<'_, M> {
    fn deref_mut(&mut self) -> &mut M {
        self.model
    }
}

impl<M: HookedModule + ?Sized> Drop for HookScope<'_, M> {
    fn drop(&mut self) {
        let level = self.level;
        walk_mut(self.model, &mut |_, point| {
            point.retain_persistent(|h| h.scope != level)
        });
    }
}
