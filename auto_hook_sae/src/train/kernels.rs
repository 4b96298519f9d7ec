//! Flat f32 building blocks of the analytic training steps: a strided matrix product on
//! slices (the `gemm` crate candle's CPU matmul uses, without tensor round trips or
//! transposing copies), tensor reads into reused buffers, and small vector loops.

use crate::error::{Error, Result};
use candle_core::{CpuStorage, Storage, Tensor};

/// A read-only matrix view of a slice: `rows × cols`, element `(r, c)` at `r·rs + c·cs`.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> Mat<'a> {
    /// A row-major `rows × cols` matrix.
    pub(crate) fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose (no copy: the strides swap).
    pub(crate) fn t(self) -> Self {
        Self {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    /// Columns `c0..c1`.
    fn col_range(self, c0: usize, c1: usize) -> Self {
        Self {
            data: &self.data[(c0 * self.cs).min(self.data.len())..],
            cols: c1 - c0,
            ..self
        }
    }

    /// Rows `r0..r1`.
    fn row_range(self, r0: usize, r1: usize) -> Self {
        Self {
            data: &self.data[(r0 * self.rs).min(self.data.len())..],
            rows: r1 - r0,
            ..self
        }
    }

    fn fits(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.data.len()
    }
}

/// `dst = a · b` (or `dst += a · b` with `accumulate`), `dst` row-major `a.rows × b.cols`,
/// on candle's threads.
pub(crate) fn matmul(dst: &mut [f32], a: Mat<'_>, b: Mat<'_>, accumulate: bool) {
    let threads = candle_core::utils::get_num_threads();
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    matmul_on(dst, a, b, accumulate, parallelism);
}

/// `dst = a · b` for a long inner dimension (the weight gradients' sums over the
/// batch): gemm splits such products poorly over threads, so with several threads each
/// one multiplies its own contiguous part of the inner dimension and the partial
/// products are added in order (`partial` is scratch). Reproducible for a given thread
/// count; 1 and 2 threads can differ in the last bits.
pub(crate) fn matmul_long_inner(dst: &mut [f32], a: Mat<'_>, b: Mat<'_>, partial: &mut Vec<f32>) {
    let parts = candle_core::utils::get_num_threads();
    if parts < 2 || a.cols < 64 * parts {
        return matmul(dst, a, b, false);
    }
    matmul_split(dst, a, b, parts, partial);
}

/// [`matmul_long_inner`] with the inner dimension split into `parts` (one rayon task
/// each, single-threaded products).
fn matmul_split(dst: &mut [f32], a: Mat<'_>, b: Mat<'_>, parts: usize, partial: &mut Vec<f32>) {
    let k = a.cols;
    let len = dst.len();
    let partial = sized(partial, (parts - 1) * len);
    let bounds: Vec<usize> = (0..=parts).map(|i| i * k / parts).collect();
    {
        let mut outs: Vec<&mut [f32]> = std::iter::once(&mut *dst)
            .chain(partial.chunks_exact_mut(len))
            .collect();
        use rayon::prelude::*;
        outs.par_iter_mut().enumerate().for_each(|(i, out)| {
            let (k0, k1) = (bounds[i], bounds[i + 1]);
            let (ai, bi) = (a.col_range(k0, k1), b.row_range(k0, k1));
            matmul_on(out, ai, bi, false, gemm::Parallelism::None);
        });
    }
    for p in partial.chunks_exact(len) {
        dst.iter_mut().zip(p).for_each(|(d, &v)| *d += v);
    }
}

fn matmul_on(
    dst: &mut [f32],
    a: Mat<'_>,
    b: Mat<'_>,
    accumulate: bool,
    parallelism: gemm::Parallelism,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(
        b.rows == k && dst.len() == m * n && a.fits() && b.fits(),
        "matmul: [{m}, {k}] x [{}, {n}] into {} entries",
        b.rows,
        dst.len()
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst.fill(0.0);
        }
        return;
    }
    // SAFETY: every index the product reads or writes is in bounds: `fits` checks the
    // largest offset of `a` and `b`, and `dst` is exactly `m × n`, row-major.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// Copies a CPU f32 tensor's values (row-major) into `out`, reusing its allocation.
pub(crate) fn read_into(t: &Tensor, out: &mut Vec<f32>) -> Result<()> {
    let t = t.contiguous()?;
    with_values(&t, |data| {
        out.clear();
        out.extend_from_slice(data);
    })
    .ok_or_else(|| {
        Error::Invalid("analytic training step: expected a contiguous CPU f32 tensor".into())
    })
}

/// `f` of a contiguous CPU f32 tensor's values, without a copy (`None` for any other).
pub(crate) fn with_values<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Option<R> {
    let (storage, layout) = t.storage_and_layout();
    match (&*storage, layout.contiguous_offsets()) {
        (Storage::Cpu(CpuStorage::F32(data)), Some((start, end))) => Some(f(&data[start..end])),
        _ => None,
    }
}

/// The values of a contiguous CPU f32 storage as its layout places them (`None` for
/// any other), for in-place ops.
pub(crate) fn values_mut<'a>(
    s: &'a mut CpuStorage,
    l: &candle_core::Layout,
) -> Option<&'a mut [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(data), Some((start, end))) => Some(&mut data[start..end]),
        _ => None,
    }
}

