//! The one loading helper of the ports: the initialisations a fresh `VarMap` gets when a
//! loader creates the weights (training from scratch: GPT-2's and Llama's own, weights
//! N(0, 0.02), norm gains 1, biases 0; a checkpoint's tensors ignore them), and the dense
//! `linear` every loader reads.

use crate::error::Result;
use candle_nn::{Init, Linear, VarBuilder};

/// Weights: N(0, 0.02).
pub(crate) const WEIGHT: Init = Init::Randn {
    mean: 0.0,
    stdev: 0.02,
};
/// Norm gains (and Mamba's `D`).
pub(crate) const ONES: Init = Init::Const(1.0);
/// Biases.
pub(crate) const ZEROS: Init = Init::Const(0.0);

/// `{prefix}.weight` `[d_out, d_in]`, with `{prefix}.bias` `[d_out]` when `bias`.
pub(crate) fn linear(vb: &VarBuilder, d_in: usize, d_out: usize, bias: bool) -> Result<Linear> {
    let w = vb.get_with_hints((d_out, d_in), "weight", WEIGHT)?;
    let b = if bias {
        Some(vb.get_with_hints(d_out, "bias", ZEROS)?)
    } else {
        None
    };
    Ok(Linear::new(w, b))
}
