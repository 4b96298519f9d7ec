//! `SaeParams`: an SAE's parameters by name (weights, their gradients, Adam's moments).

use crate::error::{Error, Result};

/// One value per SAE parameter, by name: the weights of an [`Sae`](crate::Sae) and of a
/// trainer (`SaeParams<Var>`), their gradients (`SaeParams<Option<Tensor>>`), Adam's
/// moments. Which optional ones exist depends on the architecture: `b_enc` for all but
/// gated, `threshold` for jumprelu (trained) and batchtopk (its inference form),
/// `b_gate`, `r_mag`, `b_mag` for gated, `W_skip` for skip transcoders.
/// [`SaeParams::iter`] gives SAELens's names (`W_enc`, `b_enc`, `W_dec`, `b_dec`,
/// `threshold`, `b_gate`, `r_mag`, `b_mag`, `W_skip`), which
/// checkpoints and weight files use as keys.
///
/// ```
/// use auto_hook_sae::SaeParams;
/// let mut sizes = SaeParams::new(8 * 32, 32 * 8, 8);
/// sizes.b_enc = Some(32);
/// let names: Vec<&str> = sizes.iter().map(|(name, _)| name).collect();
/// assert_eq!(names, ["W_enc", "b_enc", "W_dec", "b_dec"]);
/// assert_eq!(sizes.get("b_dec"), Some(&8));
/// sizes.insert("b_gate", 32)?;
/// assert_eq!(sizes.get("b_gate"), Some(&32));
/// assert!(sizes.insert("W_gate", 1).is_err());
/// # Ok::<(), auto_hook_sae::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SaeParams<T> {
    /// Encoder `[d_in, d_sae]`.
    pub w_enc: T,
    /// Encoder bias `[d_sae]` (none for gated SAEs).
    pub b_enc: Option<T>,
    /// Decoder `[d_sae, d_in]`.
    pub w_dec: T,
    /// Decoder bias `[d_in]`.
    pub b_dec: T,
    /// jumprelu's threshold `[d_sae]`.
    pub threshold: Option<T>,
    /// gated: the gate's bias `[d_sae]`.
    pub b_gate: Option<T>,
    /// gated: log-scale of the magnitude path's encoder columns `[d_sae]`.
    pub r_mag: Option<T>,
    /// gated: the magnitude path's bias `[d_sae]`.
    pub b_mag: Option<T>,
    /// skip transcoders: the linear skip connection `[d_out, d_in]`.
    pub w_skip: Option<T>,
}

impl<T> SaeParams<T> {
    /// Every parameter name, in the order [`SaeParams::iter`] gives them (the first five
    /// are the order checkpoints written before named keys used: `sae.{i}.var.{j}`).
    pub const NAMES: [&'static str; 9] = [
        "W_enc",
        "b_enc",
        "W_dec",
        "b_dec",
        "threshold",
        "b_gate",
        "r_mag",
        "b_mag",
        "W_skip",
    ];

    /// The three parameters every architecture has; the optional ones empty.
    pub fn new(w_enc: T, w_dec: T, b_dec: T) -> Self {
        Self {
            w_enc,
            b_enc: None,
            w_dec,
            b_dec,
            threshold: None,
            b_gate: None,
            r_mag: None,
            b_mag: None,
            w_skip: None,
        }
    }

    fn slots(&self) -> [Option<&T>; 9] {
        [
            Some(&self.w_enc),
            self.b_enc.as_ref(),
            Some(&self.w_dec),
            Some(&self.b_dec),
            self.threshold.as_ref(),
            self.b_gate.as_ref(),
            self.r_mag.as_ref(),
            self.b_mag.as_ref(),
            self.w_skip.as_ref(),
        ]
    }

    /// `(name, value)` for each parameter present.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &T)> {
        self.slots()
            .into_iter()
            .zip(Self::NAMES)
            .filter_map(|(v, name)| v.map(|v| (name, v)))
    }

    /// The parameter called `name`, if present.
    pub fn get(&self, name: &str) -> Option<&T> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// Sets the parameter called `name` (an error for a name that is not a parameter).
    pub fn insert(&mut self, name: &str, value: T) -> Result<()> {
        let slot = match name {
            "W_enc" | "W_dec" | "b_dec" => {
                *match name {
                    "W_enc" => &mut self.w_enc,
                    "W_dec" => &mut self.w_dec,
                    _ => &mut self.b_dec,
                } = value;
                return Ok(());
            }
            "b_enc" => &mut self.b_enc,
            "threshold" => &mut self.threshold,
            "b_gate" => &mut self.b_gate,
            "r_mag" => &mut self.r_mag,
            "b_mag" => &mut self.b_mag,
            "W_skip" => &mut self.w_skip,
            other => {
                return Err(Error::Weights {
                    name: other.to_owned(),
                    problem: format!("not an SAE parameter (known: {})", Self::NAMES.join(", ")),
                })
            }
        };
        *slot = Some(value);
        Ok(())
    }

    /// Applies `f` to each parameter with its name, keeping the names.
    pub fn try_map<U>(
        &self,
        mut f: impl FnMut(&'static str, &T) -> Result<U>,
    ) -> Result<SaeParams<U>> {
        let mut slots: [Option<U>; 9] = Default::default();
        for ((slot, v), name) in slots.iter_mut().zip(self.slots()).zip(Self::NAMES) {
            if let Some(v) = v {
                *slot = Some(f(name, v)?);
            }
        }
        let [w_enc, b_enc, w_dec, b_dec, threshold, b_gate, r_mag, b_mag, w_skip] = slots;
        let always = |v: Option<U>| {
            v.ok_or_else(|| Error::Invalid("SaeParams: a required parameter is missing".into()))
        };
        Ok(SaeParams {
            w_enc: always(w_enc)?,
            b_enc,
            w_dec: always(w_dec)?,
            b_dec: always(b_dec)?,
            threshold,
            b_gate,
            r_mag,
            b_mag,
            w_skip,
        })
    }
}
