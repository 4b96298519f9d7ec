//! `check_auto_hook`: the library's own checks, run on a user's model.

use crate::cache::{ActivationCache, CacheOptions, CUT_GRAPH};
use crate::check_report::CheckReport;
use crate::compare::bit_identical;
use crate::error::Result;
use crate::filter::Filter;
use crate::hooks::Hooks;
use crate::root::HookedRoot;
use candle_core::{DType, Tensor};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// Runs the library's checks on `model`, with `run` as the forward to exercise:
/// - names are unique and match the type's listing;
/// - every hook point fires;
/// - identity hooks on every point leave the output bit-identical;
/// - adding 1 at any single point changes the output, unless the output does not
///   depend on that point at all (its gradient is identically zero, as upstream of a
///   module with zero weights): such points are listed in [`CheckReport::no_effect`],
///   not as failures, and [`CheckReport::zero_outputs`] names the points whose
///   activation is identically zero;
/// - with the loss `sum(output²)`, every point's backward hook fires as often as the
///   point fired forward, and doubling the gradient at every point changes the gradient
///   reaching every point but the last one to fire.
///
/// Costs one forward per hook point plus six, and three backward passes. `run` must
/// compute the same output each time it is called.
///
/// ```
/// use auto_hook_runtime::{auto_hook, check_auto_hook};
/// use candle_core::{DType, Device, Module, Tensor};
/// let layer = auto_hook(candle_nn::Linear::new(Tensor::ones((2, 2), DType::F32, &Device::Cpu)?, None));
/// let x = Tensor::ones((1, 2), DType::F32, &Device::Cpu)?;
/// let report = check_auto_hook(&layer, |m| m.forward(&x))?;
/// assert!(report.is_ok(), "{report}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn check_auto_hook<M: HookedRoot + ?Sized>(
    model: &M,
    run: impl Fn(&M) -> candle_core::Result<Tensor>,
) -> Result<CheckReport> {
    run_checks(&mut Shared { model, run })
}

/// [`check_auto_hook`] for a forward that takes `&mut self`. `run` must give the same
/// output every call: reset the state the forward keeps (a KV cache) inside `run`.
///
/// ```
/// # use auto_hook_runtime::{check_auto_hook_mut, HookPoint, HookedModule, Schema, Walker, WalkerMut};
/// # use candle_core::{Device, Tensor};
/// struct Scaled { hook_in: HookPoint, hook_out: HookPoint, calls: usize }
/// # impl HookedModule for Scaled {
/// #     const SCHEMA: Schema = Schema::Struct(&[("hook_in", &Schema::Point), ("hook_out", &Schema::Point)]);
/// #     fn visit_hooks<'s>(&'s self, w: &mut Walker<'_, 's>) { w.child("hook_in", &self.hook_in); w.child("hook_out", &self.hook_out) }
/// #     fn visit_hooks_mut(&mut self, w: &mut WalkerMut<'_>) { w.child("hook_in", &mut self.hook_in); w.child("hook_out", &mut self.hook_out) }
/// # }
/// impl Scaled {
///     fn forward(&mut self, x: &Tensor) -> candle_core::Result<Tensor> {
///         self.calls += 1;
///         self.hook_out.fire((self.hook_in.fire(x.clone())? * 3.0)?)
///     }
/// }
/// let mut model = Scaled { hook_in: HookPoint::new(), hook_out: HookPoint::new(), calls: 0 };
/// let x = Tensor::new(&[1f32, 2.0], &Device::Cpu)?;
/// let report = check_auto_hook_mut(&mut model, |m| m.forward(&x))?;
/// assert!(report.is_ok(), "{report}");
/// assert!(model.calls > 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn check_auto_hook_mut<M: HookedRoot + ?Sized>(
    model: &mut M,
    run: impl FnMut(&mut M) -> candle_core::Result<Tensor>,
) -> Result<CheckReport> {
    run_checks(&mut Exclusive { model, run })
}

