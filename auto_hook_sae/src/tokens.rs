//! Token sources: fixed-length sequences of token ids for the activation store.
//!
//! Packing (for flat id streams, token files and text): the stream is cut into
//! consecutive windows of `context_size` tokens; with `bos = Some(id)` each window is
//! `[bos]` followed by the next `context_size - 1` ids of the stream (SAELens's
//! `prepend_bos`). A last partial window is dropped. Texts are split into documents
//! ([`split_documents`](crate::split_documents): `%`-separated fortunes, otherwise
//! blank-line paragraphs), tokenized without special tokens and joined with the
//! `separator` token when one is given ([`Packing`](crate::Packing)). 2-D inputs
//! (`[n, context_size]`) are used as they are, row by row.

use crate::error::{io_err, Error, Result};
use candle_core::{DType, Device, Tensor};
use std::path::Path;

/// Sequences of token ids, all `context_size` long.
///
/// ```
/// use auto_hook_sae::TokenSource;
/// let tokens = TokenSource::from_ids(&(1..=10).collect::<Vec<u32>>(), 4, Some(0))?;
/// assert_eq!(tokens.len(), 3); // [0 1 2 3] [0 4 5 6] [0 7 8 9]; 10 is dropped
/// assert_eq!(tokens.batch(1, 2)?.to_vec2::<u32>()?, [[0, 4, 5, 6], [0, 7, 8, 9]]);
/// # Ok::<(), auto_hook_sae::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct TokenSource {
    ids: Vec<u32>,
    context_size: usize,
}

impl TokenSource {
    /// Packs a flat stream of ids (see the module docs).
    pub fn from_ids(stream: &[u32], context_size: usize, bos: Option<u32>) -> Result<Self> {
        let body = context_size.saturating_sub(bos.is_some() as usize);
        if body == 0 {
            return Err(Error::Invalid(format!(
                "context_size {context_size} leaves no room for tokens"
            )));
        }
        let mut ids = Vec::with_capacity(stream.len() / body * context_size);
        for chunk in stream.chunks_exact(body) {
            ids.extend(bos);
            ids.extend_from_slice(chunk);
        }
        Self::from_rows(ids, context_size)
    }

    /// Sequences from a tensor of ids: `[n, context_size]` rows as they are, or a 1-D
    /// stream packed as in [`TokenSource::from_ids`]. Integer dtypes only.
    pub fn from_tensor(t: &Tensor, context_size: usize, bos: Option<u32>) -> Result<Self> {
        if t.dtype().is_float() {
            return Err(Error::Shape {
                what: "token tensor".into(),
                problem: format!("token ids must be integers, got {:?}", t.dtype()),
            });
        }
        let flat = t.to_dtype(DType::I64)?.flatten_all()?.to_vec1::<i64>()?;
        let ids = to_u32(&flat)?;
        match t.rank() {
            1 => Self::from_ids(&ids, context_size, bos),
            2 if t.dim(1)? == context_size => Self::from_rows(ids, context_size),
            2 => Err(Error::Shape {
                what: "token tensor".into(),
                problem: format!(
                    "rows of {} tokens, but context_size is {context_size}",
                    t.dim(1)?
                ),
            }),
            r => Err(Error::Shape {
                what: "token tensor".into(),
                problem: format!("expected 1 or 2 axes, got {r}"),
            }),
        }
    }

    /// Token ids from a `.safetensors` file (the tensor `tokens` or `input_ids`, or its
    /// only tensor) or a `.npy` file (little-endian integers), 1-D or `[n, context_size]`.
    pub fn from_file(
        path: impl AsRef<Path>,
        context_size: usize,
        bos: Option<u32>,
    ) -> Result<Self> {
        let path = path.as_ref();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let tensor = match ext {
            "safetensors" => {
                let mut map = candle_core::safetensors::load(path, &Device::Cpu)?;
                let key = ["tokens", "input_ids"]
                    .into_iter()
                    .find(|k| map.contains_key(*k))
                    .map(str::to_owned)
                    .or_else(|| {
                        (map.len() == 1)
                            .then(|| map.keys().next().cloned())
                            .flatten()
                    });
                let key = key.ok_or_else(|| Error::Shape {
                    what: path.display().to_string(),
                    problem: "no tensor named `tokens` or `input_ids`, and more than one tensor"
                        .into(),
                })?;
                map.remove(&key).expect("key was found")
            }
            "npy" => read_npy(path)?,
            other => {
                return Err(Error::Invalid(format!(
                    "{}: unsupported token file extension {other:?} (use .safetensors or .npy)",
                    path.display()
                )))
            }
        };
        Self::from_tensor(&tensor, context_size, bos)
    }

