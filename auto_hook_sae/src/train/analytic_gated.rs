//! Hand-derived gradients of gated training (CPU, f32). One encoder product
//! `P = x' W_enc` gives both paths: the gate `π = P + b_gate` and the magnitude
//! `m = P ⊙ exp(r_mag) + b_mag` (`x' (W_enc ⊙ exp(r_mag))` column by column). With
//! `a = relu(π)` and `f = 1[π > 0] · relu(m)`, the latents `f` and the gate's
//! reconstruction input `a` are decoded as one `[2n, d_sae]` block (`[x̂; x̂_gate]`, one
//! product), their gradients `[∂f; ∂a] = [g; g_a] W_decᵀ` are one product, and
//! `∂W_dec = [f; a]ᵀ [g; g_a]` (plus the L1 term's decoder-norm gradient) another.
//! Then `∂m = ∂f · 1[π > 0] · 1[m > 0]` (the step passes nothing to the gate),
//! `∂π = (∂a + (c/n) ‖W_dec,i‖) · 1[π > 0]`, `∂P = ∂π + ∂m ⊙ exp(r_mag)`,
//! `∂r_mag = Σ_rows ∂m ⊙ P ⊙ exp(r_mag)`, `∂b_gate = Σ_rows ∂π`, `∂b_mag = Σ_rows ∂m`,
//! `∂W_enc = x'ᵀ ∂P`, and `b_dec` gets both reconstructions' `Σ_rows g` and, through
//! `x'`, `−W_enc Σ_rows ∂P`. Eight products' worth of work against SAELens's twelve
//! (it multiplies by `W_enc` and `W_enc ⊙ exp(r_mag)` separately).

use super::analytic::{analytic_out, Analytic, Grads, Scratch};
use super::kernels::{
    matmul, matmul_long_inner, mse_grad, read_into, row_norms, sized, sum_blocks, Mat, BLOCK_ROWS,
};
use super::sae::SaeTrainer;
use crate::error::{Error, Result};
use candle_core::{Device, Tensor};
use rayon::prelude::*;

/// The gate's and the magnitude path's parameters, flat.
struct GateParams {
    b_gate: Vec<f32>,
    /// `exp(r_mag)`.
    scale: Vec<f32>,
    b_mag: Vec<f32>,
}

impl GateParams {
    fn read(t: &SaeTrainer) -> Result<Self> {
        let read = |name: &str| -> Result<Vec<f32>> {
            let p = t.sae.p.get(name).ok_or_else(|| Error::Weights {
                name: name.into(),
                problem: "missing (gated SAEs need it)".into(),
            })?;
            let mut out = Vec::new();
            read_into(p, &mut out)?;
            Ok(out)
        };
        let scale = read("r_mag")?.iter().map(|r| r.exp()).collect();
        Ok(Self {
            b_gate: read("b_gate")?,
            scale,
            b_mag: read("b_mag")?,
        })
    }
}

impl SaeTrainer {
    /// Gated, after the encoder product `P` (in `s.h`): `[f; a]` in `s.f`, `[∂f; ∂a]` (then
    /// `∂P` in the first half) in `s.dh`.
    pub(crate) fn analytic_gated(
        &self,
        s: &mut Scratch,
        coefficient: f64,
    ) -> Result<(Analytic, Grads)> {
        let (n, d_in, d_sae) = (s.n, s.d_in, s.d_sae);
        let gp = GateParams::read(self)?;
        let block = BLOCK_ROWS * d_sae;
        let mut fa = std::mem::take(&mut s.f);
        let (f, a) = sized(&mut fa, 2 * n * d_sae).split_at_mut(n * d_sae);
        f.par_chunks_mut(block)
            .zip(a.par_chunks_mut(block))
            .zip(s.h.par_chunks(block))
            .for_each(|((fb, ab), pb)| gate_block(&gp, pb, fb, ab));
        let (mse, via_gate) = self.decode_both(s, &fa);
        let norms = row_norms(&s.w_dec, d_in);
        let l1: Vec<f32> = norms
            .iter()
            .map(|&w| (coefficient / n as f64) as f32 * w)
            .collect();
        let (df, da) = s.dh.split_at_mut(n * d_sae);
        let parts: Vec<[Vec<f32>; 6]> = df
            .par_chunks_mut(block)
            .zip(da.par_chunks(block))
            .zip(s.h.par_chunks(block).zip(fa[..n * d_sae].par_chunks(block)))
            .map(|((dfb, dab), (pb, fb))| grad_block(&gp, &l1, pb, fb, dfb, dab))
            .collect();
        let [gb_gate, gb_mag, gr_mag, gp_sum, fired, a_sum] =
            [0, 1, 2, 3, 4, 5].map(|i| sum_blocks(parts.iter().map(|p| p[i].clone()), d_sae));
        // ∂W_dec = [f; a]ᵀ [g; g_a], ∂W_enc = x'ᵀ ∂P.
        let gw_dec = sized(&mut s.gw_dec, d_sae * d_in);
        let (fa_t, g) = (Mat::new(&fa, 2 * n, d_sae).t(), Mat::new(&s.g, 2 * n, d_in));
        matmul_long_inner(gw_dec, fa_t, g, &mut s.partial);
        let (x_in, dp) = (Mat::new(&s.x_in, n, d_in), Mat::new(&s.dh, n, d_sae));
        let gw_enc = sized(&mut s.gw_enc, d_in * d_sae);
        matmul_long_inner(gw_enc, x_in.t(), dp, &mut s.partial);
        let l1_total = s.add_l1_norm_grad(&a_sum, &norms, coefficient);
        s.f = fa;
        let aux = coefficient * l1_total / n as f64 + via_gate;
        let mut out = analytic_out(mse, aux, &fired);
        let dev = Device::Cpu;
        for (name, grad) in [("b_gate", gb_gate), ("r_mag", gr_mag), ("b_mag", gb_mag)] {
            out.grads
                .insert(name, Some(Tensor::from_vec(grad, d_sae, &dev)?))?;
        }
        Ok((out, Grads::new(gp_sum, s)))
    }