/// [`check_auto_hook`] in strict mode: any failure is an error.
pub fn check_auto_hook_strict<M: HookedRoot + ?Sized>(
    model: &M,
    run: impl Fn(&M) -> candle_core::Result<Tensor>,
) -> Result<CheckReport> {
    check_auto_hook(model, run)?.into_result()
}

/// [`check_auto_hook_mut`] in strict mode: any failure is an error.
pub fn check_auto_hook_mut_strict<M: HookedRoot + ?Sized>(
    model: &mut M,
    run: impl FnMut(&mut M) -> candle_core::Result<Tensor>,
) -> Result<CheckReport> {
    check_auto_hook_mut(model, run)?.into_result()
}

/// The forward under check, run plain, with hooks, or with a cache around hooks.
trait Target {
    type Model: HookedRoot + ?Sized;
    fn model(&self) -> &Self::Model;
    fn plain(&mut self) -> Result<Tensor>;
    fn hooked(&mut self, hooks: Hooks<'_>) -> Result<Tensor>;
    fn cached(
        &mut self,
        options: CacheOptions,
        hooks: Hooks<'_>,
    ) -> Result<(Tensor, ActivationCache)>;
}

struct Shared<'m, M: ?Sized, F> {
    model: &'m M,
    run: F,
}

impl<M, F> Target for Shared<'_, M, F>
where
    M: HookedRoot + ?Sized,
    F: Fn(&M) -> candle_core::Result<Tensor>,
{
    type Model = M;
    fn model(&self) -> &M {
        self.model
    }
    fn plain(&mut self) -> Result<Tensor> {
        Ok((self.run)(self.model)?)
    }
    fn hooked(&mut self, hooks: Hooks<'_>) -> Result<Tensor> {
        self.model.run_with_hooks(hooks, &self.run)
    }
    fn cached(
        &mut self,
        options: CacheOptions,
        hooks: Hooks<'_>,
    ) -> Result<(Tensor, ActivationCache)> {
        let run = &self.run;
        self.model
            .run_with_cache(options, |m| m.run_with_hooks(hooks, run))
    }
}

struct Exclusive<'m, M: ?Sized, F> {
    model: &'m mut M,
    run: F,
}

impl<M, F> Target for Exclusive<'_, M, F>
where
    M: HookedRoot + ?Sized,
    F: FnMut(&mut M) -> candle_core::Result<Tensor>,
{
    type Model = M;
    fn model(&self) -> &M {
        self.model
    }
    fn plain(&mut self) -> Result<Tensor> {
        Ok((self.run)(self.model)?)
    }
    fn hooked(&mut self, hooks: Hooks<'_>) -> Result<Tensor> {
        self.model.run_with_hooks_mut(hooks, &mut self.run)
    }
    fn cached(
        &mut self,
        options: CacheOptions,
        hooks: Hooks<'_>,
    ) -> Result<(Tensor, ActivationCache)> {
        let run = &mut self.run;
        self.model
            .run_with_cache_mut(options, |m| m.run_with_hooks_mut(hooks, run))
    }
}

fn run_checks<T: Target>(target: &mut T) -> Result<CheckReport> {
    let names = target.model().hook_point_names();
    let mut failures = check_names(&names, crate::HookedModule::schema(target.model()));
    let baseline = target.plain()?;
    let fire_counts = count_fires(target, &names)?;
    failures.extend(
        fire_counts
            .iter()
            .filter(|(_, c)| *c == 0)
            .map(|(n, _)| format!("hook point `{n}` never fired")),
    );
    let identity = target.hooked(Hooks::new().add(Filter::All, |x, _| x.clone()))?;
    if !bit_identical(&baseline, &identity)? {
        failures.push("identity hooks on every point changed the output".to_owned());
    }
    let mut editable = Vec::new();
    let mut not_editable = Vec::new();
    for (name, _) in fire_counts.iter().filter(|(_, c)| *c > 0) {
        let edited = target.hooked(Hooks::new().add(name.as_str(), |x, _| x + 1.0))?;
        if bit_identical(&baseline, &edited)? {
            not_editable.push(name.clone());
        } else {
            editable.push(name.clone());
        }
    }
    let mut zero_outputs = Vec::new();
    let mut no_effect = Vec::new();
    match check_backward(target, &fire_counts, &mut failures) {
        Ok(clean) => {
            zero_outputs = identically_zero(&clean, clean.names())?;
            for name in not_editable {
                let independent = match clean.grad(&name) {
                    Ok(grad) => is_all_zero(&grad)?,
                    Err(_) => false, // no gradient reaches it: reported by the backward check
                };
                if independent {
                    no_effect.push(name);
                } else {
                    failures.push(format!("adding 1 at `{name}` does not change the output"));
                }
            }
        }
        Err(e) => {
            failures.push(format!("backward failed: {e}"));
            failures.extend(
                not_editable
                    .iter()
                    .map(|n| format!("adding 1 at `{n}` does not change the output")),
            );
        }
    }
    Ok(CheckReport {
        fire_counts,
        editable,
        no_effect,
        zero_outputs,
        failures,
    })
}

