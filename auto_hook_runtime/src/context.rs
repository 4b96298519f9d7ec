//! The per-call hook context: the hooks of one `run_with_hooks` / `run_with_cache` call.
//!
//! A context lives on the caller's stack. While its run closure executes, a thread-local
//! pointer names it, so hook points that fire on this thread find it; other threads
//! never see it. A run inside a run (a cache inside a hooked run) chains to the outer
//! context: outer hooks fire first.

use crate::backward::BackwardPoint;
use crate::error::Error;
use crate::hook::{check_replacement, CallHook, HookInfo, SharedHook};
use crate::hook_point::HookId;
use candle_core::Tensor;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

thread_local! {
    static CURRENT: Cell<*const Context<'static>> = const { Cell::new(std::ptr::null()) };
}

const STOP_MESSAGE: &str =
    "auto_hook: forward stopped early (stop_at): every requested activation was captured";

/// Whether a context is active on this thread. No lock, no allocation.
#[inline]
pub(crate) fn is_active() -> bool {
    CURRENT.with(|c| !c.get().is_null())
}

/// Whether the active context (or one it is nested in) has hooks, a cache or a stop
/// target on hook point `id`. No lock, no allocation: a map lookup per context.
pub(crate) fn selects(id: HookId) -> bool {
    let mut ptr = CURRENT.with(|c| c.get());
    while !ptr.is_null() {
        // SAFETY: as in `fire`; an outer context outlives the run nested in it.
        let context = unsafe { &*ptr };
        if context.slots.contains_key(&id) {
            return true;
        }
        ptr = context.parent.get();
    }
    false
}

/// Runs the active context's forward hooks for hook point `id` (if any) on `x`, and
/// collects its backward hooks into `backward`.
pub(crate) fn fire(id: HookId, x: Tensor, backward: &mut Backward) -> candle_core::Result<Tensor> {
    let ptr = CURRENT.with(|c| c.get());
    if ptr.is_null() {
        return Ok(x);
    }
    // SAFETY: `Context::run` stores this pointer only while the context is borrowed for
    // the run, on this thread, and a drop guard restores the previous value before the
    // borrow ends (also when the run unwinds).
    unsafe { &*ptr }.fire(id, x, backward)
}

/// The backward hooks gathered for one firing of a hook point.
#[derive(Default)]
pub(crate) struct Backward {
    pub(crate) name: Option<Arc<str>>,
    pub(crate) hooks: Vec<SharedHook>,
}

impl Backward {
    pub(crate) fn push(&mut self, name: &Arc<str>, hook: &SharedHook) {
        self.name.get_or_insert_with(|| name.clone());
        self.hooks.push(hook.clone());
    }

    /// Puts the gathered hooks on `x` (nothing at all when there are none).
    pub(crate) fn attach(self, x: Tensor) -> candle_core::Result<Tensor> {
        match self.name {
            Some(name) if !self.hooks.is_empty() => BackwardPoint {
                name,
                hooks: self.hooks,
            }
            .attach(x),
            _ => Ok(x),
        }
    }
}

/// Hook ids come from a counter; a multiplicative mix is all the hashing they need.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

pub(crate) type IdMap<V> = HashMap<HookId, V, BuildHasherDefault<IdHasher>>;
/// What a run must see for its hooks to have had a chance: one of the model's points
/// firing. Without it, the hooks given to the call were never reachable (the forward
/// ran on a clone, another model or thread, or outside the run closure).
///
/// The model's points are known by the range of their ids: no allocation per call. A
/// clone's points are newer than every point of the model, so they fall outside it; a
/// point of another model inside the range can only hide the error, never raise it.
pub(crate) struct FireWatch {
    pub(crate) first: HookId,
    pub(crate) last: HookId,
    /// The filters of the hooks given, for the error message.
    pub(crate) hooks: Vec<String>,
}

impl FireWatch {
    fn covers(&self, id: HookId) -> bool {
        (self.first..=self.last).contains(&id)
    }
}

/// The hooks selected for one hook point in one run.
pub(crate) struct Slot {
    pub(crate) name: Arc<str>,
    pub(crate) hooks: Vec<usize>,
    pub(crate) backward: Vec<SharedHook>,
    pub(crate) stop_target: bool,
    /// Fired, or (for `stop_at`) covered: a module whose own point is a target returned,
    /// so the targets inside it that did not fire will not fire in this call.
    fired: Cell<bool>,
    /// For a target that is a module's own point (`P.hook_point`): the other targets
    /// under `P.`, covered when it fires.
    covers: Vec<HookId>,
}

impl Slot {
    pub(crate) fn new(name: Arc<str>) -> Self {
        Self {
            name,
            hooks: Vec::new(),
            backward: Vec::new(),
            stop_target: false,
            fired: Cell::new(false),
            covers: Vec::new(),
        }
    }
}

/// The hooks of one call.
pub(crate) struct Context<'a> {
    slots: IdMap<Slot>,
    hooks: Vec<RefCell<CallHook<'a>>>,
    stop_remaining: Cell<usize>,
    stop_enabled: bool,
    stopped: Cell<bool>,
    error: RefCell<Option<Error>>,
    parent: Cell<*const Context<'static>>,
    watch: Option<FireWatch>,
    model_fired: Cell<bool>,
}