/// [`values_mut`], read-only.
pub(crate) fn values<'a>(s: &'a CpuStorage, l: &candle_core::Layout) -> Option<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(data), Some((start, end))) => Some(&data[start..end]),
        _ => None,
    }
}

/// Resizes a scratch buffer to `len` entries (contents unspecified until written).
pub(crate) fn sized(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    buf.resize(len, 0.0);
    &mut buf[..len]
}

pub(crate) use crate::select::BLOCK_ROWS;

/// The element-wise sum of per-block column sums, in block order.
pub(crate) fn sum_blocks(parts: impl IntoIterator<Item = Vec<f32>>, width: usize) -> Vec<f32> {
    let mut out = vec![0f32; width];
    for part in parts {
        out.iter_mut().zip(&part).for_each(|(o, &v)| *o += v);
    }
    out
}

/// `out += a · x`.
pub(crate) fn axpy(out: &mut [f32], a: f32, x: &[f32]) {
    out.iter_mut().zip(x).for_each(|(o, &x)| *o += a * x);
}

/// `Σ a_i b_i`.
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(a, b)| a * b).sum()
}

/// Column sums of the row-major `rows × cols` matrix `m`, added to `out`.
pub(crate) fn add_column_sums(out: &mut [f32], m: &[f32]) {
    for row in m.chunks_exact(out.len()) {
        out.iter_mut().zip(row).for_each(|(o, &v)| *o += v);
    }
}

/// `‖row‖` of each `width`-long row.
pub(crate) fn row_norms(m: &[f32], width: usize) -> Vec<f32> {
    m.chunks_exact(width)
        .map(|r| r.iter().map(|v| v * v).sum::<f32>().sqrt())
        .collect()
}

/// `g = 2 (x̂ − x) / n` into `g`; returns `Σ (x̂ − x)² / n`.
pub(crate) fn mse_grad(recon: &[f32], x: &[f32], n: usize, g: &mut Vec<f32>) -> f64 {
    let s = 2.0 / n as f32;
    g.clear();
    g.extend(recon.iter().zip(x).map(|(&r, &x)| s * (r - x)));
    let e_sq = sum_squares(g) / (s as f64 * s as f64);
    e_sq / n as f64
}

/// `Σ v²`, in 16 f32 lanes flushed to f64 every 1024 values (vectorised, and no long
/// f32 sums).
pub(crate) fn sum_squares(v: &[f32]) -> f64 {
    let mut total = 0f64;
    for block in v.chunks(1024) {
        let mut lanes = [0f32; 16];
        let chunks = block.chunks_exact(16);
        let rest = chunks.remainder();
        for c in chunks {
            for t in 0..16 {
                lanes[t] += c[t] * c[t];
            }
        }
        let tail: f64 = rest.iter().map(|&v| (v * v) as f64).sum();
        total += lanes.iter().map(|&l| l as f64).sum::<f64>() + tail;
    }
    total
}

