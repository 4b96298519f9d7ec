//! `CheckReport`: what `check_auto_hook` found, one line per hook point.

use crate::error::{Error, Result};
use std::fmt;

/// What `check_auto_hook` found. Its `Display` is a table: each point, how often it
/// fired, and whether editing it changed the output.
///
/// ```
/// use auto_hook_runtime::{auto_hook, check_auto_hook};
/// use candle_core::{DType, Device, Module, Tensor};
/// let zero = auto_hook(candle_nn::Linear::new(Tensor::zeros((2, 2), DType::F32, &Device::Cpu)?, None));
/// let x = Tensor::ones((1, 2), DType::F32, &Device::Cpu)?;
/// let report = check_auto_hook(&zero, |m| m.forward(&x))?;
/// assert_eq!(report.zero_outputs, ["hook_point"]); // all-zero weights, all-zero output
/// assert!(report.is_ok(), "{report}");             // adding 1 at the output still shows
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct CheckReport {
    /// Every hook point with how often it fired in one forward.
    pub fire_counts: Vec<(String, usize)>,
    /// Hook points whose `+1` edit changed the output.
    pub editable: Vec<String>,
    /// Hook points whose `+1` edit left the output unchanged because the output does
    /// not depend on them in this run (the gradient there is identically zero, e.g.
    /// upstream of a module with all-zero weights). Not failures.
    pub no_effect: Vec<String>,
    /// Hook points whose activation is identically zero in this run (a module with
    /// zero weights shows up here).
    pub zero_outputs: Vec<String>,
    /// Everything that went wrong, one sentence each.
    pub failures: Vec<String>,
}

impl CheckReport {
    /// Whether every check passed.
    pub fn is_ok(&self) -> bool {
        self.failures.is_empty()
    }

    /// The report, or [`Error::CheckFailed`] listing every failure.
    pub fn into_result(self) -> Result<Self> {
        if self.is_ok() {
            Ok(self)
        } else {
            Err(Error::CheckFailed {
                failures: self.failures,
            })
        }
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:<48} {:>6} {:>9}", "hook point", "fires", "editable")?;
        for (name, fires) in &self.fire_counts {
            let editable = if self.editable.contains(name) {
                "yes"
            } else if self.no_effect.contains(name) {
                "no effect"
            } else {
                "NO"
            };
            writeln!(f, "{name:<48} {fires:>6} {editable:>9}")?;
        }
        if !self.no_effect.is_empty() {
            writeln!(
                f,
                "no effect: the output does not depend on {} point(s) in this run (zero gradient); \
                 identically zero outputs: {}",
                self.no_effect.len(),
                if self.zero_outputs.is_empty() { "none".to_owned() } else { self.zero_outputs.join(", ") }
            )?;
        }
        if self.is_ok() {
            write!(
                f,
                "all checks passed ({} hook points)",
                self.fire_counts.len()
            )
        } else {
            write!(f, "{} failure(s):", self.failures.len())?;
            self.failures
                .iter()
                .try_for_each(|x| write!(f, "\n  - {x}"))
        }
    }
}
