//! A sparse decode for the autograd training step of topk and batchtopk SAEs and their
//! aux-k loss (`autograd.rs`: the reference the analytic steps are checked against, and
//! the step for runs they do not cover): `f W_dec` touching only the non-zero latents,
//! in the forward and in both gradients (CPU, f32; other cases use the dense matmul).
//! The usual topk training path, the analytic step (`analytic_topk.rs`), does not use
//! it: it decodes the kept latents itself.
//!
//! The gradient with respect to `f` is computed at the non-zero entries only. That is
//! exact where it is used: the latents come from `h · mask`, whose gradient is masked
//! to the same entries.

use candle_core::{bail, CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};

struct SparseDecode;

/// `f W_dec` for `f` `[n, d_sae]` with few non-zeros per row.
pub(crate) fn sparse_decode(f: &Tensor, w_dec: &Tensor) -> Result<Tensor> {
    if f.dtype() != DType::F32 || w_dec.dtype() != DType::F32 || !f.device().is_cpu() {
        return f.matmul(w_dec);
    }
    f.contiguous()?
        .apply_op2(&w_dec.contiguous()?, SparseDecode)
}

impl CustomOp2 for SparseDecode {
    fn name(&self) -> &'static str {
        "sparse-decode"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(f), CpuStorage::F32(w)) = (s1, s2) else {
            bail!("sparse-decode: f32 only")
        };
        let (Some((f0, f1)), Some((w0, w1))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
        else {
            bail!("sparse-decode: contiguous inputs only")
        };
        let (n, d_sae) = l1.shape().dims2()?;
        let (_, d_in) = l2.shape().dims2()?;
        let (f, w) = (&f[f0..f1], &w[w0..w1]);
        let mut out = vec![0f32; n * d_in];
        for (row, o) in f.chunks_exact(d_sae).zip(out.chunks_exact_mut(d_in)) {
            for (j, &v) in row.iter().enumerate() {
                if v != 0.0 {
                    let wr = &w[j * d_in..(j + 1) * d_in];
                    o.iter_mut().zip(wr).for_each(|(o, &x)| *o += v * x);
                }
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((n, d_in))))
    }

    fn bwd(
        &self,
        f: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (n, d_sae) = f.dims2()?;
        let d_in = w.dim(1)?;
        let fv = f.flatten_all()?.to_vec1::<f32>()?;
        let wv = w.flatten_all()?.to_vec1::<f32>()?;
        let gv = g.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let mut grad_f = vec![0f32; n * d_sae];
        let mut grad_w = vec![0f32; d_sae * d_in];
        for i in 0..n {
            let gi = &gv[i * d_in..(i + 1) * d_in];
            for j in 0..d_sae {
                let v = fv[i * d_sae + j];
                if v != 0.0 {
                    let wr = &wv[j * d_in..(j + 1) * d_in];
                    grad_f[i * d_sae + j] = wr.iter().zip(gi).map(|(a, b)| a * b).sum();
                    let gw = &mut grad_w[j * d_in..(j + 1) * d_in];
                    gw.iter_mut().zip(gi).for_each(|(o, &x)| *o += v * x);
                }
            }
        }
        let grad_f = Tensor::from_vec(grad_f, (n, d_sae), f.device())?;
        let grad_w = Tensor::from_vec(grad_w, (d_sae, d_in), w.device())?;
        Ok((Some(grad_f), Some(grad_w)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn sparse_decode_matches_the_dense_matmul_and_its_gradients() -> Result<()> {
        let d = &Device::Cpu;
        let h = Tensor::randn(0f32, 1.0, (7, 20), d)?;
        let mask = crate::activation::topk_select(&h, None, 3, None)?;
        let hv = Var::from_tensor(&h)?;
        let w = Var::from_tensor(&Tensor::randn(0f32, 1.0, (20, 5), d)?)?;
        let g = Tensor::randn(0f32, 1.0, (7, 5), d)?;
        let f = (hv.as_tensor() * &mask)?;
        let sparse = sparse_decode(&f, w.as_tensor())?;
        let dense = f.matmul(w.as_tensor())?;
        let diff = |a: &Tensor, b: &Tensor| -> Result<f32> {
            (a - b)?.abs()?.max_all()?.to_scalar::<f32>()
        };
        assert!(diff(&sparse, &dense)? < 1e-5);
        let gs = (sparse * &g)?.sum_all()?.backward()?;
        let gd = (dense * &g)?.sum_all()?.backward()?;
        for t in [hv.as_tensor(), w.as_tensor()] {
            assert!(diff(gs.get(t).unwrap(), gd.get(t).unwrap())? < 1e-5);
        }
        Ok(())
    }
}
