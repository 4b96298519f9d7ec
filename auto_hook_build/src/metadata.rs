//! Finding a dependency's source through `cargo metadata`.

use crate::Error;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A dependency of the calling package, as `cargo metadata` resolved it.
///
/// ```no_run
/// let dep = auto_hook_build::Dependency::locate(env!("CARGO_MANIFEST_DIR"), "candle-transformers")?;
/// assert_eq!(dep.lib_name, "candle_transformers");
/// # Ok::<(), auto_hook_build::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Dependency {
    /// Package name (`candle-transformers`).
    pub package: String,
    /// Resolved version (`0.11.1`).
    pub version: String,
    /// The name the calling package uses for it in code (`candle_transformers`, or its rename).
    pub lib_name: String,
    /// The folder of the library's root file (`.../candle-transformers-0.11.1/src`).
    pub src_dir: PathBuf,
    /// Features enabled on the dependency: `#[cfg(feature = ..)]` in its code means these.
    pub features: Vec<String>,
    /// The dependency's own names for its dependencies (`candle`), mapped to the calling
    /// package's name for the same package (`candle_core`), or `None` where the calling
    /// package does not depend on it; the value's second part is the package name.
    pub renames: BTreeMap<String, (Option<String>, String)>,
    /// Files whose change should rerun the build script (`Cargo.lock`, the manifest).
    pub watch: Vec<PathBuf>,
}

impl Dependency {
    /// Runs `cargo metadata` for the package at `manifest_dir` and finds `crate_name`
    /// (`candle-transformers` or `candle_transformers`) among its direct dependencies.
    /// Uses the `CARGO` environment variable (set for build scripts), else `cargo`.
    pub fn locate(manifest_dir: impl AsRef<Path>, crate_name: &str) -> Result<Self, Error> {
        let manifest = manifest_dir.as_ref().join("Cargo.toml");
        let meta = run_cargo_metadata(&manifest)?;
        from_metadata(&meta, &manifest, crate_name)
    }
}

fn run_cargo_metadata(manifest: &Path) -> Result<Value, Error> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(&cargo)
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(manifest)
        .output()
        .map_err(|e| Error::Metadata(format!("cannot run {cargo:?} metadata: {e}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(Error::Metadata(format!(
            "`cargo metadata --manifest-path {}` failed: {}",
            manifest.display(),
            stderr.trim()
        )));
    }
    serde_json::from_slice(&output.stdout)
        .map_err(|e| Error::Metadata(format!("cannot parse cargo metadata output: {e}")))
}

