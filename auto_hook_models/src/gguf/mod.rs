//! GGUF checkpoints (llama.cpp's format): the architecture from the metadata, the
//! weights dequantised or kept quantized, and the tokenizer from the metadata.
//!
//! Tensor names follow llama.cpp (`token_embd`, `blk.{l}.attn_q`, ...) and are mapped to
//! the Hugging Face names the ports load from, undoing llama.cpp's reordering of the
//! query and key rows for Llama (its rotary embedding pairs neighbouring dimensions, the
//! Hugging Face one the two halves), as transformers does when it loads a GGUF.

mod config;
pub(crate) mod mamba;
mod tensors;
pub(crate) mod tokenizer;

pub(crate) use tensors::{take_rows, Quantized};

use crate::error::{Error, Result};
use crate::load::Weights;
use crate::transformer::HookedTransformer;
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// An open GGUF file: its metadata and tensor directory, and a reader for the data.
pub(crate) struct Gguf {
    path: PathBuf,
    content: Content,
    reader: BufReader<File>,
}

impl Gguf {
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let file = File::open(path)
            .map_err(|e| Error::Io(format!("cannot open {}: {e}", path.display())))?;
        let mut reader = BufReader::new(file);
        let content = Content::read(&mut reader).map_err(|e| {
            Error::Gguf(format!(
                "{} is not a readable GGUF file (truncated or corrupt?): {e}",
                path.display()
            ))
        })?;
        Ok(Self {
            path: path.to_owned(),
            content,
            reader,
        })
    }

    fn value(&self, key: &str) -> Option<&Value> {
        self.content.metadata.get(key)
    }

    fn missing(&self, key: &str) -> Error {
        Error::Gguf(format!(
            "{} has no metadata key `{key}`",
            self.path.display()
        ))
    }

    fn string(&self, key: &str) -> Result<&str> {
        match self.value(key) {
            Some(Value::String(s)) => Ok(s),
            Some(other) => Err(self.wrong_type(key, "a string", other)),
            None => Err(self.missing(key)),
        }
    }

    /// An unsigned integer of any width, if the key is there.
    fn opt_usize(&self, key: &str) -> Result<Option<usize>> {
        let Some(v) = self.value(key) else {
            return Ok(None);
        };
        let n = match v {
            Value::U8(n) => *n as i128,
            Value::I8(n) => *n as i128,
            Value::U16(n) => *n as i128,
            Value::I16(n) => *n as i128,
            Value::U32(n) => *n as i128,
            Value::I32(n) => *n as i128,
            Value::U64(n) => *n as i128,
            Value::I64(n) => *n as i128,
            other => return Err(self.wrong_type(key, "an integer", other)),
        };
        usize::try_from(n)
            .map(Some)
            .map_err(|_| Error::Gguf(format!("metadata `{key}` is {n}, not a count")))
    }

    fn usize(&self, key: &str) -> Result<usize> {
        self.opt_usize(key)?.ok_or_else(|| self.missing(key))
    }

    fn opt_f64(&self, key: &str) -> Result<Option<f64>> {
        match self.value(key) {
            None => Ok(None),
            Some(Value::F32(x)) => Ok(Some(*x as f64)),
            Some(Value::F64(x)) => Ok(Some(*x)),
            Some(other) => Err(self.wrong_type(key, "a float", other)),
        }
    }

    fn wrong_type(&self, key: &str, want: &str, got: &Value) -> Error {
        Error::Gguf(format!(
            "metadata `{key}` of {} is {:?}, not {want}",
            self.path.display(),
            got.value_type()
        ))
    }

    fn has_tensor(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }
}

/// Whether `path` names a GGUF file (by its extension, or its magic bytes).
pub(crate) fn is_gguf(path: &Path) -> bool {
    if !path.is_file() {
        return false;
    }
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
    {
        return true;
    }
    let mut magic = [0u8; 4];
    File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .is_ok()
        && &magic == b"GGUF"
}

/// Loads a GGUF file dequantised to `dtype` (what [`crate::load`] does for a `.gguf`).
pub(crate) fn load_dequantized(
    path: &Path,
    dtype: DType,
    device: &Device,
) -> Result<HookedTransformer> {
    if !matches!(dtype, DType::F32 | DType::F16 | DType::BF16 | DType::F64) {
        return Err(Error::Input(format!(
            "a GGUF file dequantises to a float dtype (f32, f16, bf16, f64), not {dtype:?}"
        )));
    }
    let mut file = Gguf::open(path)?;
    let cfg = config::arch_config(&file)?;
    let weights = tensors::read_all(&mut file, &cfg, None, dtype, device)?;
    let model = crate::load::build(cfg, dense(weights, dtype, device))?;
    attach_text(model, &file)
}

/// Loads a GGUF file keeping its projections quantized.
pub(crate) fn load_quantized(path: &Path, device: &Device) -> Result<HookedTransformer> {
    let mut file = Gguf::open(path)?;
    let cfg = config::arch_config(&file)?;
    let mut quantized = tensors::Quantized::default();
    let weights = tensors::read_all(&mut file, &cfg, Some(&mut quantized), DType::F32, device)?;
    let weights = dense(weights, DType::F32, device).with_quantized(quantized);
    let model = crate::load::build(cfg, weights)?;
    attach_text(model, &file)
}

fn dense(tensors: HashMap<String, Tensor>, dtype: DType, device: &Device) -> Weights<'static> {
    Weights::dense(candle_nn::VarBuilder::from_tensors(tensors, dtype, device))
}

/// Every tensor of a GGUF file (Llama family) dequantised to `dtype`, under Hugging Face
/// names (`model.layers.0.self_attn.q_proj.weight`, ...) with the query and key rows in
/// Hugging Face's order: what [`crate::load`] builds the model from, ready for
/// `candle_core::safetensors::save` or another library's loader.
///
/// ```no_run
/// let tensors = auto_hook_models::gguf_tensors("model.gguf", candle_core::DType::F32, &candle_core::Device::Cpu)?;
/// candle_core::safetensors::save(&tensors, "model.safetensors")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn gguf_tensors(
    path: impl AsRef<Path>,
    dtype: DType,
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    let mut file = Gguf::open(path.as_ref())?;
    let cfg = config::arch_config(&file)?;
    tensors::read_all(&mut file, &cfg, None, dtype, device)
}

fn attach_text(mut model: HookedTransformer, file: &Gguf) -> Result<HookedTransformer> {
    let text = tokenizer::text_from_gguf(file)?;
    model.set_text(text);
    Ok(model)
}