/// `1 − Σ‖x − x̂‖² / Σ‖x − mean(x)‖²` from the MSE (`Σ‖x − x̂‖² / n`); `x` is the
/// target, `width` wide.
pub(crate) fn explained_variance(x: &[f32], mse: f64, n: usize, width: usize) -> f64 {
    let mut sum = vec![0f64; width];
    for row in x.chunks_exact(width) {
        sum.iter_mut().zip(row).for_each(|(s, &v)| *s += v as f64);
    }
    let sq = sum_squares(x);
    let total = sq - sum.iter().map(|s| s * s).sum::<f64>() / n.max(1) as f64;
    1.0 - mse * n as f64 / total.max(f64::MIN_POSITIVE)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The naive product of `a` and `b` as views.
    fn naive(a: Mat<'_>, b: Mat<'_>) -> Vec<f32> {
        let mut out = vec![0f32; a.rows * b.cols];
        for r in 0..a.rows {
            for c in 0..b.cols {
                out[r * b.cols + c] = (0..a.cols)
                    .map(|i| a.data[r * a.rs + i * a.cs] * b.data[i * b.rs + c * b.cs])
                    .sum();
            }
        }
        out
    }

    #[test]
    fn strided_matmul_matches_the_naive_product_in_every_orientation() {
        let (m, k, n) = (37, 19, 23);
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 37) % 17) as f32 - 8.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 11) % 13) as f32 - 6.0).collect();
        for ta in [false, true] {
            for tb in [false, true] {
                let va = if ta {
                    Mat::new(&a, k, m).t()
                } else {
                    Mat::new(&a, m, k)
                };
                let vb = if tb {
                    Mat::new(&b, n, k).t()
                } else {
                    Mat::new(&b, k, n)
                };
                let want = naive(va, vb);
                let mut got = vec![1f32; m * n];
                matmul(&mut got, va, vb, false);
                assert_eq!(got, want, "ta={ta} tb={tb}");
                matmul(&mut got, va, vb, true);
                let twice: Vec<f32> = want.iter().map(|v| 2.0 * v).collect();
                assert_eq!(got, twice, "accumulate ta={ta} tb={tb}");
            }
        }
    }

    #[test]
    fn the_long_inner_product_matches_the_naive_product() {
        // Inner dimension 700 (split over the threads when there are several); both
        // operands transposed views, as the weight gradients use them.
        let (m, k, n) = (9, 700, 13);
        let a: Vec<f32> = (0..k * m).map(|i| ((i * 37) % 17) as f32 - 8.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 11) % 13) as f32 - 6.0).collect();
        let (va, vb) = (Mat::new(&a, k, m).t(), Mat::new(&b, k, n));
        let want = naive(va, vb);
        let mut got = vec![1f32; m * n];
        matmul_long_inner(&mut got, va, vb, &mut Vec::new());
        assert_eq!(got, want);
        for parts in [2, 3, 7] {
            let mut split = vec![1f32; m * n];
            matmul_split(&mut split, va, vb, parts, &mut Vec::new());
            assert_eq!(split, want, "split into {parts} parts");
        }
    }

    #[test]
    fn read_into_reads_non_contiguous_tensors_in_row_major_order() -> Result<()> {
        let t = Tensor::arange(0f32, 6.0, &candle_core::Device::Cpu)?.reshape((2, 3))?;
        let mut buf = vec![9f32; 10];
        read_into(&t.t()?, &mut buf)?;
        assert_eq!(buf, [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        let bad = t.to_dtype(candle_core::DType::F64)?;
        assert!(read_into(&bad, &mut buf).is_err());
        Ok(())
    }
}