impl<'a> Context<'a> {
    pub(crate) fn new(
        mut slots: IdMap<Slot>,
        hooks: Vec<CallHook<'a>>,
        stop_enabled: bool,
        watch: Option<FireWatch>,
    ) -> Self {
        let stop_targets = slots.values().filter(|s| s.stop_target).count();
        if stop_enabled {
            link_covers(&mut slots);
        }
        Self {
            slots,
            hooks: hooks.into_iter().map(RefCell::new).collect(),
            stop_remaining: Cell::new(stop_targets),
            stop_enabled,
            stopped: Cell::new(false),
            error: RefCell::new(None),
            parent: Cell::new(std::ptr::null()),
            watch,
            model_fired: Cell::new(false),
        }
    }

    /// Runs `f` with this context active on the current thread, then turns the
    /// outcome into the runtime's error type.
    pub(crate) fn run<T, E: Into<Error>>(
        &self,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<Option<T>, Error> {
        struct Restore(*const Context<'static>);
        impl Drop for Restore {
            fn drop(&mut self) {
                CURRENT.with(|c| c.set(self.0));
            }
        }
        // The lifetime is erased: the pointer is only read during this run (see `fire`).
        let me = (self as *const Self).cast::<Context<'static>>();
        let parent = CURRENT.with(|c| c.replace(me));
        self.parent.set(parent);
        let restore = Restore(parent);
        let result = f();
        drop(restore);
        self.finish(result)
    }

    fn finish<T, E: Into<Error>>(&self, result: Result<T, E>) -> Result<Option<T>, Error> {
        if self.stopped.get() {
            return Ok(None);
        }
        match result {
            Err(e) => Err(self.error.take().unwrap_or_else(|| e.into())),
            Ok(_) if !self.model_fired.get() && self.watch.is_some() => {
                let hooks = self.watch.as_ref().map_or(Vec::new(), |w| w.hooks.clone());
                Err(Error::NoHookFired { hooks })
            }
            Ok(v) if self.stop_enabled => {
                let names = self
                    .slots
                    .values()
                    .filter(|s| s.stop_target && !s.fired.get());
                let names: Vec<String> = names.map(|s| s.name.to_string()).collect();
                if names.is_empty() {
                    Ok(Some(v))
                } else {
                    Err(Error::StopAtNeverFired { names })
                }
            }
            Ok(v) => Ok(Some(v)),
        }
    }

    fn fire(
        &self,
        id: HookId,
        mut x: Tensor,
        backward: &mut Backward,
    ) -> candle_core::Result<Tensor> {
        let parent = self.parent.get();
        if !parent.is_null() {
            // SAFETY: an outer context outlives the inner run (see `run`).
            x = unsafe { &*parent }.fire(id, x, backward)?;
        }
        if self.stopped.get() {
            return Err(candle_core::Error::Msg(STOP_MESSAGE.into()));
        }
        let Some(slot) = self.slots.get(&id) else {
            if !self.model_fired.get() {
                let ours = self.watch.as_ref().is_some_and(|w| w.covers(id));
                self.model_fired.set(ours);
            }
            return Ok(x);
        };
        self.model_fired.set(true);
        for &index in &slot.hooks {
            // A hook that re-runs the model from inside itself does not re-enter itself.
            let Ok(mut hook) = self.hooks[index].try_borrow_mut() else {
                continue;
            };
            match hook(&x, &HookInfo::new(&slot.name)) {
                Ok(None) => {}
                Ok(Some(replacement)) => {
                    if let Err(e) = check_replacement(&slot.name, &x, &replacement) {
                        return Err(self.fail(e));
                    }
                    x = replacement;
                }
                Err(source) => {
                    return Err(self.fail(Error::HookFailed {
                        hook: slot.name.to_string(),
                        source,
                    }))
                }
            }
        }
        slot.backward
            .iter()
            .for_each(|hook| backward.push(&slot.name, hook));
        if slot.stop_target {
            // the target, and the targets inside a module whose forward just returned
            let newly = std::iter::once(slot)
                .chain(slot.covers.iter().filter_map(|id| self.slots.get(id)))
                .filter(|s| !s.fired.replace(true))
                .count();
            let left = self.stop_remaining.get() - newly;
            self.stop_remaining.set(left);
            if newly > 0 && left == 0 {
                self.stopped.set(true);
                return Err(candle_core::Error::Msg(STOP_MESSAGE.into()));
            }
        }
        Ok(x)
    }

    /// Keeps the typed error for the caller and hands the forward a candle error.
    fn fail(&self, e: Error) -> candle_core::Error {
        let msg = candle_core::Error::Msg(e.to_string());
        self.error.borrow_mut().get_or_insert(e);
        msg
    }
}

/// `stop_at` stops after the last selected point that fires: a selected module's own
/// point (`layers.0.hook_point`) fires when its forward returns, after every point
/// inside it that fires at all, so it covers the selected points under `layers.0.`
/// (a branch not taken, a value the model memoized on an earlier call).
fn link_covers(slots: &mut IdMap<Slot>) {
    let targets: Vec<(HookId, Arc<str>)> = slots
        .iter()
        .filter(|(_, s)| s.stop_target)
        .map(|(id, s)| (*id, s.name.clone()))
        .collect();
    for (id, name) in &targets {
        let Some(prefix) = name.strip_suffix("hook_point") else {
            continue;
        };
        if !(prefix.is_empty() || prefix.ends_with('.')) {
            continue;
        }
        let covers: Vec<HookId> = targets
            .iter()
            .filter(|(other, n)| other != id && n.starts_with(prefix))
            .map(|(other, _)| *other)
            .collect();
        if let Some(slot) = slots.get_mut(id) {
            slot.covers = covers;
        }
    }
}