    /// Splits `text` into documents, tokenizes and packs them in order (see the module
    /// docs; [`TokenSource::from_documents`] with shuffling and the other options).
    pub fn from_text(
        text: &str,
        tokenizer: &tokenizers::Tokenizer,
        context_size: usize,
        bos: Option<u32>,
        separator: Option<u32>,
    ) -> Result<Self> {
        let packing = crate::Packing {
            context_size,
            bos,
            separator,
            shuffle_seed: None,
        };
        Self::from_documents(&crate::split_documents(text), tokenizer, &packing)
    }

    /// Reads a text file and tokenizes it as [`TokenSource::from_text`] does.
    pub fn from_text_file(
        path: impl AsRef<Path>,
        tokenizer: &tokenizers::Tokenizer,
        context_size: usize,
        bos: Option<u32>,
        separator: Option<u32>,
    ) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| io_err(path, e))?;
        Self::from_text(&text, tokenizer, context_size, bos, separator)
    }

    fn from_rows(ids: Vec<u32>, context_size: usize) -> Result<Self> {
        if ids.is_empty() {
            return Err(Error::Invalid(format!(
                "no complete sequence of {context_size} tokens in the token source"
            )));
        }
        Ok(Self { ids, context_size })
    }

    /// Number of sequences.
    pub fn len(&self) -> usize {
        self.ids.len() / self.context_size
    }

    /// Whether there is no sequence (never true for a constructed source).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Tokens per sequence.
    pub fn context_size(&self) -> usize {
        self.context_size
    }

    /// The largest id (to check against a model's vocabulary).
    pub fn max_id(&self) -> u32 {
        self.ids.iter().copied().max().unwrap_or(0)
    }

    /// Splits off the last `n` sequences (e.g. held out for evaluation): `(first, last)`.
    ///
    /// ```
    /// let t = auto_hook_sae::TokenSource::from_ids(&(0..12).collect::<Vec<u32>>(), 3, None)?;
    /// let (train, held_out) = t.split_last(1)?;
    /// assert_eq!((train.len(), held_out.batch(0, 1)?.to_vec2::<u32>()?), (3, vec![vec![9, 10, 11]]));
    /// # Ok::<(), auto_hook_sae::Error>(())
    /// ```
    pub fn split_last(self, n: usize) -> Result<(Self, Self)> {
        let len = self.len();
        if n == 0 || n >= len {
            return Err(Error::Invalid(format!(
                "cannot split the last {n} of {len} sequences off (both parts must be non-empty)"
            )));
        }
        let c = self.context_size;
        let mut first = self.ids;
        let last = first.split_off((len - n) * c);
        Ok((Self::from_rows(first, c)?, Self::from_rows(last, c)?))
    }

    /// `n` sequences from `start` (wrapping around the end) as u32 `[n, context_size]`.
    pub fn batch(&self, start: usize, n: usize) -> Result<Tensor> {
        let len = self.len();
        let c = self.context_size;
        let mut out = Vec::with_capacity(n * c);
        for i in 0..n {
            let row = (start + i) % len;
            out.extend_from_slice(&self.ids[row * c..(row + 1) * c]);
        }
        Ok(Tensor::from_vec(out, (n, c), &Device::Cpu)?)
    }
}

fn to_u32(ids: &[i64]) -> Result<Vec<u32>> {
    ids.iter()
        .map(|&v| {
            u32::try_from(v).map_err(|_| Error::Shape {
                what: "token ids".into(),
                problem: format!("id {v} is not a valid token id"),
            })
        })
        .collect()
}

/// A `.npy` file through candle's reader (C order, little-endian; integer ids as
/// int16/int32/int64, uint8/uint32). Other dtypes (numpy's int8 `|i1`, uint16, uint64,
/// floats) are refused by name rather than read as something else.
fn read_npy(path: &Path) -> Result<Tensor> {
    let bad = |problem: String| Error::Shape {
        what: path.display().to_string(),
        problem,
    };
    Tensor::read_npy(path).map_err(|e| match e {
        candle_core::Error::Io(e) if e.kind() != std::io::ErrorKind::UnexpectedEof => {
            io_err(path, e)
        }
        candle_core::Error::Io(_) => bad("truncated: fewer values than the shape says".into()),
        candle_core::Error::Npy(m) if m.contains("descr") => bad(format!(
            "{m}: token ids must be int16, int32, int64, uint8 or uint32 \
             (convert with numpy's `astype(np.int32)`)"
        )),
        candle_core::Error::Npy(m) => bad(format!("not a .npy file ({m})")),
        other => bad(format!("not a .npy file ({other})")),
    })
}