    /// `[x̂; x̂_gate] = [f; a] W_dec + b_dec` (`x̂` stays in `s.recon`), `[g; g_a]` in
    /// `s.g`, `[∂f; ∂a]` in `s.dh`; returns both mean squared errors.
    fn decode_both(&self, s: &mut Scratch, fa: &[f32]) -> (f64, f64) {
        let (n, d_in, d_sae) = (s.n, s.d_in, s.d_sae);
        let recon = sized(&mut s.recon, 2 * n * d_in);
        for row in recon.chunks_exact_mut(d_in) {
            row.copy_from_slice(&s.b_dec);
        }
        let w_dec = Mat::new(&s.w_dec, d_sae, d_in);
        matmul(recon, Mat::new(fa, 2 * n, d_sae), w_dec, true);
        // Both reconstructions target x, both are means over the n rows.
        let mse = mse_grad(&s.recon[..n * d_in], &s.x, n, &mut s.g);
        let mut g_gate = Vec::new();
        let via_gate = mse_grad(&s.recon[n * d_in..], &s.x, n, &mut g_gate);
        s.g.extend_from_slice(&g_gate);
        s.recon.truncate(n * d_in);
        let dh = sized(&mut s.dh, 2 * n * d_sae);
        matmul(dh, Mat::new(&s.g, 2 * n, d_in), w_dec.t(), false);
        (mse, via_gate)
    }
}

/// One block of rows of `P`: `f = 1[π > 0] · relu(m)` and `a = relu(π)`.
fn gate_block(gp: &GateParams, p: &[f32], f: &mut [f32], a: &mut [f32]) {
    let d = gp.b_gate.len();
    let rows = p
        .chunks_exact(d)
        .zip(f.chunks_exact_mut(d).zip(a.chunks_exact_mut(d)));
    for (prow, (frow, arow)) in rows {
        for j in 0..d {
            let pi = prow[j] + gp.b_gate[j];
            let m = prow[j] * gp.scale[j] + gp.b_mag[j];
            let open = (pi > 0.0) as u8 as f32;
            frow[j] = open * m.max(0.0);
            arow[j] = pi.max(0.0);
        }
    }
}

/// One block of rows of the backward pass: `∂P` into `df` (which holds `∂f`), and the
/// column sums `[∂b_gate, ∂b_mag, ∂r_mag, Σ ∂P, firings, Σ a]`.
fn grad_block(
    gp: &GateParams,
    l1: &[f32],
    p: &[f32],
    f: &[f32],
    df: &mut [f32],
    da: &[f32],
) -> [Vec<f32>; 6] {
    let d = l1.len();
    let [mut gb_gate, mut gb_mag, mut gr_mag, mut gp_sum, mut fired, mut a_sum] =
        [0, 1, 2, 3, 4, 5].map(|_| vec![0f32; d]);
    let rows = p
        .chunks_exact(d)
        .zip(f.chunks_exact(d))
        .zip(df.chunks_exact_mut(d).zip(da.chunks_exact(d)));
    for ((prow, frow), (dfrow, darow)) in rows {
        for j in 0..d {
            let pi = prow[j] + gp.b_gate[j];
            let open = (pi > 0.0) as u8 as f32;
            // f > 0 exactly when the gate is open and m > 0.
            let on = (frow[j] > 0.0) as u8 as f32;
            let dm = dfrow[j] * on;
            let dpi = (darow[j] + l1[j]) * open;
            let dm_scaled = dm * gp.scale[j];
            dfrow[j] = dpi + dm_scaled;
            gb_gate[j] += dpi;
            gb_mag[j] += dm;
            gr_mag[j] += dm_scaled * prow[j];
            gp_sum[j] += dpi + dm_scaled;
            fired[j] += on;
            a_sum[j] += pi.max(0.0);
        }
    }
    [gb_gate, gb_mag, gr_mag, gp_sum, fired, a_sum]
}
