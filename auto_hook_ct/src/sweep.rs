//! The sweep: every top-level candle-transformers model file, compiled outside its crate
//! three ways, each as its own tiny crate in one throw-away workspace:
//!
//! - `plain`: the file as a crate's `lib.rs` with only the path fixes of
//!   [`user_edits::fix_paths`](crate::user_edits::fix_paths()) (the denominator: a file that
//!   does not compile outside its crate cannot be hooked by copying it);
//! - `attribute`: the same, with `#[auto_hook]` on every struct and impl;
//! - `build`: `auto_hook_build`'s output for the file.
//!
//! One `cargo check --workspace --keep-going` checks them all; its JSON messages say which
//! crate built and the first error of each that did not. Run it with
//! `cargo test -p auto_hook_ct --test sweep -- --ignored --nocapture`.

use crate::user_edits;
use auto_hook_build::Dependency;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Files of `src/models/` that are shared helpers, not models.
pub const HELPERS: &[&str] = &[
    "mod.rs",
    "with_tracing.rs",
    "quantized_nn.rs",
    "llama2_c_weights.rs",
];

/// The three ways a file is compiled.
pub const VARIANTS: [&str; 3] = ["plain", "attribute", "build"];

/// The outcome for one model file: for each variant, `Ok` or the first error.
#[derive(Debug, Clone)]
pub struct Row {
    /// The file's stem (`qwen2`).
    pub model: String,
    /// `plain`, `attribute`, `build` in that order.
    pub results: [Result<(), String>; 3],
}

/// The top-level model files of candle-transformers, sorted, helpers left out.
///
/// ```no_run
/// let dep = auto_hook_build::Dependency::locate(env!("CARGO_MANIFEST_DIR"), "candle-transformers")?;
/// let files = auto_hook_ct::sweep::model_files(&dep)?;
/// assert!(files.iter().any(|f| f == "qwen2"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn model_files(dep: &Dependency) -> std::io::Result<Vec<String>> {
    let mut files: Vec<String> = std::fs::read_dir(dep.src_dir.join("models"))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|f| f.ends_with(".rs") && !HELPERS.contains(&f.as_str()))
        .map(|f| f.trim_end_matches(".rs").to_owned())
        .collect();
    files.sort();
    Ok(files)
}

/// Writes the workspace of tiny crates under `dir` (emptied first) for `models`, runs
/// `cargo check` on it with `target` as target dir, and returns one row per model.
/// `auto_hook` is the path of the auto_hook facade crate the hooked crates use.
pub fn run(
    dep: &Dependency,
    models: &[String],
    auto_hook: &Path,
    dir: &Path,
    target: &Path,
) -> Result<Vec<Row>, String> {
    let io = |e: std::io::Error| format!("{}: {e}", dir.display());
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io)?;
    }
    std::fs::create_dir_all(dir).map_err(io)?;
    // the tiny crates name candle-transformers' dependencies as it does
    let mut own_names = dep.clone();
    for (name, (ours, _)) in own_names.renames.iter_mut() {
        *ours = Some(name.clone());
    }
    let mut generated: BTreeMap<String, Result<(), String>> = BTreeMap::new();
    let mut members = Vec::new();
    for model in models {
        let file = format!("models/{model}.rs");
        let src = std::fs::read_to_string(dep.src_dir.join(&file)).map_err(io)?;
        let plain = user_edits::fix_paths(&src, &dep.lib_name, "models");
        let attribute = user_edits::annotate(&plain, "#[auto_hook::auto_hook]");
        let build = auto_hook_build::hook_module_as(&own_names, &file, &module_ident(model));
        let built = build.as_ref().map(|_| ()).map_err(|e| e.to_string());
        let sources = [Ok(plain), Ok(attribute), build.map_err(|e| e.to_string())];
        for (variant, source) in VARIANTS.iter().zip(sources) {
            let name = crate_name(variant, model);
            let Ok(source) = source else { continue };
            write_crate(&dir.join(&name), &name, &source, dep, auto_hook).map_err(io)?;
            members.push(name);
        }
        generated.insert(model.clone(), built);
    }
    write_workspace(dir, &members, auto_hook).map_err(io)?;
    let outcome = cargo_check(dir, target)?;
    Ok(models
        .iter()
        .map(|model| {
            let result = |variant: &str| match outcome.get(&crate_name(variant, model)) {
                Some(r) => r.clone(),
                None => Err("no build result".to_owned()),
            };
            let build = match &generated[model] {
                Ok(()) => result("build"),
                Err(e) => Err(format!("auto_hook_build: {e}")),
            };
            Row {
                model: model.clone(),
                results: [result("plain"), result("attribute"), build],
            }
        })
        .collect())
}

fn module_ident(model: &str) -> String {
    let ident = model.replace('-', "_");
    if ident.starts_with(|c: char| c.is_ascii_digit()) {
        format!("m_{ident}")
    } else {
        ident
    }
}

fn crate_name(variant: &str, model: &str) -> String {
    format!("{variant}_{}", model.replace('-', "_"))
}

