//! `Hooks`: the per-call hooks of one run, and their resolution against a model.

use crate::context::{Context, FireWatch, IdMap, Slot};
use crate::error::Result;
use crate::filter::Filter;
use crate::hook::{boxed_call_hook, CallHook, HookInfo, HookReturn, SharedHook};
use crate::hook_point::HookId;
use crate::module::{walk, HookedModule};
use crate::root::shared;
use candle_core::Tensor;
use std::sync::Arc;

/// Forward hooks for one `run_with_hooks` call. A hook is a closure that gets the
/// activation and the hook point's info; returning `()` keeps the activation, returning
/// a tensor replaces it. Hooks may borrow and mutate the caller's local state.
///
/// ```
/// use auto_hook_runtime::Hooks;
/// let mut seen = Vec::new();
/// let hooks = Hooks::new()
///     .add("fc1.hook_point", |x, _| x * 0.0)                        // replace
///     .add("**hook_point", |x, h| seen.push((h.name().to_owned(), x.dims().to_vec()))); // read
/// assert_eq!(hooks.len(), 2);
/// ```
#[derive(Default)]
pub struct Hooks<'a> {
    entries: Vec<(Filter, HookFn<'a>)>,
    may_not_fire: bool,
}

/// A forward hook of one call, or a backward hook bound to the graph of that call.
pub(crate) enum HookFn<'a> {
    Forward(CallHook<'a>),
    Backward(SharedHook),
}

impl<'a> Hooks<'a> {
    /// No hooks.
    pub fn new() -> Self {
        Self {
            entries: Vec::new(),
            may_not_fire: false,
        }
    }

    /// Says that this run may legitimately run no forward of the model (a `generate`
    /// asked for zero new tokens, a closure that sometimes skips the model), so a run in
    /// which no hook point fired is not [`crate::Error::NoHookFired`].
    ///
    /// ```
    /// use auto_hook_runtime::{auto_hook, HookedRoot, Hooks};
    /// let relu = auto_hook(candle_nn::Activation::Relu);
    /// let skipped = |_: &_| Ok::<_, candle_core::Error>("no forward this time");
    /// assert!(relu.run_with_hooks(Hooks::new().add("hook_point", |_, _| ()), skipped).is_err());
    /// let hooks = Hooks::new().add("hook_point", |_, _| ()).may_not_fire();
    /// assert_eq!(relu.run_with_hooks(hooks, skipped)?, "no forward this time");
    /// # Ok::<(), auto_hook_runtime::Error>(())
    /// ```
    pub fn may_not_fire(mut self) -> Self {
        self.may_not_fire = true;
        self
    }

    /// Adds a hook on every point selected by `filter` (a name, a glob, a list of them,
    /// or [`Filter::pred`]). Hooks at one point run in the order they were added.
    pub fn add<F, R>(mut self, filter: impl Into<Filter>, hook: F) -> Self
    where
        F: FnMut(&Tensor, &HookInfo) -> R + 'a,
        R: HookReturn,
    {
        self.entries
            .push((filter.into(), HookFn::Forward(boxed_call_hook(hook))));
        self
    }

    /// Adds a backward hook on every point selected by `filter`. It receives the gradient
    /// flowing into the point's output when a loss computed in this run is
    /// backpropagated (`loss.backward()`), and may keep it (`()`) or replace it (a
    /// tensor of the same shape). It lives in that run's graph: nothing to keep alive,
    /// nothing leaking into later runs. Runs with no backward hook add no op to the graph.
    ///
    /// Why `'static + Send + Sync`, when forward hooks may borrow: a backward hook runs
    /// during `loss.backward()`, after `run_with_hooks` has returned. It is stored in the
    /// autograd graph of the output tensor, which may outlive the call's locals and be
    /// backpropagated on any thread (candle tensors are `Send + Sync`). So it owns what
    /// it uses; to get values out, share them through an `Arc<Mutex<_>>`:
    ///
    /// ```
    /// use auto_hook_runtime::{auto_hook, HookedRoot, Hooks};
    /// use candle_core::{Device, Module, Tensor, Var};
    /// use std::sync::{Arc, Mutex};
    /// let layer = auto_hook(candle_nn::Activation::Relu);
    /// let x = Var::new(&[1f32, -2.0, 3.0], &Device::Cpu)?;
    /// let seen: Arc<Mutex<Vec<Vec<f32>>>> = Arc::default();
    /// let sink = seen.clone(); // the hook owns this handle
    /// let hooks = Hooks::new().backward("hook_point", move |grad, _| {
    ///     sink.lock().unwrap().push(grad.to_vec1::<f32>().unwrap());
    /// });
    /// let y = layer.run_with_hooks(hooks, |m| m.forward(x.as_tensor()))?;
    /// y.sum_all()?.backward()?; // the hook runs here, after the call returned
    /// assert_eq!(*seen.lock().unwrap(), [vec![1.0, 1.0, 1.0]]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// A hook that replaces the gradient returns a tensor:
    ///
    /// ```
    /// use auto_hook_runtime::Hooks;
    /// let hooks = Hooks::new().backward("**", |grad, _| grad * 2.0);
    /// assert_eq!(hooks.len(), 1);
    /// ```
    pub fn backward<F, R>(mut self, filter: impl Into<Filter>, hook: F) -> Self
    where
        F: Fn(&Tensor, &HookInfo) -> R + Send + Sync + 'static,
        R: HookReturn,
    {
        self.entries
            .push((filter.into(), HookFn::Backward(shared(hook))));
        self
    }

