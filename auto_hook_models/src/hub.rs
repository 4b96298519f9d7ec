//! Hugging Face repo ids where a checkpoint path is expected.
//!
//! [`load`](crate::load), [`load_quantized`](crate::load_quantized) and
//! [`load_mamba`](crate::load_mamba) take, besides a local folder or GGUF file, a repo id
//! `owner/name` (a checkpoint folder: `config.json`, the safetensors, the tokenizer) or
//! `owner/name:FILE` (one file of the repo, such as a GGUF). The files are looked up in
//! the local Hugging Face cache first (`$HF_HOME/hub`, by default
//! `~/.cache/huggingface/hub`, the layout `huggingface_hub` and candle's examples share),
//! at the revision `refs/main` points to. With the `hub` feature, files missing from the
//! cache are downloaded into it through the `hf-hub` crate, as candle's examples do,
//! unless `HF_HUB_OFFLINE=1`; without it, a missing file is an [`Error::Hub`] that says
//! where it was looked for.

use crate::error::{Error, Result};
use hf_hub::{Cache, Repo};
use std::borrow::Cow;
use std::path::{Path, PathBuf};

/// The optional files of a checkpoint folder, fetched when the repo has them.
const OPTIONAL_FILES: [&str; 2] = ["tokenizer.json", "tokenizer_config.json"];

/// `path` when it exists on disk; otherwise, when it reads as a repo id, its local copy
/// (see the module docs); otherwise `path` unchanged, for the loader to report.
pub(crate) fn local(path: &Path) -> Result<Cow<'_, Path>> {
    if path.exists() {
        return Ok(Cow::Borrowed(path));
    }
    match path.to_str().and_then(RepoId::parse) {
        Some(repo) => fetch_repo(repo).map(Cow::Owned),
        None => Ok(Cow::Borrowed(path)),
    }
}

/// The local path of a Hugging Face checkpoint: `owner/name` gives the snapshot folder
/// holding `config.json`, the safetensors (single or sharded) and, when the repo has
/// them, `tokenizer.json` and `tokenizer_config.json`; `owner/name:FILE` gives that
/// file. See the module docs for where files are looked up.
///
/// ```no_run
/// let gguf = auto_hook_models::hub::resolve(
///     "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF:smollm2-135m-instruct-q8_0.gguf",
/// )?;
/// let model = auto_hook_models::load_quantized(&gguf, &candle_core::Device::Cpu)?;
/// # Ok::<(), auto_hook_models::Error>(())
/// ```
pub fn resolve(id: &str) -> Result<PathBuf> {
    let repo = RepoId::parse(id).ok_or_else(|| {
        Error::Hub(format!(
            "`{id}` is neither an existing path nor a repo id `owner/name` or `owner/name:FILE`"
        ))
    })?;
    fetch_repo(repo)
}

/// [`resolve`] for a parsed id.
fn fetch_repo(repo: RepoId) -> Result<PathBuf> {
    let fetch = Fetcher::new(repo.name);
    if let Some(file) = repo.file {
        return fetch.get(file);
    }
    let config = fetch.get("config.json")?;
    if fetch.get("model.safetensors").is_err() {
        let index = fetch.get("model.safetensors.index.json").map_err(|e| {
            Error::Hub(format!(
                "{e}; nor model.safetensors, which was looked for first"
            ))
        })?;
        for shard in shards(&index)? {
            fetch.get(&shard)?;
        }
    }
    for file in OPTIONAL_FILES {
        // Absent from the repo or the cache: the loader goes on without it.
        let _ = fetch.get(file);
    }
    let folder = config
        .parent()
        .ok_or_else(|| Error::Hub(format!("{} has no parent folder", config.display())))?;
    Ok(folder.to_path_buf())
}

/// A repo id, `owner/name`, with an optional file: `owner/name:FILE`.
struct RepoId<'a> {
    name: &'a str,
    file: Option<&'a str>,
}

impl<'a> RepoId<'a> {
    fn parse(id: &'a str) -> Option<Self> {
        let (name, file) = match id.split_once(':') {
            Some((name, file)) if !file.is_empty() => (name, Some(file)),
            Some(_) => return None,
            None => (id, None),
        };
        let (owner, repo) = name.split_once('/')?;
        let part = |s: &str| {
            !s.is_empty()
                && !s.starts_with('.')
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        (part(owner) && part(repo)).then_some(Self { name, file })
    }
}

/// The shard files a `model.safetensors.index.json` names.
fn shards(index: &Path) -> Result<Vec<String>> {
    let folder = index.parent().unwrap_or(Path::new("."));
    let files = crate::load::weight_files(folder)?;
    Ok(files
        .iter()
        .filter_map(|f| f.file_name()?.to_str().map(str::to_owned))
        .collect())
}

/// Gets a repo's files: from the local cache, else (feature `hub`) by download.
struct Fetcher {
    name: String,
    cache: Cache,
}

impl Fetcher {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            cache: Cache::from_env(),
        }
    }

    fn get(&self, file: &str) -> Result<PathBuf> {
        let repo = Repo::model(self.name.clone());
        if let Some(path) = self.cache.repo(repo.clone()).get(file) {
            return Ok(path);
        }
        let folder = self.cache.path().join(repo.folder_name());
        let missing = format!(
            "{file} of {} is not in the local Hugging Face cache ({})",
            self.name,
            folder.display()
        );
        self.download(file, missing)
    }

    #[cfg(feature = "hub")]
    fn download(&self, file: &str, missing: String) -> Result<PathBuf> {
        let offline = std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| v == "1" || v == "true");
        if offline {
            return Err(Error::Hub(format!("{missing}, and HF_HUB_OFFLINE is set")));
        }
        let api = hf_hub::api::sync::ApiBuilder::from_cache(self.cache.clone())
            .build()
            .map_err(|e| Error::Hub(format!("{missing}, and the hub client failed: {e}")))?;
        api.model(self.name.clone())
            .get(file)
            .map_err(|e| Error::Hub(format!("{missing}, and the download failed: {e}")))
    }

    #[cfg(not(feature = "hub"))]
    fn download(&self, _file: &str, missing: String) -> Result<PathBuf> {
        Err(Error::Hub(format!(
            "{missing} (build with the `hub` feature to download it)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::RepoId;

    #[test]
    fn repo_ids_parse_with_and_without_a_file() {
        let id = RepoId::parse("HuggingFaceTB/SmolLM2-135M:model.Q4_1.gguf").unwrap();
        assert_eq!(
            (id.name, id.file),
            ("HuggingFaceTB/SmolLM2-135M", Some("model.Q4_1.gguf"))
        );
        let id = RepoId::parse("openai-community/gpt2").unwrap();
        assert_eq!((id.name, id.file), ("openai-community/gpt2", None));
        for bad in ["gpt2", "a/b/c", "a/b:", "/b", "a/", "../b", "a b/c"] {
            assert!(RepoId::parse(bad).is_none(), "{bad}");
        }
    }
}
