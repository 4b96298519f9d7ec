//! `HookedRoot`: the TransformerLens `HookedRootModule` API, for every hooked model.

use crate::cache::{ActivationCache, CacheOptions};
use crate::error::{Error, Result};
use crate::filter::{nearest_names, Filter};
use crate::hook::{HookInfo, HookReturn};
use crate::hook_point::{HookPoint, PersistentHook};
use crate::hooks::{hook_name_list, Hooks};
use crate::module::{walk, walk_modules, walk_mut, HookedModule};
use crate::run;
use crate::scope::HookScope;
use candle_core::Tensor;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// The hook points of a model instance, by name, in declaration order.
///
/// Names do not borrow the dictionary (each distinct name is stored once for the life
/// of the process), so one expression lists them:
///
/// ```
/// use auto_hook_runtime::{auto_hook, HookedRoot};
/// let model = auto_hook(candle_nn::Activation::Relu);
/// let names = model.hook_dict().names().collect::<Vec<_>>();
/// assert_eq!(names, ["hook_point"]);
/// ```
#[derive(Debug)]
pub struct HookDict<'s> {
    entries: Vec<(&'static str, &'s HookPoint)>,
}

impl<'s> HookDict<'s> {
    /// The names, in declaration order.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + Clone + '_ {
        self.entries.iter().map(|(n, _)| *n)
    }

    /// The hook point called `name`; the error lists the nearest names.
    pub fn get(&self, name: &str) -> Result<&'s HookPoint> {
        match self.entries.iter().find(|(n, _)| *n == name) {
            Some((_, point)) => Ok(point),
            None => Err(Error::UnknownHook {
                name: name.to_owned(),
                nearest: nearest_names(name, self.names()),
            }),
        }
    }

    /// `(name, hook point)` pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &'s HookPoint)> + '_ {
        self.entries.iter().copied()
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

/// Hook names, stored once each: a model's names are few and the same every time its
/// `hook_dict` is asked for, so they are kept rather than rebuilt.
fn intern(name: &str) -> &'static str {
    static NAMES: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(known) = names.get(name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(leaked);
    leaked
}

