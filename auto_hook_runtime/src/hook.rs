//! Hook functions: what a hook receives and what it may return.

use candle_core::{Result, Tensor};

/// What a hook knows about the point it runs at.
///
/// ```
/// use auto_hook_runtime::HookInfo;
/// let info = HookInfo::new("fc1.hook_point");
/// assert_eq!(info.name(), "fc1.hook_point");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct HookInfo<'a> {
    name: &'a str,
}

impl<'a> HookInfo<'a> {
    /// Info for the hook point called `name`.
    pub fn new(name: &'a str) -> Self {
        Self { name }
    }

    /// The full dotted name of the hook point, e.g. `layers.0.fc1.hook_point`.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// The layer: the first container index in the name (`blocks.3.attn.hook_z` → 3,
    /// `layers.0.fc1.hook_point` → 0), as TransformerLens's `hook.layer()`; `None` for
    /// a point outside any list (`hook_embed`, `ln_final.hook_scale`).
    ///
    /// ```
    /// use auto_hook_runtime::HookInfo;
    /// assert_eq!(HookInfo::new("blocks.3.attn.hook_z").layer(), Some(3));
    /// assert_eq!(HookInfo::new("ln_final.hook_scale").layer(), None);
    /// ```
    pub fn layer(&self) -> Option<usize> {
        self.indices().next()
    }

    /// Every container index in the name, outermost first: the layer, then the index
    /// inside it when points sit in a nested list (`blocks.2.mlp.experts.5.hook_post`
    /// → 2, 5: layer and expert; `blocks.1.heads.7.hook_point` → 1, 7: layer and head).
    ///
    /// ```
    /// use auto_hook_runtime::HookInfo;
    /// let info = HookInfo::new("blocks.1.heads.7.hook_point");
    /// assert_eq!(info.indices().collect::<Vec<_>>(), [1, 7]);
    /// assert_eq!(info.indices().nth(1), Some(7)); // the head
    /// ```
    pub fn indices(&self) -> impl Iterator<Item = usize> + 'a {
        self.name.split('.').filter_map(|s| s.parse().ok())
    }
}

/// What a hook closure may return: `()` or `Result<()>` keep the activation, a `Tensor`
/// (or `Result<Tensor>`, `Option<Tensor>`) replaces it.
///
/// ```
/// use auto_hook_runtime::HookReturn;
/// use candle_core::{Device, Tensor};
/// let t = Tensor::zeros(2, candle_core::DType::F32, &Device::Cpu)?;
/// assert!(().into_replacement()?.is_none());
/// assert!(t.clone().into_replacement()?.is_some());
/// # Ok::<(), candle_core::Error>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "a hook must return `()`, `Tensor`, `Option<Tensor>` or a `candle_core::Result` of one of them, not `{Self}`"
)]
pub trait HookReturn {
    /// `None` keeps the activation, `Some(t)` replaces it.
    fn into_replacement(self) -> Result<Option<Tensor>>;
}

impl HookReturn for () {
    fn into_replacement(self) -> Result<Option<Tensor>> {
        Ok(None)
    }
}

impl HookReturn for Tensor {
    fn into_replacement(self) -> Result<Option<Tensor>> {
        Ok(Some(self))
    }
}

impl HookReturn for Option<Tensor> {
    fn into_replacement(self) -> Result<Option<Tensor>> {
        Ok(self)
    }
}

/// `!`, the type of `panic!()` / `todo!()`, named on stable Rust through a function
/// pointer's output.
mod never {
    pub trait FnOutput {
        type Output;
    }
    impl<T> FnOutput for fn() -> T {
        type Output = T;
    }
    pub type Never = <fn() -> ! as FnOutput>::Output;
}

/// A hook whose body only diverges (`|_, _| todo!()`, `|_, _| panic!("..")`) needs no
/// `-> ()` annotation.
///
/// ```should_panic
/// use auto_hook_runtime::{auto_hook, HookedRoot, Hooks};
/// use candle_core::{Device, Module, Tensor};
/// let relu = auto_hook(candle_nn::Activation::Relu);
/// let x = Tensor::new(&[1f32], &Device::Cpu).unwrap();
/// let hooks = Hooks::new().add("hook_point", |_, _| todo!());
/// let _ = relu.run_with_hooks(hooks, |m| m.forward(&x)); // panics in the hook
/// ```
impl HookReturn for never::Never {
    fn into_replacement(self) -> Result<Option<Tensor>> {
        self
    }
}

impl<T: HookReturn> HookReturn for Result<T> {
    fn into_replacement(self) -> Result<Option<Tensor>> {
        self?.into_replacement()
    }
}

/// A per-call hook, boxed: may borrow and mutate local state of the caller.
pub(crate) type CallHook<'a> = Box<dyn FnMut(&Tensor, &HookInfo) -> Result<Option<Tensor>> + 'a>;

/// A persistent hook, shared by every thread that runs the model.
pub(crate) type SharedHook =
    std::sync::Arc<dyn Fn(&Tensor, &HookInfo) -> Result<Option<Tensor>> + Send + Sync>;

/// Boxes a user closure into a per-call hook.
pub(crate) fn boxed_call_hook<'a, F, R>(mut f: F) -> CallHook<'a>
where
    F: FnMut(&Tensor, &HookInfo) -> R + 'a,
    R: HookReturn,
{
    Box::new(move |x, info| f(x, info).into_replacement())
}

/// Checks that a replacement fits where the activation was; names the hook otherwise.
pub(crate) fn check_replacement(
    name: &str,
    original: &Tensor,
    replacement: &Tensor,
) -> std::result::Result<(), crate::Error> {
    let fits = original.dims() == replacement.dims()
        && original.dtype() == replacement.dtype()
        && original.device().same_device(replacement.device());
    if fits {
        return Ok(());
    }
    let describe = |t: &Tensor| {
        format!(
            "shape {:?} dtype {:?} device {:?}",
            t.dims(),
            t.dtype(),
            t.device().location()
        )
    };
    Err(crate::Error::ReplacementMismatch {
        hook: name.to_owned(),
        expected: describe(original),
        got: describe(replacement),
    })
}
