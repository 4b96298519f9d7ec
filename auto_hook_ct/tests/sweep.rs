//! The sweep over every top-level candle-transformers model file (see `auto_hook_ct::sweep`).
//! Slow (one `cargo check` of about 360 tiny crates): ignored by default; run it with
//! `cargo test -p auto_hook_ct --test sweep -- --ignored --nocapture`.

use auto_hook_ct::sweep;
use std::path::Path;

/// The models `tests/<model>.rs` check in depth must compile hooked both ways.
const CHECKED: &[&str] = &[
    "qwen2", "llama", "phi3", "gemma2", "mistral", "mixtral", "mamba",
];

#[test]
#[ignore = "slow: cargo check of every candle-transformers model file three ways"]
fn every_model_file_compiled_plain_with_the_attribute_and_through_the_build_helper() {
    let manifest = env!("CARGO_MANIFEST_DIR");
    let dep = auto_hook_build::Dependency::locate(manifest, "candle-transformers").unwrap();
    let models = match std::env::var("AUTO_HOOK_SWEEP_MODELS") {
        Ok(list) => list.split(',').map(str::to_owned).collect(),
        Err(_) => sweep::model_files(&dep).unwrap(),
    };
    let root = Path::new(manifest)
        .parent()
        .unwrap()
        .canonicalize()
        .unwrap();
    let dir = sweep::work_dir();
    let target = std::env::var_os("AUTO_HOOK_SWEEP_TARGET")
        .map(Into::into)
        .unwrap_or_else(|| dir.with_extension("target"));
    let rows = sweep::run(&dep, &models, &root, &dir, &target).unwrap();
    let table = sweep::table(&rows);
    println!("{table}");
    std::fs::write(dir.join("sweep.md"), &table).unwrap();
    assert!(
        rows.iter().any(|r| r.results[0].is_ok()),
        "nothing compiles even plain:\n{table}"
    );
    for row in rows.iter().filter(|r| CHECKED.contains(&r.model.as_str())) {
        assert!(
            row.results.iter().all(Result::is_ok),
            "{} does not compile hooked:\n{table}",
            row.model
        );
    }
}
