//! Checkpoints: everything a run needs to continue exactly where it stopped.
//!
//! A checkpoint folder holds `sae_{i}/` (each SAE in SAELens's format, usable as is),
//! `trainer_state.safetensors` (weights, Adam moments, dead-feature counters, firing
//! counts, the store's buffer) and `trainer_state.json` (step counts, RNG state, ...).

use super::trainer::Trainer;
use crate::error::{io_err, Error, Result};
use auto_hook::HookedRoot;
use candle_core::{DType, Device, Tensor};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;

const STATE_TENSORS: &str = "trainer_state.safetensors";
const STATE_JSON: &str = "trainer_state.json";

impl<M: HookedRoot> Trainer<'_, M> {
    /// Writes a checkpoint to `folder` (files are staged under temporary names and
    /// renamed, so an interrupted save never leaves a half-written state file).
    pub fn save_checkpoint(&self, folder: impl AsRef<Path>) -> Result<()> {
        let folder = folder.as_ref();
        std::fs::create_dir_all(folder).map_err(|e| io_err(folder, e))?;
        let (mut tensors, nums) = self.store.state_tensors()?;
        let mut saes = Vec::new();
        for (i, s) in self.saes.iter().enumerate() {
            s.export()?
                .save(folder.join(format!("sae_{i}")), Some(&s.log_sparsity()?))?;
            for (name, v) in s.params().iter() {
                tensors.insert(format!("sae.{i}.{name}"), v.as_tensor().copy()?);
            }
            for (name, m, v) in s.adam.moments() {
                tensors.insert(format!("sae.{i}.adam_m.{name}"), m.copy()?);
                tensors.insert(format!("sae.{i}.adam_v.{name}"), v.copy()?);
            }
            let d = s.since_fired.len();
            tensors.insert(
                format!("sae.{i}.since_fired"),
                Tensor::from_vec(s.since_fired.clone(), d, &Device::Cpu)?,
            );
            tensors.insert(
                format!("sae.{i}.act_freq"),
                Tensor::from_vec(s.act_freq.clone(), d, &Device::Cpu)?,
            );
            saes.push(json!({
                "architecture": s.cfg.sae.architecture.name(),
                "hook_name": s.cfg.sae.metadata.hook_name,
                "adam_steps": s.adam.steps(),
                "freq_rows": s.freq_rows,
                "batchtopk_threshold": s.batchtopk_threshold,
                "scale": s.scaler.factor,
            }));
        }
        let state = json!({ "step": self.step, "store": nums, "saes": saes });
        let tensors: HashMap<String, Tensor> = tensors
            .into_iter()
            .map(|(k, t)| Ok((k, t.to_device(&Device::Cpu)?)))
            .collect::<Result<_>>()?;
        let tmp_t = folder.join(format!(".{STATE_TENSORS}.tmp-{}", std::process::id()));
        let tmp_j = folder.join(format!(".{STATE_JSON}.tmp-{}", std::process::id()));
        candle_core::safetensors::save(&tensors, &tmp_t)?;
        std::fs::write(&tmp_j, state.to_string()).map_err(|e| io_err(&tmp_j, e))?;
        std::fs::rename(&tmp_t, folder.join(STATE_TENSORS)).map_err(|e| io_err(folder, e))?;
        std::fs::rename(&tmp_j, folder.join(STATE_JSON)).map_err(|e| io_err(folder, e))?;
        Ok(())
    }

    /// Continues from a checkpoint written by a trainer built with the same SAE configs,
    /// model, tokens and store settings; training then goes on as if never stopped.
    pub fn resume(&mut self, folder: impl AsRef<Path>) -> Result<()> {
        let folder = folder.as_ref();
        let path = folder.join(STATE_JSON);
        let text = std::fs::read_to_string(&path).map_err(|e| io_err(&path, e))?;
        let state: Value = serde_json::from_str(&text)
            .map_err(|e| bad(&format!("{STATE_JSON} is not JSON: {e}")))?;
        let infos = state["saes"]
            .as_array()
            .ok_or_else(|| bad("no `saes` list"))?;
        if infos.len() != self.saes.len() {
            return Err(bad(&format!(
                "the checkpoint has {} SAEs, this trainer {}",
                infos.len(),
                self.saes.len()
            )));
        }
        let tensors = candle_core::safetensors::load(folder.join(STATE_TENSORS), &Device::Cpu)?;
        let get = |key: &str| {
            tensors
                .get(key)
                .cloned()
                .ok_or_else(|| bad(&format!("missing tensor `{key}`")))
        };
        for (i, (s, info)) in self.saes.iter_mut().zip(infos).enumerate() {
            if info["architecture"] != s.cfg.sae.architecture.name()
                || info["hook_name"] != json!(s.cfg.sae.metadata.hook_name)
            {
                return Err(bad(&format!(
                    "SAE {i} of the checkpoint is {} on {}, not this trainer's",
                    info["architecture"], info["hook_name"]
                )));
            }
            let device = s.sae.device().clone();
            let steps = info["adam_steps"].as_u64().unwrap_or(0);
            for (j, (name, var)) in s.params.iter().enumerate() {
                // Named keys (checkpoints written before them numbered the variables).
                let saved = get_param(&get, i, "", name, j)?;
                if saved.dims() != var.dims() {
                    return Err(bad(&format!(
                        "SAE {i} weight `{name}` has shape {:?}, expected {:?}",
                        saved.dims(),
                        var.dims()
                    )));
                }
                var.set(&saved.to_device(&device)?.to_dtype(var.dtype())?)?;
                let m = get_param(&get, i, "adam_m.", name, j)?.to_device(&device)?;
                let v = get_param(&get, i, "adam_v.", name, j)?.to_device(&device)?;
                s.adam.restore(name, m, v, steps)?;
            }
            s.since_fired = get(&format!("sae.{i}.since_fired"))?
                .to_dtype(DType::U32)?
                .to_vec1::<u32>()?;
            s.act_freq = get(&format!("sae.{i}.act_freq"))?
                .to_dtype(DType::F64)?
                .to_vec1::<f64>()?;
            s.freq_rows = info["freq_rows"].as_u64().unwrap_or(0);
            s.batchtopk_threshold = info["batchtopk_threshold"].as_f64().unwrap_or(0.0);
            s.scaler.factor = info["scale"].as_f64();
        }
        let nums = state.get("store").ok_or_else(|| bad("no store state"))?;
        self.store.restore(&tensors, nums)?;
        self.step = state["step"].as_u64().ok_or_else(|| bad("no step"))? as usize;
        Ok(())
    }
}

/// The checkpoint tensor of parameter `name` (index `j` in the legacy numbering) of SAE
/// `i`: `sae.{i}.{kind}{name}`, or in checkpoints written before named keys
/// `sae.{i}.var.{j}` (weights) / `sae.{i}.{kind}{j}` (Adam's moments).
fn get_param(
    get: &impl Fn(&str) -> Result<Tensor>,
    i: usize,
    kind: &str,
    name: &str,
    j: usize,
) -> Result<Tensor> {
    get(&format!("sae.{i}.{kind}{name}")).or_else(|named| {
        let legacy = match kind {
            "" => format!("sae.{i}.var.{j}"),
            _ => format!("sae.{i}.{kind}{j}"),
        };
        get(&legacy).map_err(|_| named)
    })
}

fn bad(msg: &str) -> Error {
    Error::Invalid(format!("checkpoint: {msg}"))
}
