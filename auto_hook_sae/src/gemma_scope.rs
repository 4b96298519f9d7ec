//! Gemma Scope's `params.npz` (SAEs and transcoders on Gemma 2), read with candle's npz
//! reader and loaded as JumpReLU SAEs the way SAELens's Gemma Scope loaders do.

use crate::config::{Architecture, SaeConfig};
use crate::error::{Error, Result};
use crate::sae::Sae;
use candle_core::npy::NpzTensors;
use candle_core::{DType, Device, Tensor};
use std::path::{Path, PathBuf};

/// The file name Gemma Scope releases use.
pub const GEMMA_SCOPE_FILENAME: &str = "params.npz";

/// The arrays of a Gemma Scope `params.npz`.
const ARRAYS: [&str; 5] = ["W_enc", "W_dec", "b_enc", "b_dec", "threshold"];

impl Sae {
    /// Loads a Gemma Scope SAE: `path` is a folder holding `params.npz` (or the file
    /// itself) with `W_enc` `[d_in, d_sae]`, `W_dec` `[d_sae, d_in]`, `b_enc`, `b_dec`,
    /// `threshold` and no `cfg.json`. As SAELens's Gemma Scope loader: a JumpReLU SAE in
    /// f32 with `apply_b_dec_to_input = false`; `d_in` and `d_sae` come from the shapes
    /// and the hook from `hook_name` (kept in `metadata.hook_name`; check it against a
    /// model when splicing, [`crate::Spliced::with_sae`]). Lower-case `w_enc` / `w_dec`
    /// are accepted; a `scaling_factor` of ones is ignored and any other refused. For
    /// `hook_embed` the weights are rescaled as SAELens does for Gemma Scope's embedding
    /// SAEs (`W_enc / sqrt(d_in)`, `W_dec · sqrt(d_in)`), which were trained on the
    /// embeddings before Gemma's `sqrt(d_model)` scale.
    ///
    /// Missing or mis-shaped arrays are [`Error::Npz`] naming the array; a compressed
    /// npz (`np.savez_compressed`) is refused by candle's reader (also an `Error::Npz`).
    ///
    /// ```
    /// use auto_hook_sae::Sae;
    /// use candle_core::{Device, Tensor};
    /// let dir = std::env::temp_dir().join(format!("gemma_scope_doc_{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let (d_in, d_sae) = (4, 8);
    /// let z = |shape: &[usize]| Tensor::zeros(shape, candle_core::DType::F32, &Device::Cpu);
    /// let arrays = [("W_enc", z(&[d_in, d_sae])?), ("W_dec", z(&[d_sae, d_in])?),
    ///     ("b_enc", z(&[d_sae])?), ("b_dec", z(&[d_in])?), ("threshold", z(&[d_sae])?)];
    /// Tensor::write_npz(&arrays, dir.join("params.npz"))?;
    /// let sae = Sae::load_gemma_scope(&dir, "blocks.0.hook_resid_post", &Device::Cpu)?;
    /// assert_eq!((sae.cfg().d_in, sae.cfg().d_sae), (4, 8));
    /// assert!(!sae.cfg().apply_b_dec_to_input);
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn load_gemma_scope(
        path: impl AsRef<Path>,
        hook_name: &str,
        device: &Device,
    ) -> Result<Sae> {
        let file = params_file(path.as_ref());
        let npz = Npz::open(&file)?;
        let w_enc = npz.get("W_enc", None)?;
        let (d_in, d_sae) = match w_enc.dims() {
            &[d_in, d_sae] => (d_in, d_sae),
            dims => return Err(npz.err("W_enc", format!("expected [d_in, d_sae], got {dims:?}"))),
        };
        let w_dec = npz.get("W_dec", Some(&[d_sae, d_in]))?;
        let b_enc = npz.get("b_enc", Some(&[d_sae]))?;
        let b_dec = npz.get("b_dec", Some(&[d_in]))?;
        let threshold = npz.get("threshold", Some(&[d_sae]))?;
        npz.check_scaling_factor()?;
        let (w_enc, w_dec) = if hook_name == "hook_embed" {
            let s = (d_in as f64).sqrt();
            ((w_enc / s)?, (w_dec * s)?)
        } else {
            (w_enc, w_dec)
        };
        let mut cfg = SaeConfig::new(d_in, d_sae, Architecture::JumpRelu).with_hook(hook_name);
        cfg.apply_b_dec_to_input = false;
        cfg.metadata.prepend_bos = Some(true);
        cfg.metadata.context_size = Some(1024);
        let on = |t: Tensor| t.to_device(device);
        Sae::new(
            cfg,
            on(w_enc)?,
            on(b_enc)?,
            on(w_dec)?,
            on(b_dec)?,
            Some(on(threshold)?),
        )
    }