fn write_crate(
    dir: &Path,
    name: &str,
    source: &str,
    dep: &Dependency,
    auto_hook: &Path,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir.join("src"))?;
    let mut manifest = format!(
        "[package]\nname = \"{name}\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n\
         [dependencies]\nauto_hook = {{ path = {:?} }}\n\
         {} = {{ package = \"{}\", version = \"={}\", default-features = false }}\n",
        auto_hook.display(),
        dep.lib_name,
        dep.package,
        dep.version
    );
    for (name, (_, package)) in &dep.renames {
        let _ = writeln!(
            manifest,
            "{name} = {{ package = \"{package}\", version = \"*\" }}"
        );
    }
    std::fs::write(dir.join("Cargo.toml"), manifest)?;
    std::fs::write(dir.join("src/lib.rs"), source)
}

fn write_workspace(dir: &Path, members: &[String], auto_hook: &Path) -> std::io::Result<()> {
    let list: Vec<String> = members.iter().map(|m| format!("{m:?}")).collect();
    let manifest = format!(
        "[workspace]\nmembers = [{}]\nresolver = \"2\"\n",
        list.join(", ")
    );
    std::fs::write(dir.join("Cargo.toml"), manifest)?;
    // the versions auto_hook itself is tested with, and no network
    let lock = auto_hook.join("Cargo.lock");
    if lock.exists() {
        std::fs::copy(lock, dir.join("Cargo.lock"))?;
    }
    Ok(())
}

/// `cargo check` of the whole workspace: per crate, `Ok` or its first error.
fn cargo_check(dir: &Path, target: &Path) -> Result<BTreeMap<String, Result<(), String>>, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target)
        .args(["check", "--workspace", "--keep-going", "--offline", "--lib"])
        .args(["--message-format", "json-diagnostic-short"])
        .output()
        .map_err(|e| format!("cannot run cargo check: {e}"))?;
    let mut outcome: BTreeMap<String, Result<(), String>> = BTreeMap::new();
    for line in output.stdout.split(|b| *b == b'\n') {
        let Ok(msg) = serde_json::from_slice::<serde_json::Value>(line) else {
            continue;
        };
        let crate_of = |m: &serde_json::Value| m["target"]["name"].as_str().map(str::to_owned);
        match msg["reason"].as_str() {
            Some("compiler-artifact") => {
                if let Some(name) = crate_of(&msg) {
                    outcome.insert(name, Ok(()));
                }
            }
            Some("compiler-message") if msg["message"]["level"] == "error" => {
                let Some(name) = crate_of(&msg) else { continue };
                let text = msg["message"]["rendered"].as_str().unwrap_or_default();
                let first = text.lines().next().unwrap_or_default().to_owned();
                outcome.entry(name).or_insert(Err(first));
            }
            _ => {}
        }
    }
    if outcome.is_empty() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!("cargo check built nothing: {}", stderr.trim()));
    }
    Ok(outcome)
}

/// The table of rows with the totals, in Markdown.
///
/// ```
/// use auto_hook_ct::sweep::{table, Row};
/// let rows = vec![Row { model: "qwen2".into(), results: [Ok(()), Ok(()), Err("e".into())] }];
/// assert!(table(&rows).contains("| qwen2 | yes | yes | no |"));
/// ```
pub fn table(rows: &[Row]) -> String {
    let mut out =
        String::from("| file | plain | attribute | build | first error |\n|---|---|---|---|---|\n");
    for row in rows {
        let cell = |r: &Result<(), String>| if r.is_ok() { "yes" } else { "no" };
        // the plain copy's error if it has one, else the first hooked variant's
        let error = match &row.results[0] {
            Err(e) => Some(e),
            Ok(()) => row.results[1..].iter().find_map(|r| r.as_ref().err()),
        };
        let error = error
            .map(|e| e.chars().take(110).collect::<String>().replace('|', "\\|"))
            .unwrap_or_default();
        let [p, a, b] = &row.results;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {error} |",
            row.model,
            cell(p),
            cell(a),
            cell(b)
        );
    }
    let count = |i: usize| rows.iter().filter(|r| r.results[i].is_ok()).count();
    let both = |i: usize| {
        rows.iter()
            .filter(|r| r.results[0].is_ok() && r.results[i].is_ok())
            .count()
    };
    let _ = write!(
        out,
        "\n{} files; {} compile outside their crate; of those, {} compile with #[auto_hook] \
         on every struct and impl and {} through auto_hook_build ({} and {} of all files)\n",
        rows.len(),
        count(0),
        both(1),
        both(2),
        count(1),
        count(2)
    );
    out
}

/// Where the sweep writes: `AUTO_HOOK_SWEEP_DIR`, else a folder in the temp dir.
///
/// ```
/// assert!(!auto_hook_ct::sweep::work_dir().as_os_str().is_empty());
/// ```
pub fn work_dir() -> PathBuf {
    std::env::var_os("AUTO_HOOK_SWEEP_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("auto_hook_sweep"))
}
