//! `ActivationCache`: activations captured by `run_with_cache`, in firing order.

use crate::backward::GradSink;
use crate::error::{Error, Result};
use crate::filter::{glob_match, nearest_names, Filter};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::sync::Arc;

/// Why gradients stop: candle-nn's fused kernels and their differentiable stand-ins.
pub(crate) const CUT_GRAPH: &str =
    "candle-nn's fused kernels have no backward and cut the graph silently: replace \
     candle_nn::ops::softmax_last_dim, layer_norm, rms_norm and candle_nn::rotary_emb::rope \
     with auto_hook::ops::softmax_last_dim, layer_norm, rms_norm and rope, and the \
     candle_nn::LayerNorm / RmsNorm modules with auto_hook::nn::LayerNorm / RmsNorm";

/// What `run_with_cache` captures, and how it stores it.
///
/// ```
/// use auto_hook_runtime::CacheOptions;
/// use candle_core::{DType, Device};
/// let all = CacheOptions::all();
/// let some = CacheOptions::names("layers.*.hook_point").to_device(&Device::Cpu).to_dtype(DType::F16).remove_batch_dim();
/// # let _ = (all, some);
/// ```
#[derive(Clone, Debug, Default)]
pub struct CacheOptions {
    pub(crate) filter: Option<Filter>,
    pub(crate) device: Option<Device>,
    pub(crate) dtype: Option<DType>,
    pub(crate) remove_batch_dim: bool,
    pub(crate) grads: bool,
}

impl CacheOptions {
    /// Cache every hook point.
    pub fn all() -> Self {
        Self::default()
    }

    /// Cache the points selected by `filter`.
    pub fn names(filter: impl Into<Filter>) -> Self {
        Self {
            filter: Some(filter.into()),
            ..Self::default()
        }
    }

    /// Store cached activations on `device`.
    pub fn to_device(mut self, device: &Device) -> Self {
        self.device = Some(device.clone());
        self
    }

    /// Store cached activations as `dtype`.
    pub fn to_dtype(mut self, dtype: DType) -> Self {
        self.dtype = Some(dtype);
        self
    }

    /// Drop the leading batch axis of every cached activation (the batch must be 1).
    pub fn remove_batch_dim(mut self) -> Self {
        self.remove_batch_dim = true;
        self
    }

    /// Also record the gradient of every cached activation when a loss from this run is
    /// backpropagated (TransformerLens's `incl_bwd`); read them with
    /// [`ActivationCache::grad`]. Works when the weights are plain tensors too: the first
    /// cached activation that tracks no gradient becomes a leaf that does.
    pub fn with_grads(mut self) -> Self {
        self.grads = true;
        self
    }

    pub(crate) fn filter(&self) -> Filter {
        self.filter.clone().unwrap_or(Filter::All)
    }

    /// Turns an activation into what the cache keeps.
    pub(crate) fn store(&self, x: &Tensor, name: &str) -> candle_core::Result<Tensor> {
        let mut x = x.detach();
        if self.remove_batch_dim {
            x = squeeze_batch(&x, name)?;
        }
        if let Some(device) = &self.device {
            x = x.to_device(device)?;
        }
        if let Some(dtype) = self.dtype {
            x = x.to_dtype(dtype)?;
        }
        Ok(x)
    }
}

fn squeeze_batch(x: &Tensor, name: &str) -> candle_core::Result<Tensor> {
    match x.dims().first() {
        Some(1) => x.squeeze(0),
        _ => Err(candle_core::Error::Msg(format!(
            "remove_batch_dim: activation `{name}` has shape {:?}, whose first axis is not a batch of 1",
            x.dims()
        ))),
    }
}

macro_rules! options_from_filter {
    ($($t:ty),*) => {$(
        impl From<$t> for CacheOptions {
            fn from(f: $t) -> Self {
                CacheOptions::names(f)
            }
        }
    )*};
}

options_from_filter!(&str, String, &String, Filter);

/// A list of names or globs: `Vec<&str>`, `Vec<String>`, `Vec<Filter>`, ...
impl<T: Into<Filter>> From<Vec<T>> for CacheOptions {
    fn from(f: Vec<T>) -> Self {
        CacheOptions::names(f)
    }
}

/// A slice of names or globs: `&[&str]`, `&[String]`, ...
impl<T: Into<Filter> + Clone> From<&[T]> for CacheOptions {
    fn from(f: &[T]) -> Self {
        CacheOptions::names(f)
    }
}

/// An array of names or globs: `[&str; N]`, `[String; N]`, ...
///
/// ```
/// use auto_hook_runtime::{auto_hook, CacheOptions, HookedRoot};
/// use candle_core::{Device, Module, Tensor};
/// let relu = auto_hook(candle_nn::Activation::Relu);
/// let x = Tensor::new(&[1f32, -1.0], &Device::Cpu)?;
/// let names = [String::from("hook_point"), format!("hook_{}", "point")];
/// let (_, cache) = relu.run_with_cache(names, |m| m.forward(&x))?;
/// assert!(cache.contains("hook_point"));
/// let (_, cache) = relu.run_with_cache(["hook_point"], |m| m.forward(&x))?;
/// let (_, cache) = relu.run_with_cache(vec!["hook_point"], |m| m.forward(&x))?;
/// let (_, cache) = relu.run_with_cache(vec![String::from("hook_point")], |m| m.forward(&x))?;
/// # let _ = cache;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
impl<T: Into<Filter>, const N: usize> From<[T; N]> for CacheOptions {
    fn from(f: [T; N]) -> Self {
        CacheOptions::names(f)
    }
}

