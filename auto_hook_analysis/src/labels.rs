//! `Labelled`: a tensor whose axes carry names and per-index labels (layers, heads,
//! positions, tokens), as TransformerLens's `return_labels` and its patching results.

use crate::error::{Error, Result};
use candle_core::{DType, Tensor};

/// One named axis with a label per index (`"layer"`: `["0", "1"]`, `"component"`:
/// `["embed", "0_attn_out", ...]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    pub name: String,
    pub labels: Vec<String>,
}

impl Axis {
    /// An axis called `name` with the given labels.
    pub fn new(name: impl Into<String>, labels: Vec<String>) -> Self {
        Self {
            name: name.into(),
            labels,
        }
    }

    /// An axis labelled by its indices `0..len`.
    pub fn indices(name: impl Into<String>, len: usize) -> Self {
        Self::new(name, (0..len).map(|i| i.to_string()).collect())
    }
}

/// A tensor with a named, labelled axis for each of its leading dimensions (trailing
/// dimensions, such as `d_model`, may stay unlabelled).
///
/// ```
/// use auto_hook_analysis::{Axis, Labelled};
/// use candle_core::{Device, Tensor};
/// let t = Tensor::new(&[[1f32, 2.0], [3.0, 4.0]], &Device::Cpu)?;
/// let grid = Labelled::new(t, vec![Axis::indices("layer", 2), Axis::new("pos", vec!["BOS".into(), "x".into()])])?;
/// assert_eq!(grid.value(&[1, 0])?, 3.0);
/// assert_eq!(grid.axis("pos")?.labels[1], "x");
/// assert_eq!(grid.argmax()?, vec![1, 1]);
/// # Ok::<(), auto_hook_analysis::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Labelled {
    tensor: Tensor,
    axes: Vec<Axis>,
}

impl Labelled {
    /// Labels the leading `axes.len()` dimensions of `tensor`; each axis must have one
    /// label per index.
    pub fn new(tensor: Tensor, axes: Vec<Axis>) -> Result<Self> {
        let dims = tensor.dims();
        if axes.len() > dims.len() {
            return Err(Error::Input(format!(
                "{} axes given for a tensor of shape {dims:?}",
                axes.len()
            )));
        }
        for (axis, &len) in axes.iter().zip(dims) {
            if axis.labels.len() != len {
                return Err(Error::Input(format!(
                    "axis `{}` has {} labels for a dimension of size {len} (shape {dims:?})",
                    axis.name,
                    axis.labels.len()
                )));
            }
        }
        Ok(Self { tensor, axes })
    }

    /// The values.
    pub fn tensor(&self) -> &Tensor {
        &self.tensor
    }

    /// The values, without labels.
    pub fn into_tensor(self) -> Tensor {
        self.tensor
    }

    /// The labelled axes, outermost first.
    pub fn axes(&self) -> &[Axis] {
        &self.axes
    }

    /// The axis called `name`.
    pub fn axis(&self, name: &str) -> Result<&Axis> {
        self.axes.iter().find(|a| a.name == name).ok_or_else(|| {
            let names: Vec<&str> = self.axes.iter().map(|a| a.name.as_str()).collect();
            Error::Input(format!("no axis `{name}`; the axes are {names:?}"))
        })
    }

    /// The same labels on new values of the same leading shape (the result of an
    /// element-wise map, say).
    pub fn with_tensor(&self, tensor: Tensor) -> Result<Self> {
        Self::new(tensor, self.axes.clone())
    }

    /// A 2-D grid with its axes swapped (`[layer, pos]` → `[pos, layer]`).
    pub fn transpose(&self) -> Result<Self> {
        if self.tensor.rank() != 2 || self.axes.len() != 2 {
            return Err(Error::Input(format!(
                "transpose needs a 2-D grid with both axes labelled; got shape {:?}",
                self.tensor.dims()
            )));
        }
        Self::new(
            self.tensor.t()?.contiguous()?,
            vec![self.axes[1].clone(), self.axes[0].clone()],
        )
    }

    /// One value, by index along every dimension, as f32.
    pub fn value(&self, index: &[usize]) -> Result<f32> {
        let dims = self.tensor.dims();
        if index.len() != dims.len() {
            return Err(Error::Input(format!(
                "index {index:?} for a tensor of shape {dims:?}"
            )));
        }
        let mut t = self.tensor.clone();
        for (i, (&at, &len)) in index.iter().zip(dims).enumerate() {
            let what = self
                .axes
                .get(i)
                .map_or("index", |_| "index along a labelled axis");
            crate::error::check_index(what, at, len)?;
            t = t.narrow(0, at, 1)?.squeeze(0)?;
        }
        Ok(t.to_dtype(DType::F32)?.to_scalar::<f32>()?)
    }

    /// The values as f32 rows, for a 2-D tensor.
    pub fn to_rows(&self) -> Result<Vec<Vec<f32>>> {
        Ok(self.tensor.to_dtype(DType::F32)?.to_vec2::<f32>()?)
    }

    /// Index of the largest value (first one on ties), along every dimension.
    pub fn argmax(&self) -> Result<Vec<usize>> {
        let flat: Vec<f32> = self.tensor.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let (mut best, mut at) = (f32::NEG_INFINITY, 0);
        for (i, &v) in flat.iter().enumerate() {
            if v > best {
                (best, at) = (v, i);
            }
        }
        let mut index = vec![0; self.tensor.rank()];
        for (slot, &len) in index.iter_mut().zip(self.tensor.dims()).rev() {
            *slot = at % len;
            at /= len;
        }
        Ok(index)
    }

    /// `(labels, value)` of the `k` largest values of a tensor whose every axis is
    /// labelled, largest first: e.g. the heads with the strongest patching effect.
    pub fn top(&self, k: usize) -> Result<Vec<(Vec<String>, f32)>> {
        if self.axes.len() != self.tensor.rank() {
            return Err(Error::Input(format!(
                "top needs every axis labelled; {} of {} are",
                self.axes.len(),
                self.tensor.rank()
            )));
        }
        let flat: Vec<f32> = self.tensor.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        Ok(top_indices(&flat, k)
            .into_iter()
            .map(|index| {
                let mut at = index;
                let mut labels = vec![String::new(); self.axes.len()];
                for (slot, axis) in labels.iter_mut().zip(&self.axes).rev() {
                    let len = axis.labels.len();
                    *slot = axis.labels[at % len].clone();
                    at /= len;
                }
                (labels, flat[index])
            })
            .collect())
    }
}

/// Indices of the `k` largest values, largest first (NaN sorts above everything).
pub(crate) fn top_indices(values: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    let k = k.min(values.len());
    if k == 0 {
        return Vec::new();
    }
    order.select_nth_unstable_by(k - 1, |&a, &b| values[b].total_cmp(&values[a]));
    order.truncate(k);
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    order
}
