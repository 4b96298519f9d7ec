//! Deterministic weights for a `VarMap`, so a hooked model and candle-transformers' own
//! model built from one map compute the same function.

use candle::{Result, Tensor};
use candle_nn::VarMap;

/// Overwrites every variable of `varmap` with values from a fixed pseudo-random sequence
/// seeded by `seed` and the variable's name: vectors (norm weights, biases, `D`) near 1
/// or 0, matrices uniform in ±1/√fan-in. Models built from the map before this call see
/// the new values (they share the variables' storage).
///
/// ```
/// let varmap = candle_nn::VarMap::new();
/// let vb = candle_nn::VarBuilder::from_varmap(&varmap, candle::DType::F32, &candle::Device::Cpu);
/// let w = vb.get((2, 3), "w")?;
/// auto_hook_ct::weights::fill(&varmap, 7)?;
/// assert!(w.abs()?.sum_all()?.to_scalar::<f32>()? > 0.0);
/// # Ok::<(), candle::Error>(())
/// ```
pub fn fill(varmap: &VarMap, seed: u64) -> Result<()> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| candle::Error::Msg("VarMap lock".into()))?;
    for (name, var) in data.iter() {
        // The workspace's seeded generator, one stream per variable (seed and name).
        let stream = name.bytes().fold(seed ^ 0x9e37_79b9_7f4a_7c15, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        });
        let mut rng = auto_hook::rng::Rng::new(stream);
        let dims = var.dims().to_vec();
        let n: usize = dims.iter().product();
        let fan_in = *dims.last().unwrap_or(&1) as f32;
        let values: Vec<f32> = (0..n)
            .map(|_| {
                let u = rng.uniform() as f32 - 0.5; // in [-0.5, 0.5)
                match dims.len() {
                    0 | 1 => 1.0 + 0.2 * u,
                    _ => 2.0 * u / fan_in.sqrt(),
                }
            })
            .collect();
        let t = Tensor::from_vec(values, dims, var.device())?.to_dtype(var.dtype())?;
        var.set(&t)?;
    }
    Ok(())
}