    pub(crate) fn push_backward(&mut self, filter: Filter, hook: SharedHook) {
        self.entries.push((filter, HookFn::Backward(hook)));
    }

    /// How many hooks were added.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no hook was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The hooks, and whether the run must see a point of the model fire.
    pub(crate) fn into_parts(self) -> (Vec<(Filter, HookFn<'a>)>, bool) {
        let watch = !self.entries.is_empty() && !self.may_not_fire;
        (self.entries, watch)
    }
}

/// Resolves per-call hooks (and an optional stop set) against the model's hook points,
/// checking every filter, and builds the context of the call. When hooks are given, the
/// context also knows the model's points (by their id range), so a run in which none
/// of them fires is an error ([`crate::Error::NoHookFired`]).
pub(crate) fn build_context<'a, M: HookedModule + ?Sized>(
    model: &M,
    hooks: Hooks<'a>,
    stop_at: Option<&Filter>,
) -> Result<Context<'a>> {
    let (entries, watch) = hooks.into_parts();
    let mut leaves: Vec<(usize, &Filter, bool)> = Vec::new();
    for (index, (filter, _)) in entries.iter().enumerate() {
        flatten(filter, &mut |leaf| leaves.push((index, leaf, false)));
    }
    if let Some(stop) = stop_at {
        flatten(stop, &mut |leaf| leaves.push((usize::MAX, leaf, false)));
    }
    let mut slots: IdMap<Slot> = IdMap::default();
    let mut ids: Option<(HookId, HookId)> = None;
    walk(model, &mut |name, point| {
        let id = point.id();
        ids = Some(ids.map_or((id, id), |(lo, hi)| (lo.min(id), hi.max(id))));
        let mut slot: Option<Slot> = None;
        let mut last = None;
        for (index, leaf, matched) in leaves.iter_mut() {
            if !leaf.matches(name) {
                continue;
            }
            *matched = true;
            let slot = slot.get_or_insert_with(|| Slot::new(Arc::from(name)));
            if *index == usize::MAX {
                slot.stop_target = true;
            } else if last != Some(*index) {
                match &entries[*index].1 {
                    HookFn::Forward(_) => slot.hooks.push(*index),
                    HookFn::Backward(hook) => slot.backward.push(hook.clone()),
                }
                last = Some(*index);
            }
        }
        if let Some(slot) = slot {
            slots.insert(point.id(), slot);
        }
    });
    if let Some((_, leaf, _)) = leaves.iter().find(|(_, _, matched)| !matched) {
        let names = hook_name_list(model);
        leaf.validate(names.iter().map(String::as_str))?;
    }
    let watch = ids.filter(|_| watch).map(|(first, last)| FireWatch {
        first,
        last,
        hooks: entries.iter().map(|(f, _)| f.to_string()).collect(),
    });
    // Backward hooks were copied into their slots; their places keep indices stable.
    let hooks = entries
        .into_iter()
        .map(|(_, hook)| match hook {
            HookFn::Forward(hook) => hook,
            HookFn::Backward(_) => Box::new(|_: &Tensor, _: &HookInfo| Ok(None)) as CallHook<'a>,
        })
        .collect();
    Ok(Context::new(slots, hooks, stop_at.is_some(), watch))
}

fn flatten<'f>(filter: &'f Filter, out: &mut dyn FnMut(&'f Filter)) {
    match filter {
        Filter::Any(list) => list.iter().for_each(|f| flatten(f, out)),
        leaf => out(leaf),
    }
}

/// Every hook name of `model`, in declaration order.
pub(crate) fn hook_name_list<M: HookedModule + ?Sized>(model: &M) -> Vec<String> {
    let mut names = Vec::new();
    walk(model, &mut |name, _| names.push(name.to_owned()));
    names
}