fn count_fires<T: Target>(target: &mut T, names: &[String]) -> Result<Vec<(String, usize)>> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    let counting = Hooks::new().add(Filter::All, |_, h| {
        *counts.entry(h.name().to_owned()).or_default() += 1
    });
    target.hooked(counting)?;
    Ok(names
        .iter()
        .map(|n| (n.clone(), counts.get(n).copied().unwrap_or(0)))
        .collect())
}

fn loss(out: &Tensor) -> candle_core::Result<Tensor> {
    out.to_dtype(DType::F32)?.sqr()?.sum_all()
}

/// The backward checks; returns the clean run's cache with its gradients.
fn check_backward<T: Target>(
    target: &mut T,
    fire_counts: &[(String, usize)],
    failures: &mut Vec<String>,
) -> Result<ActivationCache> {
    let counts = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
    let sink = counts.clone();
    let counting = Hooks::new().backward(Filter::All, move |_, h| {
        *sink
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(h.name().to_owned())
            .or_default() += 1;
    });
    loss(&target.hooked(counting)?)?.backward()?;
    let counts = counts.lock().unwrap_or_else(|e| e.into_inner());
    for (name, forward) in fire_counts.iter().filter(|(_, c)| *c > 0) {
        match counts.get(name).copied().unwrap_or(0) {
            0 => failures.push(format!(
                "backward hook at `{name}` never fired: the gradient does not reach it ({CUT_GRAPH})"
            )),
            n if n != *forward => failures.push(format!(
                "backward hook at `{name}` fired {n} time(s), the point fired {forward}"
            )),
            _ => {}
        }
    }
    drop(counts);

    let (out, clean) = target.cached(CacheOptions::all().with_grads(), Hooks::new())?;
    loss(&out)?.backward()?;
    let doubling = Hooks::new().backward(Filter::All, |g, _| g * 2.0);
    let (out, doubled) = target.cached(CacheOptions::all().with_grads(), doubling)?;
    loss(&out)?.backward()?;
    let fired: Vec<&str> = clean.names().collect();
    for name in fired.iter().take(fired.len().saturating_sub(1)) {
        let (Ok(clean), Ok(doubled)) = (clean.grad(name), doubled.grad(name)) else {
            continue; // no gradient reaches this point: reported above
        };
        if bit_identical(&clean, &doubled)? && !is_all_zero(&clean)? {
            failures.push(format!(
                "doubling every gradient did not change the gradient at `{name}`"
            ));
        }
    }
    Ok(clean)
}

/// The cached points whose activation is all zeros.
fn identically_zero<'n>(
    cache: &ActivationCache,
    names: impl Iterator<Item = &'n str>,
) -> Result<Vec<String>> {
    let mut zero = Vec::new();
    for name in names {
        if is_all_zero(cache.get(name)?)? {
            zero.push(name.to_owned());
        }
    }
    Ok(zero)
}

fn is_all_zero(t: &Tensor) -> candle_core::Result<bool> {
    let abs = t
        .to_dtype(DType::F64)?
        .abs()?
        .sum_all()?
        .to_scalar::<f64>()?;
    Ok(abs == 0.0)
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
