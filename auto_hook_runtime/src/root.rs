//! `HookedRoot`: the TransformerLens `HookedRootModule` API, for every hooked model.

use crate::backward::GradSink;
use crate::cache::{ActivationCache, CacheOptions};
use crate::error::{Error, Result};
use crate::filter::{nearest_names, Filter};
use crate::hook::{HookInfo, HookReturn};
use crate::hook_point::{HookPoint, PersistentHook};
use crate::hooks::{build_context, hook_name_list, Hooks};
use crate::module::{walk, walk_modules, walk_mut, HookedModule};
use crate::scope::HookScope;
use candle_core::Tensor;
use std::cell::RefCell;
use std::sync::Arc;

/// The hook points of a model instance, by name, in declaration order.
#[derive(Debug)]
pub struct HookDict<'s> {
    entries: Vec<(String, &'s HookPoint)>,
}

impl<'s> HookDict<'s> {
    /// The names, in declaration order.
    pub fn names(&self) -> impl Iterator<Item = &str> + Clone {
        self.entries.iter().map(|(n, _)| n.as_str())
    }

    /// The hook point called `name`; the error lists the nearest names.
    pub fn get(&self, name: &str) -> Result<&'s HookPoint> {
        match self.entries.iter().find(|(n, _)| n == name) {
            Some((_, point)) => Ok(point),
            None => Err(Error::UnknownHook {
                name: name.to_owned(),
                nearest: nearest_names(name, self.names()),
            }),
        }
    }

    /// `(name, hook point)` pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &'s HookPoint)> {
        self.entries.iter().map(|(n, p)| (n.as_str(), *p))
    }

    /// Number of hook points.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the model has no hook point.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The hooked-root API. Every `#[auto_hook]` struct, `#[derive(HookedRoot)]` struct and
/// `auto_hook(instance)` wrapper has it (it is implemented for every [`HookedModule`]).
///
/// Per-call hooks (`run_with_hooks`, `run_with_cache`) take `&self`: one model shared
/// between threads runs each call with only that call's hooks. Persistent hooks
/// (`add_hook`, `add_perma_hook`, `hook_scope`) live in the model and take `&mut self`.
pub trait HookedRoot: HookedModule {
    /// Every hook point of this instance, by full name.
    fn hook_dict(&self) -> HookDict<'_> {
        let mut entries = Vec::new();
        walk(self, &mut |name, point| {
            entries.push((name.to_owned(), point))
        });
        HookDict { entries }
    }

    /// The full names of this instance's hook points, in declaration order (the type's
    /// `hook_names()` lists patterns, with `*` for container indices and keys).
    fn hook_point_names(&self) -> Vec<String> {
        hook_name_list(self)
    }

    /// Every module (annotated struct or wrapped candle module) with its type name;
    /// the root is `""`.
    fn mod_dict(&self) -> Vec<(String, &'static str)> {
        let mut modules = Vec::new();
        walk_modules(self, &mut |name, type_name| {
            modules.push((name.to_owned(), type_name))
        });
        modules
    }

    /// Runs `run` with `hooks` attached for this call only. Any forward signature works:
    /// `model.run_with_hooks(hooks, |m| m.forward(&x, &mask))`. Hooks are gone when the
    /// call returns, also when it fails or panics.
    fn run_with_hooks<'a, T, E: Into<Error>>(
        &self,
        hooks: Hooks<'a>,
        run: impl FnOnce(&Self) -> std::result::Result<T, E>,
    ) -> Result<T> {
        let context = build_context(self, hooks.into_entries(), None)?;
        context
            .run(|| run(self))?
            .ok_or_else(|| Error::Cache("internal: run stopped without stop_at".into()))
    }

    /// Runs `run` and captures the activations that `options` selects (all by default:
    /// `CacheOptions::all()`, or just a name / glob / list).
    fn run_with_cache<T, E: Into<Error>>(
        &self,
        options: impl Into<CacheOptions>,
        run: impl FnOnce(&Self) -> std::result::Result<T, E>,
    ) -> Result<(T, ActivationCache)> {
        let (out, cache) = cache_run(self, options.into(), false, run)?;
        Ok((
            out.ok_or_else(|| Error::Cache("internal: run stopped without stop_at".into()))?,
            cache,
        ))
    }

    /// Like `run_with_cache`, but stops the forward as soon as every selected point has
    /// fired once: the rest of the model is not computed. Errors if the forward ends
    /// before some selected point fired.
    fn run_with_cache_stop_at<T, E: Into<Error>>(
        &self,
        options: impl Into<CacheOptions>,
        run: impl FnOnce(&Self) -> std::result::Result<T, E>,
    ) -> Result<ActivationCache> {
        Ok(cache_run(self, options.into(), true, run)?.1)
    }

    /// Attaches a hook that stays until `reset_hooks` (or the end of the enclosing
    /// `hook_scope`). It runs in every forward, on every thread.
    fn add_hook<F, R>(&mut self, filter: impl Into<Filter>, hook: F) -> Result<()>
    where
        F: Fn(&Tensor, &HookInfo) -> R + Send + Sync + 'static,
        R: HookReturn,
    {
        add_persistent(self, filter.into(), shared(hook), Persistence::default())
    }

    /// Attaches a backward hook that stays until `reset_hooks`: in every forward it is
    /// bound to that forward's graph, and runs on the gradient flowing into the point
    /// when a loss from that forward is backpropagated (keep it, or return a
    /// replacement of the same shape).
    fn add_backward_hook<F, R>(&mut self, filter: impl Into<Filter>, hook: F) -> Result<()>
    where
        F: Fn(&Tensor, &HookInfo) -> R + Send + Sync + 'static,
        R: HookReturn,
    {
        add_persistent(
            self,
            filter.into(),
            shared(hook),
            Persistence {
                backward: true,
                ..Persistence::default()
            },
        )
    }

    /// Attaches a hook that even `reset_hooks` keeps; only `reset_all_hooks` removes it.
    fn add_perma_hook<F, R>(&mut self, filter: impl Into<Filter>, hook: F) -> Result<()>
    where
        F: Fn(&Tensor, &HookInfo) -> R + Send + Sync + 'static,
        R: HookReturn,
    {
        add_persistent(
            self,
            filter.into(),
            shared(hook),
            Persistence {
                permanent: true,
                ..Persistence::default()
            },
        )
    }

    /// Removes every persistent hook except the permanent ones.
    fn reset_hooks(&mut self) {
        walk_mut(self, &mut |_, point| {
            point.retain_persistent(|h| h.permanent)
        });
    }

    /// Removes every persistent hook, permanent ones included.
    fn reset_all_hooks(&mut self) {
        walk_mut(self, &mut |_, point| point.retain_persistent(|_| false));
    }

    /// Opens a scope: hooks added through the returned guard are removed when it drops,
    /// also on error or panic. Scopes nest; each removes only its own hooks.
    fn hook_scope(&mut self) -> HookScope<'_, Self> {
        HookScope::new(self)
    }
}