/// Captured activations: an ordered map from hook name to tensor, in the order the
/// points first fired. A point that fires several times (a parameter used twice) keeps
/// its first position and its last value.
///
/// ```
/// use auto_hook_runtime::ActivationCache;
/// use candle_core::{Device, Tensor};
/// let mut cache = ActivationCache::new();
/// cache.insert("layers.0.hook_point", Tensor::ones((1, 3), candle_core::DType::F32, &Device::Cpu)?);
/// cache.insert("layers.1.hook_point", Tensor::zeros((1, 3), candle_core::DType::F32, &Device::Cpu)?);
/// assert_eq!(cache.stack("layers.*.hook_point")?.dims(), [2, 1, 3]);
/// assert!(cache.get("layers.2.hook_point").unwrap_err().to_string().contains("layers.1.hook_point"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct ActivationCache {
    names: Vec<Arc<str>>,
    tensors: Vec<Tensor>,
    index: HashMap<Arc<str>, usize>,
    grads: Option<Arc<GradSink>>,
}

impl ActivationCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores `tensor` under `name` (replacing the value, keeping the position).
    pub fn insert(&mut self, name: &str, tensor: Tensor) {
        if let Some(&i) = self.index.get(name) {
            self.tensors[i] = tensor;
            return;
        }
        let name: Arc<str> = Arc::from(name);
        self.index.insert(name.clone(), self.names.len());
        self.names.push(name);
        self.tensors.push(tensor);
    }

    /// The activation called `name`; the error lists the nearest cached names.
    pub fn get(&self, name: &str) -> Result<&Tensor> {
        match self.index.get(name) {
            Some(&i) => Ok(&self.tensors[i]),
            None => Err(Error::UnknownHook {
                name: name.to_owned(),
                nearest: nearest_names(name, self.names()),
            }),
        }
    }

    /// Whether `name` was cached.
    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// Cached names in firing order.
    pub fn names(&self) -> impl Iterator<Item = &str> + Clone {
        self.names.iter().map(|n| &**n)
    }

    /// `(name, tensor)` pairs in firing order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.names.iter().map(|n| &**n).zip(&self.tensors)
    }

    /// Number of cached activations.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether nothing was cached.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Stacks the activations whose names match the glob `pattern` (in firing order)
    /// along a new leading axis: `layers.*.hook_point` gives `[n_layers, ...]`.
    pub fn stack(&self, pattern: &str) -> Result<Tensor> {
        let picked: Vec<&Tensor> = self
            .iter()
            .filter(|(n, _)| glob_match(pattern.as_bytes(), n.as_bytes()))
            .map(|(_, t)| t)
            .collect();
        if picked.is_empty() {
            return Err(Error::NoMatch {
                filter: format!("glob `{pattern}`"),
                nearest: nearest_names(pattern, self.names()),
            });
        }
        Ok(Tensor::stack(&picked, 0)?)
    }

    /// Applies `f` to every tensor, keeping names and order.
    pub fn map(
        &self,
        mut f: impl FnMut(&str, &Tensor) -> candle_core::Result<Tensor>,
    ) -> Result<Self> {
        let tensors = self
            .iter()
            .map(|(n, t)| f(n, t))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            names: self.names.clone(),
            tensors,
            index: self.index.clone(),
            grads: self.grads.clone(),
        })
    }

    pub(crate) fn set_grads(&mut self, sink: Arc<GradSink>) {
        self.grads = Some(sink);
    }

    /// The gradient of the loss with respect to the cached activation `name` (also
    /// accepted as `NAME_grad`, TransformerLens's key), once a loss computed from this
    /// run has been backpropagated. Needs [`CacheOptions::with_grads`].
    pub fn grad(&self, name: &str) -> Result<Tensor> {
        let name = name
            .strip_suffix("_grad")
            .filter(|n| self.contains(n))
            .unwrap_or(name);
        let Some(sink) = &self.grads else {
            return Err(Error::Cache(
                "this cache was made without gradients: use CacheOptions::with_grads()".into(),
            ));
        };
        self.get(name)?;
        sink.get(name).ok_or_else(|| {
            let hint = if sink.is_empty() {
                "call backward() on a loss computed from this run's output first".to_owned()
            } else if let Some(later) = self.later_point_with_grad(name, sink) {
                format!(
                    "`{later}`, which fired after it, has one, so the graph was cut between \
                     them, or the loss does not depend on this point: {CUT_GRAPH}"
                )
            } else {
                "the loss does not depend on this activation".to_owned()
            };
            Error::Cache(format!("no gradient for `{name}`: {hint}"))
        })
    }

    /// The first point cached after `name` (in firing order) that has a gradient.
    fn later_point_with_grad(&self, name: &str, sink: &GradSink) -> Option<&str> {
        let at = *self.index.get(name)?;
        self.names[at + 1..]
            .iter()
            .map(|n| &**n)
            .find(|n| sink.get(n).is_some())
    }

    /// Every recorded gradient as a cache of its own, keyed `NAME_grad`, in firing order
    /// (ready to `save`).
    pub fn gradients(&self) -> Result<Self> {
        let mut out = ActivationCache::new();
        for name in self.names() {
            if let Ok(grad) = self.grad(name) {
                out.insert(&format!("{name}_grad"), grad);
            }
        }
        Ok(out)
    }

    /// Every activation without its leading batch axis of size 1.
    pub fn remove_batch_dim(&self) -> Result<Self> {
        self.map(|n, t| squeeze_batch(t, n))
    }

    /// Every activation moved to `device`.
    pub fn to_device(&self, device: &Device) -> Result<Self> {
        self.map(|_, t| t.to_device(device))
    }

    /// Every activation converted to `dtype`.
    pub fn to_dtype(&self, dtype: DType) -> Result<Self> {
        self.map(|_, t| t.to_dtype(dtype))
    }
}