/// The hooked-root API. Every `#[auto_hook]` struct, `#[derive(HookedRoot)]` struct and
/// `auto_hook(instance)` wrapper has it (it is implemented for every [`HookedModule`]).
///
/// Per-call hooks (`run_with_hooks`, `run_with_cache`) take `&self`: one model shared
/// between threads runs each call with only that call's hooks. Models whose forward
/// takes `&mut self` (a KV cache kept in the model) use the `_mut` forms
/// (`run_with_hooks_mut`, `run_with_cache_mut`, `run_with_cache_stop_at_mut`), which
/// take the same hooks, closures borrowing locals included. Persistent hooks
/// (`add_hook`, `add_perma_hook`, `hook_scope`) live in the model and take `&mut self`.
pub trait HookedRoot: HookedModule {
    /// Every hook point of this instance, by full name.
    fn hook_dict(&self) -> HookDict<'_> {
        let mut entries = Vec::new();
        walk(self, &mut |name, point| entries.push((intern(name), point)));
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
    ///
    /// When hooks are given and not one of the model's hook points fires during `run`,
    /// the call fails with [`Error::NoHookFired`]: the forward ran on a clone (a clone
    /// has new hook points), another model or thread, or outside the closure. A run in
    /// which other points fired but not the hooked one (a branch not taken this time)
    /// is not an error, and a run that may legitimately skip the model says so with
    /// [`Hooks::may_not_fire`].
    fn run_with_hooks<'a, T, E: Into<Error>>(
        &self,
        hooks: Hooks<'a>,
        run: impl FnOnce(&Self) -> std::result::Result<T, E>,
    ) -> Result<T> {
        run::hooks_run(self, hooks, run)
    }

    /// [`run_with_hooks`](HookedRoot::run_with_hooks) for a forward that takes
    /// `&mut self` (a model that keeps its KV cache or other state in itself). Hooks
    /// may borrow locals exactly as in the `&self` form.
    ///
    /// ```
    /// # use auto_hook_runtime::{HookPoint, HookedModule, HookedRoot, Hooks, Schema, Walker, WalkerMut};
    /// # use candle_core::{Device, Tensor};
    /// # struct Counter { hook_out: HookPoint, calls: usize }
    /// # impl HookedModule for Counter {
    /// #     const SCHEMA: Schema = Schema::Struct(&[("hook_out", &Schema::Point)]);
    /// #     fn visit_hooks<'s>(&'s self, w: &mut Walker<'_, 's>) { w.child("hook_out", &self.hook_out) }
    /// #     fn visit_hooks_mut(&mut self, w: &mut WalkerMut<'_>) { w.child("hook_out", &mut self.hook_out) }
    /// # }
    /// impl Counter {
    ///     fn forward(&mut self, x: &Tensor) -> candle_core::Result<Tensor> {
    ///         self.calls += 1; // state lives in the model
    ///         self.hook_out.fire((x * self.calls as f64)?)
    ///     }
    /// }
    /// let mut model = Counter { hook_out: HookPoint::new(), calls: 0 };
    /// let x = Tensor::new(&[1f32, 2.0], &Device::Cpu)?;
    /// let mut seen = Vec::new();
    /// let hooks = Hooks::new().add("hook_out", |a, _| seen.push(a.to_vec1::<f32>()));
    /// let y = model.run_with_hooks_mut(hooks, |m| m.forward(&x))?;
    /// assert_eq!(y.to_vec1::<f32>()?, [1.0, 2.0]);
    /// assert_eq!(seen.len(), 1);
    /// assert_eq!(model.calls, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn run_with_hooks_mut<'a, T, E: Into<Error>>(
        &mut self,
        hooks: Hooks<'a>,
        run: impl FnOnce(&mut Self) -> std::result::Result<T, E>,
    ) -> Result<T> {
        run::hooks_run(self, hooks, run)
    }

    /// Runs `run` and captures the activations that `options` selects (all by default:
    /// `CacheOptions::all()`, or just a name / glob / list).
    fn run_with_cache<T, E: Into<Error>>(
        &self,
        options: impl Into<CacheOptions>,
        run: impl FnOnce(&Self) -> std::result::Result<T, E>,
    ) -> Result<(T, ActivationCache)> {
        run::full(run::cache_run(self, options.into(), false, run)?)
    }

    /// [`run_with_cache`](HookedRoot::run_with_cache) for a forward that takes `&mut self`.
    ///
    /// ```
    /// # use auto_hook_runtime::{HookPoint, HookedModule, HookedRoot, Hooks, Schema, Walker, WalkerMut};
    /// # use candle_core::{Device, Tensor};
    /// # struct Counter { hook_out: HookPoint, calls: usize }
    /// # impl HookedModule for Counter {
    /// #     const SCHEMA: Schema = Schema::Struct(&[("hook_out", &Schema::Point)]);
    /// #     fn visit_hooks<'s>(&'s self, w: &mut Walker<'_, 's>) { w.child("hook_out", &self.hook_out) }
    /// #     fn visit_hooks_mut(&mut self, w: &mut WalkerMut<'_>) { w.child("hook_out", &mut self.hook_out) }
    /// # }
    /// # impl Counter {
    /// #     fn forward(&mut self, x: &Tensor) -> candle_core::Result<Tensor> {
    /// #         self.calls += 1;
    /// #         self.hook_out.fire((x * self.calls as f64)?)
    /// #     }
    /// # }
    /// let mut model = Counter { hook_out: HookPoint::new(), calls: 0 };
    /// let x = Tensor::new(&[1f32, 2.0], &Device::Cpu)?;
    /// model.forward(&x)?;
    /// let (_, cache) = model.run_with_cache_mut("hook_out", |m| m.forward(&x))?;
    /// assert_eq!(cache.get("hook_out")?.to_vec1::<f32>()?, [2.0, 4.0]); // second call
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn run_with_cache_mut<T, E: Into<Error>>(
        &mut self,
        options: impl Into<CacheOptions>,
        run: impl FnOnce(&mut Self) -> std::result::Result<T, E>,
    ) -> Result<(T, ActivationCache)> {
        run::full(run::cache_run(self, options.into(), false, run)?)
    }

    /// Like `run_with_cache`, but stops the forward as soon as every selected point has
    /// fired once: the rest of the model is not computed. Errors if the forward ends
    /// before some selected point fired.
    fn run_with_cache_stop_at<T, E: Into<Error>>(
        &self,
        options: impl Into<CacheOptions>,
        run: impl FnOnce(&Self) -> std::result::Result<T, E>,
    ) -> Result<ActivationCache> {
        Ok(run::cache_run(self, options.into(), true, run)?.1)
    }

    /// [`run_with_cache_stop_at`](HookedRoot::run_with_cache_stop_at) for a forward that
    /// takes `&mut self`. State the forward changed before the stop stays changed.
    ///
    /// ```
    /// # use auto_hook_runtime::{HookPoint, HookedModule, HookedRoot, Hooks, Schema, Walker, WalkerMut};
    /// # use candle_core::{Device, Tensor};
    /// # struct Counter { hook_out: HookPoint, calls: usize }
    /// # impl HookedModule for Counter {
    /// #     const SCHEMA: Schema = Schema::Struct(&[("hook_out", &Schema::Point)]);
    /// #     fn visit_hooks<'s>(&'s self, w: &mut Walker<'_, 's>) { w.child("hook_out", &self.hook_out) }
    /// #     fn visit_hooks_mut(&mut self, w: &mut WalkerMut<'_>) { w.child("hook_out", &mut self.hook_out) }
    /// # }
    /// # impl Counter {
    /// #     fn forward(&mut self, x: &Tensor) -> candle_core::Result<Tensor> {
    /// #         self.calls += 1;
    /// #         self.hook_out.fire((x * self.calls as f64)?)
    /// #     }
    /// # }
    /// let mut model = Counter { hook_out: HookPoint::new(), calls: 0 };
    /// let x = Tensor::new(&[1f32, 2.0], &Device::Cpu)?;
    /// let cache = model.run_with_cache_stop_at_mut("hook_out", |m| m.forward(&x))?;
    /// assert_eq!(cache.get("hook_out")?.to_vec1::<f32>()?, [1.0, 2.0]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn run_with_cache_stop_at_mut<T, E: Into<Error>>(
        &mut self,
        options: impl Into<CacheOptions>,
        run: impl FnOnce(&mut Self) -> std::result::Result<T, E>,
    ) -> Result<ActivationCache> {
        Ok(run::cache_run(self, options.into(), true, run)?.1)
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
