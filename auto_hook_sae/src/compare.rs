//! Parity with SAELens: reference activations recorded in Python against this forward.

use crate::error::{Error, Result};
use crate::sae::Sae;
use candle_core::{DType, Tensor};
use std::collections::HashMap;

/// Reference keys this crate knows, in the order they are compared.
pub const REFERENCE_KEYS: [&str; 3] = ["hidden_pre", "feature_acts", "sae_out"];

/// Runs `sae` on `reference["x"]` and returns `(key, max_abs_diff)` for each of
/// `hidden_pre` (what `hook_sae_acts_pre` sees), `feature_acts` (SAELens `encode(x)`) and
/// `sae_out` (`decode(encode(x))`) that the reference has. Other keys are ignored.
///
/// ```
/// use auto_hook_sae::{compare_sae_with_reference, Architecture, Sae, SaeConfig};
/// use candle_core::{Device, Tensor};
/// use std::collections::HashMap;
/// let sae = Sae::init(&SaeConfig::new(4, 8, Architecture::Standard), Some(0.1), 3, &Device::Cpu)?;
/// let x = Tensor::randn(0f32, 1.0, (5, 4), &Device::Cpu)?;
/// let reference = HashMap::from([("sae_out".to_string(), sae.forward(&x)?), ("x".to_string(), x)]);
/// let diffs = compare_sae_with_reference(&sae, &reference)?;
/// assert_eq!(diffs, [("sae_out".to_string(), 0.0)]);
/// # Ok::<(), auto_hook_sae::Error>(())
/// ```
pub fn compare_sae_with_reference(
    sae: &Sae,
    reference: &HashMap<String, Tensor>,
) -> Result<Vec<(String, f32)>> {
    let x = reference
        .get("x")
        .ok_or_else(|| Error::Invalid("the reference has no `x`".into()))?;
    let x = x.to_device(sae.device())?;
    let (feature_acts, hidden_pre) = sae.encode_with_hidden_pre(&x)?;
    let mut diffs = Vec::new();
    for key in REFERENCE_KEYS {
        let Some(expected) = reference.get(key) else {
            continue;
        };
        let ours = match key {
            "hidden_pre" => hidden_pre.clone(),
            "feature_acts" => feature_acts.clone(),
            _ => sae.forward(&x)?,
        };
        diffs.push((key.to_owned(), max_abs_diff(key, &ours, expected)?));
    }
    Ok(diffs)
}

/// Largest `|a - b|`; a shape mismatch is an error naming `key`.
pub(crate) fn max_abs_diff(key: &str, a: &Tensor, b: &Tensor) -> Result<f32> {
    if a.dims() != b.dims() {
        return Err(Error::Shape {
            what: format!("reference `{key}`"),
            problem: format!("expected shape {:?}, ours is {:?}", b.dims(), a.dims()),
        });
    }
    let b = b.to_device(a.device())?.to_dtype(DType::F32)?;
    let d = (a.to_dtype(DType::F32)? - b)?
        .abs()?
        .flatten_all()?
        .max(0)?;
    Ok(d.to_scalar::<f32>()?)
}