    /// Loads a Gemma Scope transcoder of layer `layer` (a `params.npz` as for
    /// [`Sae::load_gemma_scope`]): it reads `blocks.{layer}.ln2.hook_normalized`
    /// (`metadata.hook_name`) and stands in for `blocks.{layer}.hook_mlp_out`
    /// ([`Sae::hook_name_out`]), as SAELens's `jumprelu_transcoder`.
    ///
    /// ```no_run
    /// let tc = auto_hook_sae::Sae::load_gemma_scope_transcoder("layer_3/width_16k/average_l0_54", 3, &candle_core::Device::Cpu)?;
    /// assert_eq!(tc.hook_name_out(), Some("blocks.3.hook_mlp_out"));
    /// # Ok::<(), auto_hook_sae::Error>(())
    /// ```
    pub fn load_gemma_scope_transcoder(
        path: impl AsRef<Path>,
        layer: usize,
        device: &Device,
    ) -> Result<Sae> {
        let input = format!("blocks.{layer}.ln2.hook_normalized");
        let mut sae = Sae::load_gemma_scope(path, &input, device)?;
        sae.cfg.metadata.extra.insert(
            "hook_name_out".into(),
            format!("blocks.{layer}.hook_mlp_out").into(),
        );
        Ok(sae)
    }

    /// For a transcoder, the hook point its output stands in for (`metadata.hook_name_out`,
    /// as SAELens's transcoder configs); `None` for an SAE, whose output replaces its input.
    pub fn hook_name_out(&self) -> Option<&str> {
        self.cfg
            .metadata
            .extra
            .get("hook_name_out")
            .and_then(|v| v.as_str())
    }
}

/// `path/params.npz` for a folder, `path` itself otherwise.
fn params_file(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join(GEMMA_SCOPE_FILENAME)
    } else {
        path.to_owned()
    }
}

/// An open npz file whose arrays are named as SAELens names them (`w_enc` → `W_enc`).
struct Npz {
    path: PathBuf,
    tensors: NpzTensors,
}

impl Npz {
    fn open(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Err(Error::Io {
                path: path.to_owned(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no params.npz here"),
            });
        }
        let tensors = NpzTensors::new(path).map_err(|e| Error::Npz {
            path: path.to_owned(),
            name: "(file)".into(),
            problem: format!("cannot read it as npz: {e}"),
        })?;
        Ok(Self {
            path: path.to_owned(),
            tensors,
        })
    }

    fn err(&self, name: &str, problem: impl Into<String>) -> Error {
        Error::Npz {
            path: self.path.clone(),
            name: name.to_owned(),
            problem: problem.into(),
        }
    }

    /// The file's name for SAELens's array `name` (`W_enc` or `w_enc`).
    fn stored_name(&self, name: &str) -> Option<String> {
        let lower = name.replacen("W_", "w_", 1);
        self.tensors
            .names()
            .into_iter()
            .find(|n| **n == name || **n == lower)
            .cloned()
    }

    /// Array `name` as f32, checked against `shape` when given (before it is read).
    fn get(&self, name: &str, shape: Option<&[usize]>) -> Result<Tensor> {
        let Some(stored) = self.stored_name(name) else {
            let mut have: Vec<&String> = self.tensors.names();
            have.sort();
            return Err(self.err(
                name,
                format!(
                    "missing (a Gemma Scope params.npz holds {ARRAYS:?}; this one has {have:?})"
                ),
            ));
        };
        let (dims, _) = self
            .tensors
            .get_shape_and_dtype(&stored)
            .map_err(|e| self.err(name, e.to_string()))?;
        if let Some(expected) = shape {
            if dims.dims() != expected {
                return Err(self.err(
                    name,
                    format!("expected shape {expected:?}, got {:?}", dims.dims()),
                ));
            }
        }
        let t = self
            .tensors
            .get(&stored)
            .map_err(|e| self.err(name, e.to_string()))?
            .ok_or_else(|| self.err(name, "missing"))?;
        Ok(t.to_dtype(DType::F32)?)
    }

    /// SAELens drops a `scaling_factor` of ones and refuses others without a config
    /// that asks for fine-tuning scaling.
    fn check_scaling_factor(&self) -> Result<()> {
        if self.stored_name("scaling_factor").is_none() {
            return Ok(());
        }
        let s = self.get("scaling_factor", None)?;
        let off = (s - 1.0)?
            .abs()?
            .flatten_all()?
            .max(0)?
            .to_scalar::<f32>()?;
        if off > 1e-6 {
            return Err(self.err(
                "scaling_factor",
                "not all ones: fine-tuning scaling factors are not supported",
            ));
        }
        Ok(())
    }
}
