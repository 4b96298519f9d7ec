//! SAELens's folder format: `cfg.json`, `sae_weights.safetensors`, `sparsity.safetensors`.

use crate::config::SaeConfig;
use crate::error::{io_err, Error, Result};
use crate::params::SaeParams;
use crate::sae::Sae;
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The config file name.
pub(crate) const CFG_FILENAME: &str = "cfg.json";
/// The weights file name.
pub(crate) const WEIGHTS_FILENAME: &str = "sae_weights.safetensors";
/// The feature-density file name (log10 firing frequency per latent).
pub(crate) const SPARSITY_FILENAME: &str = "sparsity.safetensors";

impl Sae {
    /// Loads a folder written by SAELens (`save_model` / `save_inference_model`, v6 or
    /// earlier) or by [`Sae::save`], onto `device`, in the config's dtype.
    ///
    /// ```
    /// # use auto_hook_sae::{Architecture, Sae, SaeConfig};
    /// # use candle_core::Device;
    /// # let dir = std::env::temp_dir().join(format!("sae_doc_load_{}", std::process::id()));
    /// let sae = Sae::init(&SaeConfig::new(4, 8, Architecture::Standard), None, 1, &Device::Cpu)?;
    /// sae.save(&dir, None)?;
    /// let back = Sae::load(&dir, &Device::Cpu)?;
    /// assert_eq!(back.cfg(), sae.cfg());
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), auto_hook_sae::Error>(())
    /// ```
    pub fn load(folder: impl AsRef<Path>, device: &Device) -> Result<Sae> {
        let folder = folder.as_ref();
        let cfg_path = folder.join(CFG_FILENAME);
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| io_err(&cfg_path, e))?;
        let cfg = SaeConfig::from_json_str(&text)?;
        let weights_path = folder.join(WEIGHTS_FILENAME);
        if !weights_path.exists() {
            return Err(io_err(
                &weights_path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "weights file not found"),
            ));
        }
        let mut tensors =
            candle_core::safetensors::load(&weights_path, device).map_err(|e| Error::Weights {
                name: "(file)".into(),
                problem: format!("cannot read {}: {e}", weights_path.display()),
            })?;
        let dtype = cfg.dtype;
        let mut take = |name: &str| -> Result<Tensor> {
            let t = tensors.remove(name).ok_or_else(|| Error::Weights {
                name: name.into(),
                problem: "missing".into(),
            })?;
            Ok(t.to_dtype(dtype)?)
        };
        let mut p = SaeParams::new(take("W_enc")?, take("W_dec")?, take("b_dec")?);
        let arch = cfg.architecture.imp();
        for name in arch.encoder_params() {
            p.insert(name, take(name)?)?;
        }
        if arch.skip_connection() {
            p.w_skip = Some(take("W_skip")?);
        }
        if arch.loads_threshold() {
            p.threshold = Some(match take("threshold") {
                Ok(t) => t,
                // Older jumprelu checkpoints store log(threshold).
                Err(_) => take("log_threshold")
                    .map_err(|_| Error::Weights {
                        name: "threshold".into(),
                        problem: "missing (jumprelu SAEs need `threshold` or `log_threshold`)"
                            .into(),
                    })?
                    .exp()?,
            });
        }
        Sae::from_params(cfg, p)
    }

    /// Saves in SAELens's inference format, loadable with `SAE.load_from_disk`: topk
    /// decoder norms are folded into the encoder when `rescale_acts_by_decoder_norm`,
    /// batchtopk is written as `jumprelu` with its threshold. `sparsity` is the log10
    /// feature density `[d_sae]`. Files are written to temporary names first and renamed,
    /// so a failed save leaves no half-written file.
    pub fn save(&self, folder: impl AsRef<Path>, sparsity: Option<&Tensor>) -> Result<()> {
        let folder = folder.as_ref();
        let sae = self.inference_form()?;
        if let Some(s) = sparsity {
            if s.dims() != [sae.cfg.d_sae] {
                return Err(Error::Shape {
                    what: "sparsity".into(),
                    problem: format!("expected shape [{}], got {:?}", sae.cfg.d_sae, s.dims()),
                });
            }
        }
        std::fs::create_dir_all(folder).map_err(|e| io_err(folder, e))?;
        let mut weights: HashMap<String, Tensor> = HashMap::new();
        for (name, t) in sae.p.iter() {
            weights.insert(name.into(), t.to_device(&Device::Cpu)?.contiguous()?);
        }
        let cfg_text = serde_json::to_string_pretty(&sae.cfg.to_json())
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let mut staged = Vec::new();
        staged.push(stage(folder, CFG_FILENAME, |p| {
            std::fs::write(p, &cfg_text).map_err(|e| io_err(p, e))
        })?);
        staged.push(stage(folder, WEIGHTS_FILENAME, |p| {
            candle_core::safetensors::save(&weights, p).map_err(Error::from)
        })?);
        if let Some(s) = sparsity {
            let map = HashMap::from([(
                "sparsity".to_owned(),
                s.to_device(&Device::Cpu)?.to_dtype(DType::F32)?,
            )]);
            staged.push(stage(folder, SPARSITY_FILENAME, |p| {
                candle_core::safetensors::save(&map, p).map_err(Error::from)
            })?);
        }
        for (tmp, dest) in staged {
            std::fs::rename(&tmp, &dest).map_err(|e| io_err(&dest, e))?;
        }
        Ok(())
    }

    /// The SAE as SAELens's inference classes read it (see [`Sae::save`]).
    pub fn inference_form(&self) -> Result<Sae> {
        let mut cfg = self.cfg.clone();
        let mut p = self.p.clone();
        let arch = cfg.architecture.imp();
        let rescaling = cfg.rescale_acts_by_decoder_norm && arch.rescales_by_decoder_norm();
        if rescaling {
            let norms = self.decoder_norms()?.clamp(1e-8, f64::INFINITY)?;
            p.b_enc = p.b_enc.map(|b| b * &norms).transpose()?;
            p.w_dec = p.w_dec.broadcast_div(&norms.unsqueeze(1)?)?;
            p.w_enc = p.w_enc.broadcast_mul(&norms.unsqueeze(0)?)?;
            cfg.rescale_acts_by_decoder_norm = false;
        }
        cfg.architecture = arch.inference();
        if p.threshold.is_none() && cfg.architecture.imp().needs_threshold() {
            p.threshold = Some(Tensor::zeros(cfg.d_sae, cfg.dtype, self.device())?);
        }
        Sae::from_params(cfg, p)
    }
}

