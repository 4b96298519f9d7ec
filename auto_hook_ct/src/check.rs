//! The checks each hooked candle-transformers model must pass against candle-transformers'
//! own model on the same weights.

use auto_hook::prelude::*;
use candle::Tensor;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Where `run_with_cache_stop_at` should stop, and a name prefix of points that must then
/// never fire (the layers after the stop).
#[derive(Debug, Clone, Copy)]
pub struct Stop<'a> {
    /// The filter to stop at: `base_model.layers.0.**`.
    pub at: &'a str,
    /// Points under this prefix must not fire: `base_model.layers.1.`.
    pub never: &'a str,
}

/// What the checks saw.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Every hook point of the instance with how often it fired in one forward.
    pub fire_counts: BTreeMap<String, usize>,
    /// How many points fired in the stopped run.
    pub fired_before_stop: usize,
}

/// Runs, on `model` with the forward `run`, each time next to one call of `reference`
/// (candle-transformers' own model on the same weights and input; a model that keeps a
/// KV cache and cannot clear it advances both in step):
/// 1. the plain forward is bit-identical to the reference;
/// 2. an identity hook on every point keeps it bit-identical, and every listed point fires;
/// 3. `run_with_cache_mut` caches exactly the listed points, output still identical;
/// 4. `run_with_cache_stop_at_mut(stop.at)` caches what `stop.at` selects and no point
///    under `stop.never` fires.
///
/// Returns a sentence naming the first failure.
pub fn check_model<M: HookedRoot>(
    model: &mut M,
    mut reference: impl FnMut() -> candle::Result<Tensor>,
    mut run: impl FnMut(&mut M) -> candle::Result<Tensor>,
    stop: Stop<'_>,
) -> Result<Summary, String> {
    let err = |what: &str, e: &dyn std::fmt::Display| format!("{what}: {e}");
    let mut want = || reference().map_err(|e| err("candle-transformers' forward", &e));
    let listed = model.hook_point_names();
    if listed.is_empty() {
        return Err("the model lists no hook points".into());
    }
    let plain = run(model).map_err(|e| err("plain forward", &e))?;
    same_bits("plain forward", &plain, &want()?)?;

    let mut fire_counts: BTreeMap<String, usize> = BTreeMap::new();
    let identity = Hooks::new().add("**", |_, h| {
        *fire_counts.entry(h.name().to_owned()).or_default() += 1;
    });
    let hooked = model
        .run_with_hooks_mut(identity, |m| run(m))
        .map_err(|e| err("run_with_hooks_mut", &e))?;
    same_bits("identity hooks on every point", &hooked, &want()?)?;
    let silent: Vec<&String> = listed
        .iter()
        .filter(|n| !fire_counts.contains_key(*n))
        .collect();
    if !silent.is_empty() {
        return Err(format!(
            "{} listed point(s) never fire: {silent:?}",
            silent.len()
        ));
    }

    let (cached_out, cache) = model
        .run_with_cache_mut(CacheOptions::all(), |m| run(m))
        .map_err(|e| err("run_with_cache_mut", &e))?;
    same_bits("run_with_cache", &cached_out, &want()?)?;
    let mut cached: Vec<&str> = cache.names().collect();
    let mut names: Vec<&str> = listed.iter().map(String::as_str).collect();
    cached.sort_unstable();
    names.sort_unstable();
    if cached != names {
        return Err(format!(
            "the cache holds {cached:?}, the model lists {names:?}"
        ));
    }

    let fired_before_stop = check_stop(model, &mut run, stop)?;
    Ok(Summary {
        fire_counts,
        fired_before_stop,
    })
}

fn check_stop<M: HookedRoot>(
    model: &mut M,
    run: &mut impl FnMut(&mut M) -> candle::Result<Tensor>,
    stop: Stop<'_>,
) -> Result<usize, String> {
    let fired = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = fired.clone();
    model
        .add_hook("**", move |_, h| {
            if let Ok(mut names) = log.lock() {
                names.push(h.name().to_owned());
            }
        })
        .map_err(|e| format!("add_hook: {e}"))?;
    let result = model.run_with_cache_stop_at_mut(stop.at, |m| run(m));
    model.reset_hooks();
    let cache = result.map_err(|e| format!("run_with_cache_stop_at_mut({}): {e}", stop.at))?;
    let fired = fired.lock().map_err(|_| "hook log poisoned".to_owned())?;
    if cache.is_empty() {
        return Err(format!("stop_at {} cached nothing", stop.at));
    }
    if let Some(late) = fired.iter().find(|n| n.starts_with(stop.never)) {
        return Err(format!("stop_at {}: {late} fired after the stop", stop.at));
    }
    Ok(fired.len())
}

/// Whether `got` has exactly the shape and the bits of `want`.
///
/// ```
/// let a = candle::Tensor::new(&[1f32, 2.0], &candle::Device::Cpu)?;
/// assert!(auto_hook_ct::check::same_bits("a", &a, &a).is_ok());
/// assert!(auto_hook_ct::check::same_bits("a", &a, &(&a + 1e-7)?).is_err());
/// # Ok::<(), candle::Error>(())
/// ```
pub fn same_bits(what: &str, got: &Tensor, want: &Tensor) -> Result<(), String> {
    if got.dims() != want.dims() {
        return Err(format!(
            "{what}: shape {:?}, expected {:?}",
            got.dims(),
            want.dims()
        ));
    }
    let unreadable = |e: candle::Error| format!("{what}: {e}");
    if auto_hook::bit_identical(got, want).map_err(unreadable)? {
        return Ok(());
    }
    // Only to name the first element that differs.
    let values = |t: &Tensor| {
        t.flatten_all()?
            .to_dtype(candle::DType::F64)?
            .to_vec1::<f64>()
    };
    let (g, w) = (
        values(got).map_err(unreadable)?,
        values(want).map_err(unreadable)?,
    );
    match g
        .iter()
        .zip(&w)
        .position(|(a, b)| a.to_bits() != b.to_bits())
    {
        Some(i) => Err(format!(
            "{what}: not bit-identical at element {i}: {} vs {}",
            g[i], w[i]
        )),
        None => Err(format!(
            "{what}: dtype {:?}, expected {:?}",
            got.dtype(),
            want.dtype()
        )),
    }
}

/// Zeroing the activation at `point` changes the output of `run`: an edit in the middle
/// of the model takes effect (and the point fires). `run` must compute the same function
/// on each call (clear any KV cache it keeps).
///
/// Returns a sentence naming the failure.
pub fn check_edit<M: HookedRoot>(
    model: &mut M,
    mut run: impl FnMut(&mut M) -> candle::Result<Tensor>,
    point: &str,
) -> Result<(), String> {
    let clean = run(model).map_err(|e| format!("plain forward: {e}"))?;
    let zero = Hooks::new().add(point, |a: &Tensor, _| a.zeros_like());
    let edited = model
        .run_with_hooks_mut(zero, |m| run(m))
        .map_err(|e| format!("zeroing {point}: {e}"))?;
    if same_bits("", &edited, &clean).is_ok() {
        return Err(format!("zeroing {point} left the output unchanged"));
    }
    let again = run(model).map_err(|e| format!("forward after the edit: {e}"))?;
    same_bits(
        &format!("the forward after zeroing {point}"),
        &again,
        &clean,
    )
}
