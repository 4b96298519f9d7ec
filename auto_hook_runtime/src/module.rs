//! `HookedModule`: the trait every hooked value implements, and the walkers that visit
//! a model's hook points in declaration order.
//!
//! `#[auto_hook]` implements it for annotated structs field by field; containers
//! implement it here by hand, so the macro needs no special cases for them.

use crate::hook_point::HookPoint;
use crate::schema::Schema;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::hash::Hash;

/// A value that holds hook points: an annotated model, a wrapped module, a parameter,
/// a container of those, or a bare [`HookPoint`].
///
/// ```
/// use auto_hook_runtime::{HookPoint, HookedModule};
/// let points = vec![HookPoint::new(), HookPoint::new()];
/// assert_eq!(<Vec<HookPoint>>::hook_names(), ["*"]);
/// let mut names = Vec::new();
/// auto_hook_runtime::walk(&points, &mut |name, _| names.push(name.to_owned()));
/// assert_eq!(names, ["0", "1"]);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no hook points: it is not an #[auto_hook] model",
    note = "annotate `{Self}` with #[auto_hook], wrap a candle module with `auto_hook(...)`, or derive `HookedRoot`"
)]
pub trait HookedModule {
    /// The hook-name layout of this type.
    const SCHEMA: Schema;

    /// [`SCHEMA`](Self::SCHEMA) as a `'static` reference.
    #[doc(hidden)]
    const SCHEMA_REF: &'static Schema = &Self::SCHEMA;

    /// Calls the walker for every hook point, in declaration order.
    fn visit_hooks<'s>(&'s self, walker: &mut Walker<'_, 's>);

    /// Same, with mutable access (to attach and remove persistent hooks).
    fn visit_hooks_mut(&mut self, walker: &mut WalkerMut<'_>);

    /// The hook-name layout of this value: [`SCHEMA`](Self::SCHEMA), except for a
    /// wrapper whose layout is known only at run time (`auto_hook` of an annotated
    /// `Module`).
    fn schema(&self) -> &'static Schema {
        Self::SCHEMA_REF
    }

    /// The hook-name patterns of the type, without building it: `*` stands for container
    /// indices and keys.
    fn hook_names() -> Vec<String>
    where
        Self: Sized,
    {
        Self::SCHEMA.patterns()
    }
}

/// Visits every hook point of `module` with its full name.
pub fn walk<'s, M: HookedModule + ?Sized>(
    module: &'s M,
    on_point: &mut dyn FnMut(&str, &'s HookPoint),
) {
    module.visit_hooks(&mut Walker::new(on_point));
}

/// Visits every hook point of `module` mutably, with its full name.
pub fn walk_mut<M: HookedModule + ?Sized>(
    module: &mut M,
    on_point: &mut dyn FnMut(&str, &mut HookPoint),
) {
    module.visit_hooks_mut(&mut WalkerMut {
        path: String::new(),
        on_point,
    });
}

/// Visits every module (annotated struct or wrapped module) with its name and type.
pub(crate) fn walk_modules<M: HookedModule + ?Sized>(
    module: &M,
    on_module: &mut dyn FnMut(&str, &'static str),
) {
    let mut ignore = |_: &str, _: &HookPoint| {};
    let mut walker = Walker::new(&mut ignore);
    walker.on_module = Some(on_module);
    module.visit_hooks(&mut walker);
}

fn push_segment(path: &mut String, segment: impl std::fmt::Display) -> usize {
    let len = path.len();
    if len > 0 {
        path.push('.');
    }
    let _ = write!(path, "{segment}");
    len
}

type ModuleCallback<'w> = &'w mut dyn FnMut(&str, &'static str);

/// Walks hook points immutably, keeping the dotted path.
pub struct Walker<'w, 's> {
    path: String,
    on_point: &'w mut dyn FnMut(&str, &'s HookPoint),
    on_module: Option<ModuleCallback<'w>>,
    /// The shared `Arc` / `Rc` modules reached so far (no allocation until the first).
    shared: Vec<*const ()>,
}

impl<'w, 's> Walker<'w, 's> {
    /// A walker from the root that reports each point to `on_point`.
    pub(crate) fn new(on_point: &'w mut dyn FnMut(&str, &'s HookPoint)) -> Self {
        Walker {
            path: String::new(),
            on_point,
            on_module: None,
            shared: Vec::new(),
        }
    }

    /// Whether the module at `ptr`, shared by several owners, is reached for the first
    /// time in this walk. A shared module is listed once, under the first name it is
    /// reached by, and its points fire under that name whichever owner calls it (one
    /// module, one set of points; listing it twice would list points that never fire).
    fn first_visit(&mut self, ptr: *const ()) -> bool {
        if self.shared.contains(&ptr) {
            return false;
        }
        self.shared.push(ptr);
        true
    }
}