fn str_of<'v>(v: &'v Value, key: &str) -> &'v str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn array_of<'v>(v: &'v Value, key: &str) -> &'v [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Reads a `cargo metadata` JSON document: the caller is the package whose manifest is
/// `manifest`, the dependency one of its resolved direct dependencies named `crate_name`.
pub(crate) fn from_metadata(
    meta: &Value,
    manifest: &Path,
    crate_name: &str,
) -> Result<Dependency, Error> {
    let packages = array_of(meta, "packages");
    let caller = packages
        .iter()
        .find(|p| same_file(Path::new(str_of(p, "manifest_path")), manifest))
        .ok_or_else(|| {
            Error::Metadata(format!("no package with manifest {}", manifest.display()))
        })?;
    let nodes = meta
        .get("resolve")
        .map(|r| array_of(r, "nodes"))
        .unwrap_or_default();
    let node_of = |id: &str| nodes.iter().find(|n| str_of(n, "id") == id);
    let caller_node = node_of(str_of(caller, "id"))
        .ok_or_else(|| Error::Metadata("cargo metadata has no resolve graph".into()))?;
    let wanted = crate_name.replace('-', "_");
    let package_by_id = |id: &str| packages.iter().find(|p| str_of(p, "id") == id);
    let (lib_name, dep) = array_of(caller_node, "deps")
        .iter()
        .filter_map(|d| Some((str_of(d, "name"), package_by_id(str_of(d, "pkg"))?)))
        .find(|(_, p)| str_of(p, "name").replace('-', "_") == wanted)
        .ok_or_else(|| Error::CrateNotFound {
            crate_name: crate_name.to_owned(),
            caller: str_of(caller, "name").to_owned(),
        })?;
    let dep_node = node_of(str_of(dep, "id"))
        .ok_or_else(|| Error::Metadata(format!("{crate_name} is not in the resolve graph")))?;
    let renames = renames(caller_node, dep_node, packages);
    let lib = array_of(dep, "targets")
        .iter()
        .find(|t| {
            array_of(t, "kind")
                .iter()
                .any(|k| k == "lib" || k == "rlib")
        })
        .ok_or_else(|| Error::Metadata(format!("{crate_name} has no library target")))?;
    let src_dir = Path::new(str_of(lib, "src_path"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let features = array_of(dep_node, "features")
        .iter()
        .filter_map(|f| f.as_str().map(str::to_owned))
        .collect();
    let root = Path::new(str_of(meta, "workspace_root"));
    Ok(Dependency {
        package: str_of(dep, "name").to_owned(),
        version: str_of(dep, "version").to_owned(),
        lib_name: lib_name.to_owned(),
        src_dir,
        features,
        renames,
        watch: vec![root.join("Cargo.lock"), manifest.to_path_buf()],
    })
}

/// The dependency's names for its own dependencies → the caller's name for the same
/// package (if it has one) and the package name.
fn renames(
    caller_node: &Value,
    dep_node: &Value,
    packages: &[Value],
) -> BTreeMap<String, (Option<String>, String)> {
    let caller_names: BTreeMap<&str, &str> = array_of(caller_node, "deps")
        .iter()
        .map(|d| (str_of(d, "pkg"), str_of(d, "name")))
        .collect();
    array_of(dep_node, "deps")
        .iter()
        .map(|d| {
            let pkg = str_of(d, "pkg");
            let package = packages
                .iter()
                .find(|p| str_of(p, "id") == pkg)
                .map_or(pkg, |p| str_of(p, "name"));
            let ours = caller_names.get(pkg).map(|s| s.to_string());
            (str_of(d, "name").to_owned(), (ours, package.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        serde_json::json!({
            "workspace_root": "/ws",
            "packages": [
                {"name": "user", "version": "0.1.0", "id": "user-id", "manifest_path": "/ws/user/Cargo.toml", "targets": []},
                {"name": "candle-transformers", "version": "0.11.1", "id": "ct-id",
                 "manifest_path": "/reg/ct/Cargo.toml",
                 "targets": [{"kind": ["lib"], "name": "candle_transformers", "src_path": "/reg/ct/src/lib.rs"}]},
                {"name": "candle-core", "version": "0.11.1", "id": "core-id", "manifest_path": "/reg/core/Cargo.toml", "targets": []},
                {"name": "serde", "version": "1.0.0", "id": "serde-id", "manifest_path": "/reg/serde/Cargo.toml", "targets": []}
            ],
            "resolve": {"nodes": [
                {"id": "user-id", "features": [], "deps": [
                    {"name": "ct", "pkg": "ct-id"}, {"name": "candle_core", "pkg": "core-id"}]},
                {"id": "ct-id", "features": ["default"], "deps": [
                    {"name": "candle", "pkg": "core-id"}, {"name": "serde", "pkg": "serde-id"}]}
            ]}
        })
    }

    #[test]
    fn finds_renamed_dependency_and_maps_its_names_to_ours() {
        let dep = from_metadata(
            &sample(),
            Path::new("/ws/user/Cargo.toml"),
            "candle-transformers",
        )
        .unwrap();
        assert_eq!(dep.lib_name, "ct");
        assert_eq!(dep.version, "0.11.1");
        assert_eq!(dep.src_dir, Path::new("/reg/ct/src"));
        assert_eq!(dep.renames["candle"].0.as_deref(), Some("candle_core"));
        assert_eq!(dep.renames["serde"], (None, "serde".to_owned()));
        assert_eq!(dep.features, ["default"]);
    }

    #[test]
    fn a_crate_that_is_not_a_dependency_is_a_clear_error() {
        let err =
            from_metadata(&sample(), Path::new("/ws/user/Cargo.toml"), "candle-nn").unwrap_err();
        assert!(matches!(err, Error::CrateNotFound { .. }), "{err}");
        assert!(err.to_string().contains("candle-nn"), "{err}");
        assert!(err.to_string().contains("`user`"), "{err}");
    }
}
