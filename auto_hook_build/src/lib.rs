//! Hooks a dependency's model file without copying it, from `build.rs` (the way
//! `prost-build` or `bindgen` generate code).
//!
//! Given a crate and a module file of it (`candle-transformers`, `models/qwen2.rs`),
//! [`Builder`] finds the source through `cargo metadata`, applies to every struct and
//! impl the same rewrite as `#[auto_hook]` (the shared `auto_hook_internals`), fixes the
//! paths that no longer resolve outside that crate (`crate::`, `super::`, the crate's own
//! names for its dependencies, its `feature` cfgs) and writes `pub mod qwen2 { .. }`
//! into `OUT_DIR` for the crate to `include!`.
//!
//! `build.rs` (with `auto_hook_build` in `[build-dependencies]`, and `auto_hook`,
//! `candle-transformers`, `candle-core`, `candle-nn` in `[dependencies]`):
//!
//! ```no_run
//! fn main() -> Result<(), auto_hook_build::Error> {
//!     auto_hook_build::Builder::new("candle-transformers")
//!         .module("models/qwen2.rs")
//!         .generate()?;
//!     Ok(())
//! }
//! ```
//!
//! and in the crate, a module `qwen2` whose types are hooked models with the same
//! constructors and forwards as candle-transformers' own:
//!
//! ```text
//! include!(concat!(env!("OUT_DIR"), "/candle-transformers/models/qwen2.rs"));
//!
//! use auto_hook::prelude::*;
//! let mut model = qwen2::ModelForCausalLM::new(&cfg, vb)?;
//! let (logits, cache) = model.run_with_cache_mut(CacheOptions::all(), |m| m.forward(&ids, 0))?;
//! cache.get("base_model.layers.0.self_attn.q_proj.hook_point")?;
//! ```
//!
//! Hook names follow the field names, as `#[auto_hook]` on a copy of the file would give.
//! Out-of-line submodules (`mod sub;`) of the file are re-exported from the dependency
//! unhooked; doc-comment code fences become `text` so the dependency's examples do not
//! run as the caller's doctests; the module allows the dependency's lints.

mod cfg;
mod error;
mod fix;
mod generate;
mod metadata;

pub use error::Error;
pub use metadata::Dependency;

use std::path::{Path, PathBuf};

/// Hooks module files of dependencies into `OUT_DIR`. See the crate docs.
///
/// ```no_run
/// let files = auto_hook_build::Builder::new("candle-transformers")
///     .module("models/qwen2.rs")
///     .module_as("models/phi3.rs", "phi3_hooked")
///     .dependency("candle-nn") // the following modules come from candle-nn
///     .module("linear.rs")
///     .generate()?;
/// assert_eq!(files.len(), 3);
/// # Ok::<(), auto_hook_build::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    crate_name: String,
    /// `(crate, file, module name)`.
    modules: Vec<(String, String, Option<String>)>,
    out_dir: Option<PathBuf>,
    manifest_dir: Option<PathBuf>,
}

impl Builder {
    /// A builder whose modules come from the dependency `crate_name` (`candle-transformers`).
    pub fn new(crate_name: &str) -> Self {
        Builder {
            crate_name: crate_name.to_owned(),
            modules: Vec::new(),
            out_dir: None,
            manifest_dir: None,
        }
    }

    /// The modules added after this call come from the dependency `crate_name`: one build
    /// script hooks files of several crates.
    pub fn dependency(mut self, crate_name: &str) -> Self {
        self.crate_name = crate_name.to_owned();
        self
    }

    /// Hooks `file` (relative to the dependency's `src/`), as a module named after it.
    pub fn module(mut self, file: &str) -> Self {
        self.modules
            .push((self.crate_name.clone(), file.to_owned(), None));
        self
    }

    /// Hooks `file` as a module called `name`.
    pub fn module_as(mut self, file: &str, name: &str) -> Self {
        self.modules.push((
            self.crate_name.clone(),
            file.to_owned(),
            Some(name.to_owned()),
        ));
        self
    }

