//! `check_auto_hook`: the library's own checks, run on a user's model.

use crate::cache::CacheOptions;
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::hooks::Hooks;
use crate::root::HookedRoot;
use candle_core::{DType, Tensor};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};

/// What `check_auto_hook` found.
#[derive(Debug, Clone)]
pub struct CheckReport {
    /// Every hook point with how often it fired in one forward.
    pub fire_counts: Vec<(String, usize)>,
    /// Hook points whose `+1` edit changed the output.
    pub editable: Vec<String>,
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
            } else {
                "NO"
            };
            writeln!(f, "{name:<48} {fires:>6} {editable:>9}")?;
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

/// Runs the library's checks on `model`, with `run` as the forward to exercise:
/// - names are unique and match the type's listing;
/// - every hook point fires;
/// - identity hooks on every point leave the output bit-identical;
/// - adding 1 at any single point changes the output;
/// - with the loss `sum(output²)`, every point's backward hook fires as often as the
///   point fired forward, and doubling the gradient at every point changes the gradient
///   reaching every point but the last one to fire.
///
/// Costs one forward per hook point plus six, and three backward passes.
pub fn check_auto_hook<M: HookedRoot + ?Sized>(
    model: &M,
    run: impl Fn(&M) -> candle_core::Result<Tensor>,
) -> Result<CheckReport> {
    let names = model.hook_point_names();
    let mut failures = check_names(&names, &M::SCHEMA);
    let baseline = run(model)?;
    let fire_counts = count_fires(model, &run, &names)?;
    failures.extend(
        fire_counts
            .iter()
            .filter(|(_, c)| *c == 0)
            .map(|(n, _)| format!("hook point `{n}` never fired")),
    );
    let identity = model.run_with_hooks(Hooks::new().add(Filter::All, |x, _| x.clone()), &run)?;
    if !bit_identical(&baseline, &identity)? {
        failures.push("identity hooks on every point changed the output".to_owned());
    }
    let mut editable = Vec::new();
    for (name, _) in fire_counts.iter().filter(|(_, c)| *c > 0) {
        let edited = model.run_with_hooks(Hooks::new().add(name.as_str(), |x, _| x + 1.0), &run)?;
        if bit_identical(&baseline, &edited)? {
            failures.push(format!("adding 1 at `{name}` does not change the output"));
        } else {
            editable.push(name.clone());
        }
    }
    if let Err(e) = check_backward(model, &run, &fire_counts, &mut failures) {
        failures.push(format!("backward failed: {e}"));
    }
    Ok(CheckReport {
        fire_counts,
        editable,
        failures,
    })
}

fn count_fires<M: HookedRoot + ?Sized>(
    model: &M,
    run: &impl Fn(&M) -> candle_core::Result<Tensor>,
    names: &[String],
) -> Result<Vec<(String, usize)>> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    let counting = Hooks::new().add(Filter::All, |_, h| {
        *counts.entry(h.name().to_owned()).or_default() += 1
    });
    model.run_with_hooks(counting, run)?;
    Ok(names
        .iter()
        .map(|n| (n.clone(), counts.get(n).copied().unwrap_or(0)))
        .collect())
}

const CUT_GRAPH: &str =
    "the gradient does not reach it (candle-nn's fused softmax_last_dim, layer_norm, \
     rms_norm and rope have no backward and cut the graph: use auto_hook::ops and auto_hook::nn)";

fn loss(out: &Tensor) -> candle_core::Result<Tensor> {
    out.to_dtype(DType::F32)?.sqr()?.sum_all()
}

fn check_backward<M: HookedRoot + ?Sized>(
    model: &M,
    run: &impl Fn(&M) -> candle_core::Result<Tensor>,
    fire_counts: &[(String, usize)],
    failures: &mut Vec<String>,
) -> Result<()> {
    let counts = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
    let sink = counts.clone();
    let counting = Hooks::new().backward(Filter::All, move |_, h| {
        *sink
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(h.name().to_owned())
            .or_default() += 1;
    });
    loss(&model.run_with_hooks(counting, run)?)?.backward()?;
    let counts = counts.lock().unwrap_or_else(|e| e.into_inner());
    for (name, forward) in fire_counts.iter().filter(|(_, c)| *c > 0) {
        match counts.get(name).copied().unwrap_or(0) {
            0 => failures.push(format!(
                "backward hook at `{name}` never fired: {CUT_GRAPH}"
            )),
            n if n != *forward => failures.push(format!(
                "backward hook at `{name}` fired {n} time(s), the point fired {forward}"
            )),
            _ => {}
        }
    }
    drop(counts);

    let (out, clean) = model.run_with_cache(CacheOptions::all().with_grads(), run)?;
    loss(&out)?.backward()?;
    let doubling = || Hooks::new().backward(Filter::All, |g, _| g * 2.0);
    let (out, doubled) = model.run_with_cache(CacheOptions::all().with_grads(), |m| {
        m.run_with_hooks(doubling(), run)
    })?;
    loss(&out)?.backward()?;
    let fired: Vec<&str> = clean.names().collect();
    for name in fired.iter().take(fired.len().saturating_sub(1)) {
        let (Ok(clean), Ok(doubled)) = (clean.grad(name), doubled.grad(name)) else {
            continue; // no gradient reaches this point: reported above
        };
        if bit_identical(&clean, &doubled)? {
            failures.push(format!(
                "doubling every gradient did not change the gradient at `{name}`"
            ));
        }
    }
    Ok(())
}

/// [`check_auto_hook`] in strict mode: any failure is an error.
pub fn check_auto_hook_strict<M: HookedRoot + ?Sized>(
    model: &M,
    run: impl Fn(&M) -> candle_core::Result<Tensor>,
) -> Result<CheckReport> {
    check_auto_hook(model, run)?.into_result()
}

fn check_names(names: &[String], schema: &crate::Schema) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut failures = Vec::new();
    for name in names {
        if !seen.insert(name) {
            failures.push(format!("hook name `{name}` appears twice"));
        }
        if !schema.matches(name) {
            failures.push(format!(
                "hook name `{name}` is not in the type's listing {:?}",
                schema.patterns()
            ));
        }
    }
    failures
}

/// Same shape, dtype and bits.
pub(crate) fn bit_identical(a: &Tensor, b: &Tensor) -> candle_core::Result<bool> {
    if a.dims() != b.dims() || a.dtype() != b.dtype() {
        return Ok(false);
    }
    let a = a.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
    let b = b.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
    Ok(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()))
}