impl<'s> Walker<'_, 's> {
    /// Visits `child` under the name segment `segment`.
    #[inline]
    pub fn child<T: HookedModule + ?Sized>(
        &mut self,
        segment: impl std::fmt::Display,
        child: &'s T,
    ) {
        let len = push_segment(&mut self.path, segment);
        child.visit_hooks(self);
        self.path.truncate(len);
    }

    /// Visits the struct field `segment` (generated code: errors name the field).
    #[doc(hidden)]
    #[inline]
    pub fn field<F, T: HookedField<F> + ?Sized>(&mut self, segment: &str, child: &'s T) {
        let len = push_segment(&mut self.path, segment);
        child.visit_field(self);
        self.path.truncate(len);
    }

    /// Reports a hook point at the current path.
    #[inline]
    pub fn point(&mut self, point: &'s HookPoint) {
        (self.on_point)(&self.path, point);
    }

    /// Reports that a module of type `type_name` sits at the current path.
    #[inline]
    pub fn module(&mut self, type_name: &'static str) {
        if let Some(on_module) = self.on_module.as_mut() {
            on_module(&self.path, type_name);
        }
    }
}

/// Walks hook points mutably, keeping the dotted path.
pub struct WalkerMut<'w> {
    path: String,
    on_point: &'w mut dyn FnMut(&str, &mut HookPoint),
}

impl<'w> WalkerMut<'w> {
    /// A walker from the root that reports each point to `on_point`.
    pub(crate) fn new(on_point: &'w mut dyn FnMut(&str, &mut HookPoint)) -> Self {
        WalkerMut {
            path: String::new(),
            on_point,
        }
    }
}

impl WalkerMut<'_> {
    /// Visits `child` under the name segment `segment`.
    #[inline]
    pub fn child<T: HookedModule + ?Sized>(
        &mut self,
        segment: impl std::fmt::Display,
        child: &mut T,
    ) {
        let len = push_segment(&mut self.path, segment);
        child.visit_hooks_mut(self);
        self.path.truncate(len);
    }

    /// Visits the struct field `segment` (generated code: errors name the field).
    #[doc(hidden)]
    #[inline]
    pub fn field<F, T: HookedField<F> + ?Sized>(&mut self, segment: &str, child: &mut T) {
        let len = push_segment(&mut self.path, segment);
        child.visit_field_mut(self);
        self.path.truncate(len);
    }

    /// Reports a hook point at the current path.
    #[inline]
    pub fn point(&mut self, point: &mut HookPoint) {
        (self.on_point)(&self.path, point);
    }
}

impl HookedModule for HookPoint {
    const SCHEMA: Schema = Schema::Point;
    fn visit_hooks<'s>(&'s self, walker: &mut Walker<'_, 's>) {
        walker.point(self);
    }
    fn visit_hooks_mut(&mut self, walker: &mut WalkerMut<'_>) {
        walker.point(self);
    }
}

impl<T: HookedModule> HookedModule for Vec<T> {
    const SCHEMA: Schema = Schema::Seq(&T::SCHEMA);
    fn visit_hooks<'s>(&'s self, walker: &mut Walker<'_, 's>) {
        self.iter()
            .enumerate()
            .for_each(|(i, x)| walker.child(i, x));
    }
    fn visit_hooks_mut(&mut self, walker: &mut WalkerMut<'_>) {
        self.iter_mut()
            .enumerate()
            .for_each(|(i, x)| walker.child(i, x));
    }
}

impl<T: HookedModule, const N: usize> HookedModule for [T; N] {
    const SCHEMA: Schema = Schema::Array(N, &T::SCHEMA);
    fn visit_hooks<'s>(&'s self, walker: &mut Walker<'_, 's>) {
        self.iter()
            .enumerate()
            .for_each(|(i, x)| walker.child(i, x));
    }
    fn visit_hooks_mut(&mut self, walker: &mut WalkerMut<'_>) {
        self.iter_mut()
            .enumerate()
            .for_each(|(i, x)| walker.child(i, x));
    }
}

/// Map keys are listed sorted, so names are stable across runs (a `HashMap` iterates
/// in a random order).
impl<K: AsRef<str> + Eq + Hash, T: HookedModule, S> HookedModule for HashMap<K, T, S> {
    const SCHEMA: Schema = Schema::Seq(&T::SCHEMA);
    fn visit_hooks<'s>(&'s self, walker: &mut Walker<'_, 's>) {
        let mut entries: Vec<(&K, &T)> = self.iter().collect();
        entries.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
        entries
            .into_iter()
            .for_each(|(k, x)| walker.child(k.as_ref(), x));
    }
    fn visit_hooks_mut(&mut self, walker: &mut WalkerMut<'_>) {
        let mut entries: Vec<(&K, &mut T)> = self.iter_mut().collect();
        entries.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
        entries
            .into_iter()
            .for_each(|(k, x)| walker.child(k.as_ref(), x));
    }
}

