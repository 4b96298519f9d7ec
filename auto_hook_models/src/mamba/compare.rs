//! Mapping Hugging Face Mamba module paths to `HookedMamba` hook names.

use super::HookedMamba;
use crate::compare::ReferenceModel;

const LAYER_KEYS: &[(&str, &str)] = &[
    ("", "hook_resid_post"),
    ("norm", "hook_normalized_input"),
    ("mixer", "hook_out_proj"),
    ("mixer.in_proj", "in_proj.hook_point"),
    ("mixer.x_proj", "x_proj.hook_point"),
    ("mixer.dt_proj", "dt_proj.hook_point"),
    ("mixer.out_proj", "out_proj.hook_point"),
];

/// The hook whose activation equals a Mamba reference key (`backbone.layers.1.mixer`,
/// `hidden_states.2`, `logits`, ...). `mixer.conv1d` (HF's padded `[B, E, L + K - 1]`
/// layout) has no equal hook; `hook_conv` is its trimmed, transposed form.
///
/// ```
/// let cfg = auto_hook_models::MambaConfig::from_json(
///     r#"{"model_type":"mamba","vocab_size":10,"hidden_size":8,"num_hidden_layers":2}"#)?;
/// use auto_hook_models::hook_for_mamba_key as map;
/// assert_eq!(map(&cfg, "backbone.layers.1.mixer").as_deref(), Some("blocks.1.hook_out_proj"));
/// assert_eq!(map(&cfg, "hidden_states.0").as_deref(), Some("blocks.0.hook_resid_post"));
/// assert_eq!(map(&cfg, "hidden_states.2").as_deref(), Some("ln_final.hook_point"));
/// assert_eq!(map(&cfg, "backbone.layers.0.mixer.conv1d"), None);
/// # Ok::<(), auto_hook_models::Error>(())
/// ```
pub fn hook_for_mamba_key(cfg: &super::MambaConfig, key: &str) -> Option<String> {
    let n = cfg.n_layers;
    if let Some(i) = key.strip_prefix("hidden_states.") {
        // Unlike the transformers, Mamba's `hidden_states` has no embeddings entry: entry
        // i is the output of layer i, the last the output of `norm_f`.
        return match i.parse::<usize>().ok()? {
            i if i < n => Some(format!("blocks.{i}.hook_resid_post")),
            i if i == n => Some("ln_final.hook_point".into()),
            _ => None,
        };
    }
    match key {
        "logits" | "lm_head" => return Some("unembed.hook_point".into()),
        "backbone.embeddings" => return Some("embed.hook_point".into()),
        "backbone.norm_f" => return Some("ln_final.hook_point".into()),
        _ => {}
    }
    let rest = key.strip_prefix("backbone.layers.")?;
    let (layer, sub) = rest.split_once('.').unwrap_or((rest, ""));
    let layer: usize = layer.parse().ok().filter(|&l| l < n)?;
    let hook = LAYER_KEYS.iter().find(|(k, _)| *k == sub)?.1;
    Some(format!("blocks.{layer}.{hook}"))
}

impl ReferenceModel for HookedMamba {
    fn reference_hook(&self, key: &str) -> Option<String> {
        hook_for_mamba_key(self.config(), key)
    }
}