/// Writes `name` to a temporary file in `folder` and returns `(temp, final)` paths.
fn stage(
    folder: &Path,
    name: &str,
    write: impl FnOnce(&Path) -> Result<()>,
) -> Result<(PathBuf, PathBuf)> {
    let tmp = folder.join(format!(".{name}.tmp-{}", std::process::id()));
    if let Err(e) = write(&tmp) {
        std::fs::remove_file(&tmp).ok();
        return Err(e);
    }
    Ok((tmp, folder.join(name)))
}

/// Reads `sparsity.safetensors` of an SAE folder, if it has one.
///
/// ```
/// # let dir = std::env::temp_dir().join("sae_doc_no_sparsity");
/// assert!(auto_hook_sae::load_sparsity(&dir)?.is_none());
/// # Ok::<(), auto_hook_sae::Error>(())
/// ```
pub fn load_sparsity(folder: impl AsRef<Path>) -> Result<Option<Tensor>> {
    let path = folder.as_ref().join(SPARSITY_FILENAME);
    if !path.exists() {
        return Ok(None);
    }
    let mut map = candle_core::safetensors::load(&path, &Device::Cpu)?;
    map.remove("sparsity")
        .map(Some)
        .ok_or_else(|| Error::Weights {
            name: "sparsity".into(),
            problem: format!("missing from {}", path.display()),
        })
}