impl<K: AsRef<str>, T: HookedModule> HookedModule for BTreeMap<K, T> {
    const SCHEMA: Schema = Schema::Seq(&T::SCHEMA);
    fn visit_hooks<'s>(&'s self, walker: &mut Walker<'_, 's>) {
        self.iter().for_each(|(k, x)| walker.child(k.as_ref(), x));
    }
    fn visit_hooks_mut(&mut self, walker: &mut WalkerMut<'_>) {
        self.iter_mut()
            .for_each(|(k, x)| walker.child(k.as_ref(), x));
    }
}

/// `Option` is transparent: `Some(x)` has the hook points of `x`, `None` has none.
impl<T: HookedModule> HookedModule for Option<T> {
    const SCHEMA: Schema = T::SCHEMA;
    fn visit_hooks<'s>(&'s self, walker: &mut Walker<'_, 's>) {
        if let Some(x) = self {
            x.visit_hooks(walker);
        }
    }
    fn visit_hooks_mut(&mut self, walker: &mut WalkerMut<'_>) {
        if let Some(x) = self {
            x.visit_hooks_mut(walker);
        }
    }
}

/// A tuple of modules: its elements are named `0`, `1`, ...
macro_rules! tuple_module {
    ($($t:ident $i:tt),+) => {
        impl<$($t: HookedModule),+> HookedModule for ($($t,)+) {
            const SCHEMA: Schema = Schema::Struct(&[$((stringify!($i), &$t::SCHEMA)),+]);
            fn visit_hooks<'s>(&'s self, walker: &mut Walker<'_, 's>) {
                $(walker.child($i, &self.$i);)+
            }
            fn visit_hooks_mut(&mut self, walker: &mut WalkerMut<'_>) {
                $(walker.child($i, &mut self.$i);)+
            }
        }
    };
}

tuple_module!(A 0, B 1);
tuple_module!(A 0, B 1, C 2);
tuple_module!(A 0, B 1, C 2, D 3);

/// `Box` is transparent.
impl<T: HookedModule> HookedModule for Box<T> {
    const SCHEMA: Schema = T::SCHEMA;
    fn visit_hooks<'s>(&'s self, walker: &mut Walker<'_, 's>) {
        (**self).visit_hooks(walker);
    }
    fn visit_hooks_mut(&mut self, walker: &mut WalkerMut<'_>) {
        (**self).visit_hooks_mut(walker);
    }
}

/// The field-level view of [`HookedModule`] that generated code uses: `F` names the
/// field, so a field whose type cannot be hooked gets an error that names it.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "auto_hook cannot hook field `{F}` of type `{Self}`",
    label = "not a hooked module",
    note = "annotate `{Self}` with #[auto_hook]; or mark the field #[auto_hook(leaf)] if `{Self}` implements candle's Module; or #[auto_hook(skip)] if it is data"
)]
pub trait HookedField<F> {
    const FIELD_SCHEMA: Schema;
    fn visit_field<'s>(&'s self, walker: &mut Walker<'_, 's>);
    fn visit_field_mut(&mut self, walker: &mut WalkerMut<'_>);
}

impl<T: HookedModule + ?Sized, F> HookedField<F> for T {
    const FIELD_SCHEMA: Schema = T::SCHEMA;
    #[inline]
    fn visit_field<'s>(&'s self, walker: &mut Walker<'_, 's>) {
        self.visit_hooks(walker);
    }
    #[inline]
    fn visit_field_mut(&mut self, walker: &mut WalkerMut<'_>) {
        self.visit_hooks_mut(walker);
    }
}

/// `Arc` is transparent. A module shared by several owners is listed once, under the
/// first name the walk reaches it by (see `Walker::first_visit`). Persistent hooks need
/// the only handle: a shared `Arc` is skipped by the mutable walk.
impl<T: HookedModule + ?Sized> HookedModule for std::sync::Arc<T> {
    const SCHEMA: Schema = T::SCHEMA;
    fn visit_hooks<'s>(&'s self, walker: &mut Walker<'_, 's>) {
        let shared = std::sync::Arc::strong_count(self) > 1;
        if !shared || walker.first_visit(std::sync::Arc::as_ptr(self).cast()) {
            (**self).visit_hooks(walker);
        }
    }
    fn visit_hooks_mut(&mut self, walker: &mut WalkerMut<'_>) {
        if let Some(inner) = std::sync::Arc::get_mut(self) {
            inner.visit_hooks_mut(walker);
        }
    }
}

/// `Rc` is transparent, as [`Arc`](std::sync::Arc).
impl<T: HookedModule + ?Sized> HookedModule for std::rc::Rc<T> {
    const SCHEMA: Schema = T::SCHEMA;
    fn visit_hooks<'s>(&'s self, walker: &mut Walker<'_, 's>) {
        let shared = std::rc::Rc::strong_count(self) > 1;
        if !shared || walker.first_visit(std::rc::Rc::as_ptr(self).cast()) {
            (**self).visit_hooks(walker);
        }
    }
    fn visit_hooks_mut(&mut self, walker: &mut WalkerMut<'_>) {
        if let Some(inner) = std::rc::Rc::get_mut(self) {
            inner.visit_hooks_mut(walker);
        }
    }
}
