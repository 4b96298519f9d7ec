//! Saving and loading an `ActivationCache` as safetensors (readable from Python/numpy).

use crate::cache::ActivationCache;
use crate::error::{Error, Result};
use candle_core::Device;
use std::collections::HashMap;
use std::path::Path;

/// Metadata key holding the cached names in firing order, one per line.
pub const ORDER_KEY: &str = "auto_hook.order";

impl ActivationCache {
    /// Writes the cache as a safetensors file: one tensor per hook name, plus metadata
    /// `format = pt` and [`ORDER_KEY`] (the names in firing order, newline-separated),
    /// so `safetensors.safe_open(path, "np")` reads it in Python.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let order = self.names().collect::<Vec<_>>().join("\n");
        let metadata = HashMap::from([
            ("format".to_owned(), "pt".to_owned()),
            (ORDER_KEY.to_owned(), order),
        ]);
        let tensors = self
            .iter()
            .map(|(n, t)| Ok((n, t.contiguous()?)))
            .collect::<candle_core::Result<Vec<_>>>()?;
        safetensors::serialize_to_file(tensors, Some(metadata), path.as_ref())
            .map_err(|e| Error::Cache(format!("cannot write {}: {e}", path.as_ref().display())))
    }

    /// Reads a cache written by [`ActivationCache::save`] (or any safetensors file: without
    /// the order metadata, names are taken in sorted order) onto `device`.
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path)
            .map_err(|e| Error::Cache(format!("cannot read {}: {e}", path.display())))?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| {
            Error::Cache(format!("{} is not a safetensors file: {e}", path.display()))
        })?;
        let mut tensors = candle_core::safetensors::load_buffer(&bytes, device)?;
        let order: Vec<String> = match header.metadata().as_ref().and_then(|m| m.get(ORDER_KEY)) {
            Some(order) if !order.is_empty() => order.split('\n').map(str::to_owned).collect(),
            _ => {
                let mut names: Vec<String> = tensors.keys().cloned().collect();
                names.sort();
                names
            }
        };
        let mut cache = ActivationCache::new();
        for name in order {
            let tensor = tensors.remove(&name).ok_or_else(|| {
                Error::Cache(format!(
                    "{}: metadata names `{name}` but the file has no such tensor",
                    path.display()
                ))
            })?;
            cache.insert(&name, tensor);
        }
        Ok(cache)
    }
}