    /// Where to write (default: `OUT_DIR`).
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out_dir = Some(dir.into());
        self
    }

    /// The package whose dependency is hooked (default: `CARGO_MANIFEST_DIR`).
    pub fn manifest_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.manifest_dir = Some(dir.into());
        self
    }

    /// Writes `<out_dir>/<package>/<file>` for each module, prints the
    /// `cargo:rerun-if-changed` lines, and returns the written paths. Nothing is written
    /// unless every module hooks: the dependencies the calling package lacks are named
    /// all at once, for every module.
    pub fn generate(self) -> Result<Vec<PathBuf>, Error> {
        let manifest_dir = dir_or_env(self.manifest_dir, "CARGO_MANIFEST_DIR")?;
        let out_dir = dir_or_env(self.out_dir, "OUT_DIR")?;
        let mut deps: Vec<Dependency> = Vec::new();
        let mut sources = Vec::new();
        let mut errors = Vec::new();
        for (crate_name, file, name) in &self.modules {
            let wanted = crate_name.replace('-', "_");
            let dep = match deps
                .iter()
                .position(|d| d.package.replace('-', "_") == wanted)
            {
                Some(i) => &deps[i],
                None => {
                    let dep = Dependency::locate(&manifest_dir, crate_name)?;
                    for path in &dep.watch {
                        println!("cargo:rerun-if-changed={}", path.display());
                    }
                    deps.push(dep);
                    &deps[deps.len() - 1]
                }
            };
            let name = name.clone().unwrap_or_else(|| module_name(dep, file));
            println!(
                "cargo:rerun-if-changed={}",
                dep.src_dir.join(file).display()
            );
            match hook_module_as(dep, file, &name) {
                Ok(source) => sources.push((out_dir.join(&dep.package).join(file), source)),
                Err(e) => errors.push(e),
            }
        }
        if let Some(err) = Error::merge(errors) {
            return Err(err);
        }
        let mut written = Vec::new();
        for (target, source) in sources {
            write(&target, &source)?;
            written.push(target);
        }
        Ok(written)
    }
}

fn dir_or_env(dir: Option<PathBuf>, var: &str) -> Result<PathBuf, Error> {
    match dir {
        Some(dir) => Ok(dir),
        None => std::env::var_os(var).map(PathBuf::from).ok_or_else(|| {
            Error::Metadata(format!(
                "{var} is not set: call Builder::generate from a build script, or set it"
            ))
        }),
    }
}

fn write(target: &Path, source: &str) -> Result<(), Error> {
    let io = |source| Error::Io {
        path: target.to_path_buf(),
        source,
    };
    if std::fs::read_to_string(target).is_ok_and(|old| old == source) {
        return Ok(()); // unchanged: keep the file's time so the crate is not rebuilt
    }
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    std::fs::write(target, source).map_err(io)
}

/// The default module name of `file`: its last module segment (`models/qwen2.rs` →
/// `qwen2`), or the crate's name for its root file.
///
/// ```
/// let dep = auto_hook_build::Dependency {
///     package: "candle-transformers".into(), version: "0.11.1".into(),
///     lib_name: "candle_transformers".into(), src_dir: "/src".into(),
///     features: vec![], renames: Default::default(), watch: vec![],
/// };
/// assert_eq!(auto_hook_build::module_name(&dep, "models/whisper/mod.rs"), "whisper");
/// ```
pub fn module_name(dep: &Dependency, file: &str) -> String {
    generate::module_path(file)
        .pop()
        .unwrap_or_else(|| dep.lib_name.clone())
        .replace('-', "_")
}

/// The hooked source of `file` of `dep`: `pub mod <name> { .. }`, ready to `include!`.
/// [`Builder::generate`] writes this; call it directly to generate elsewhere.
///
/// ```no_run
/// let dep = auto_hook_build::Dependency::locate(env!("CARGO_MANIFEST_DIR"), "candle-transformers")?;
/// let source = auto_hook_build::hook_module_as(&dep, "models/qwen2.rs", "qwen2")?;
/// assert!(source.contains("pub mod qwen2"));
/// # Ok::<(), auto_hook_build::Error>(())
/// ```
pub fn hook_module_as(dep: &Dependency, file: &str, name: &str) -> Result<String, Error> {
    generate::hook_file(dep, file, name)
}

/// The unhooked source of `file` of `dep` with only the path and feature fixes, as
/// `pub mod <name> { .. }`: the baseline "the file compiles outside its crate".
///
/// ```no_run
/// let dep = auto_hook_build::Dependency::locate(env!("CARGO_MANIFEST_DIR"), "candle-transformers")?;
/// let source = auto_hook_build::fixed_module_as(&dep, "models/qwen2.rs", "qwen2")?;
/// assert!(!source.contains("auto_hook"));
/// # Ok::<(), auto_hook_build::Error>(())
/// ```
pub fn fixed_module_as(dep: &Dependency, file: &str, name: &str) -> Result<String, Error> {
    generate::fixed_file(dep, file, name)
}

/// What the rewrite makes of one struct of a file: a module (hooked) or data (left as it
/// is), and why. See [`struct_report`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StructDecision {
    /// The struct's name.
    pub name: String,
    /// Hooked (`true`) or left as data.
    pub module: bool,
    /// The reason, in words (`field `dense` is a module`).
    pub reason: String,
}

/// Every struct of `file` of `dep`, in source order, with the module-or-data decision
/// the rewrite takes and its reason: the report of what was left as data and why.
///
/// ```no_run
/// let dep = auto_hook_build::Dependency::locate(env!("CARGO_MANIFEST_DIR"), "candle-transformers")?;
/// for s in auto_hook_build::struct_report(&dep, "models/bert.rs")? {
///     if !s.module {
///         println!("{} left as data: {}", s.name, s.reason);
///     }
/// }
/// # Ok::<(), auto_hook_build::Error>(())
/// ```
pub fn struct_report(dep: &Dependency, file: &str) -> Result<Vec<StructDecision>, Error> {
    generate::struct_report(dep, file)
}
