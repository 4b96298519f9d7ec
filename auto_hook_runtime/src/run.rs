//! One implementation of the per-call runs (`run_with_hooks`, `run_with_cache`,
//! `run_with_cache_stop_at`) for both borrows of the model: `&M` for `&self` forwards
//! and `&mut M` for `&mut self` forwards (models that keep a KV cache in themselves).
//!
//! The hook context is keyed by hook ids, so it is built from a shared borrow that ends
//! before the run closure gets the model, whichever borrow that is.

use crate::backward::GradSink;
use crate::cache::{ActivationCache, CacheOptions};
use crate::error::{Error, Result};
use crate::hook::HookInfo;
use crate::hooks::{build_context, Hooks};
use crate::module::HookedModule;
use candle_core::Tensor;
use std::cell::RefCell;
use std::sync::Arc;

/// `&M` or `&mut M`: a borrow of a model that can be looked at while hooks are resolved
/// and then handed to the run closure.
pub(crate) trait Borrowed<M: ?Sized> {
    fn model(&self) -> &M;
}

impl<M: ?Sized> Borrowed<M> for &M {
    fn model(&self) -> &M {
        self
    }
}

impl<M: ?Sized> Borrowed<M> for &mut M {
    fn model(&self) -> &M {
        self
    }
}

const NO_STOP: &str = "the run stopped early without stop_at";

/// Runs `run(model)` with `hooks` attached for this call only.
pub(crate) fn hooks_run<M, B, T, E>(
    model: B,
    hooks: Hooks<'_>,
    run: impl FnOnce(B) -> std::result::Result<T, E>,
) -> Result<T>
where
    M: HookedModule + ?Sized,
    B: Borrowed<M>,
    E: Into<Error>,
{
    let context = build_context(model.model(), hooks, None)?;
    context
        .run(|| run(model))?
        .ok_or_else(|| Error::Internal(NO_STOP.into()))
}

/// Runs `run(model)` capturing what `options` selects; with `stop`, the forward ends
/// as soon as every selected point fired (the output is then `None`).
pub(crate) fn cache_run<M, B, T, E>(
    model: B,
    options: CacheOptions,
    stop: bool,
    run: impl FnOnce(B) -> std::result::Result<T, E>,
) -> Result<(Option<T>, ActivationCache)>
where
    M: HookedModule + ?Sized,
    B: Borrowed<M>,
    E: Into<Error>,
{
    let filter = options.filter();
    let cache = RefCell::new(ActivationCache::new());
    let mut hooks = Hooks::new().add(
        filter.clone(),
        |x: &Tensor, info: &HookInfo| -> candle_core::Result<()> {
            let stored = options.store(x, info.name())?;
            cache.borrow_mut().insert(info.name(), stored);
            Ok(())
        },
    );
    if options.grads {
        let sink = Arc::new(GradSink::default());
        hooks.push_backward(filter.clone(), sink.recorder());
        cache.borrow_mut().set_grads(sink);
    }
    let context = build_context(model.model(), hooks, stop.then_some(&filter))?;
    let out = context.run(|| run(model))?;
    drop(context);
    Ok((out, cache.into_inner()))
}

/// The output of a cached run that was not stopped early.
pub(crate) fn full<T>(out: (Option<T>, ActivationCache)) -> Result<(T, ActivationCache)> {
    let (out, cache) = out;
    Ok((out.ok_or_else(|| Error::Internal(NO_STOP.into()))?, cache))
}
