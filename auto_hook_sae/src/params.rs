//! `SaeParams`: an SAE's parameters by name (weights, their gradients, Adam's moments).

use crate::error::Result;

/// One value per SAE parameter, by name: the weights of a trainer (`SaeParams<Var>`),
/// their gradients (`SaeParams<Option<Tensor>>`), Adam's moments. `threshold` exists for
/// the architectures that train one (jumprelu). [`SaeParams::iter`] gives SAELens's
/// names (`W_enc`, `b_enc`, `W_dec`, `b_dec`, `threshold`), which checkpoints use as keys.
///
/// ```
/// use auto_hook_sae::SaeParams;
/// let sizes = SaeParams { w_enc: 8 * 32, b_enc: 32, w_dec: 32 * 8, b_dec: 8, threshold: None };
/// let names: Vec<&str> = sizes.iter().map(|(name, _)| name).collect();
/// assert_eq!(names, ["W_enc", "b_enc", "W_dec", "b_dec"]);
/// assert_eq!(sizes.get("b_dec"), Some(&8));
/// # Ok::<(), auto_hook_sae::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SaeParams<T> {
    /// Encoder `[d_in, d_sae]`.
    pub w_enc: T,
    /// Encoder bias `[d_sae]`.
    pub b_enc: T,
    /// Decoder `[d_sae, d_in]`.
    pub w_dec: T,
    /// Decoder bias `[d_in]`.
    pub b_dec: T,
    /// jumprelu's threshold `[d_sae]`, when trained.
    pub threshold: Option<T>,
}

impl<T> SaeParams<T> {
    /// Every parameter name, in the order [`SaeParams::iter`] gives them (the order
    /// checkpoints written before named keys used: `sae.{i}.var.{j}` is `NAMES[j]`).
    pub const NAMES: [&'static str; 5] = ["W_enc", "b_enc", "W_dec", "b_dec", "threshold"];

    /// `(name, value)` for each parameter present.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &T)> {
        [
            Some(&self.w_enc),
            Some(&self.b_enc),
            Some(&self.w_dec),
            Some(&self.b_dec),
            self.threshold.as_ref(),
        ]
        .into_iter()
        .zip(Self::NAMES)
        .filter_map(|(v, name)| v.map(|v| (name, v)))
    }

    /// The parameter called `name`, if present.
    pub fn get(&self, name: &str) -> Option<&T> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// Applies `f` to each parameter with its name, keeping the names.
    pub fn try_map<U>(
        &self,
        mut f: impl FnMut(&'static str, &T) -> Result<U>,
    ) -> Result<SaeParams<U>> {
        Ok(SaeParams {
            w_enc: f("W_enc", &self.w_enc)?,
            b_enc: f("b_enc", &self.b_enc)?,
            w_dec: f("W_dec", &self.w_dec)?,
            b_dec: f("b_dec", &self.b_dec)?,
            threshold: self
                .threshold
                .as_ref()
                .map(|t| f("threshold", t))
                .transpose()?,
        })
    }
}