impl<M: HookedModule + ?Sized> HookedRoot for M {}

pub(crate) fn shared<F, R>(hook: F) -> crate::hook::SharedHook
where
    F: Fn(&Tensor, &HookInfo) -> R + Send + Sync + 'static,
    R: HookReturn,
{
    Arc::new(move |x: &Tensor, info: &HookInfo| hook(x, info).into_replacement())
}

/// How long a persistent hook stays, and which way it runs.
#[derive(Clone, Copy, Default)]
pub(crate) struct Persistence {
    pub(crate) permanent: bool,
    pub(crate) scope: u64,
    pub(crate) backward: bool,
}

/// Validates `filter` first, so a bad name leaves the model untouched.
pub(crate) fn add_persistent<M: HookedModule + ?Sized>(
    model: &mut M,
    filter: Filter,
    hook: crate::hook::SharedHook,
    kind: Persistence,
) -> Result<()> {
    let names = hook_name_list(model);
    filter.validate(names.iter().map(String::as_str))?;
    walk_mut(model, &mut |name, point| {
        if filter.matches(name) {
            point.push_persistent(PersistentHook {
                name: Arc::from(name),
                hook: hook.clone(),
                permanent: kind.permanent,
                scope: kind.scope,
                backward: kind.backward,
            });
        }
    });
    Ok(())
}

fn cache_run<M: HookedRoot + ?Sized, T, E: Into<Error>>(
    model: &M,
    options: CacheOptions,
    stop: bool,
    run: impl FnOnce(&M) -> std::result::Result<T, E>,
) -> Result<(Option<T>, ActivationCache)> {
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
    let context = build_context(model, hooks.into_entries(), stop.then_some(&filter))?;
    let out = context.run(|| run(model))?;
    drop(context);
    Ok((out, cache.into_inner()))
}
