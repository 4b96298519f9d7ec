//! The helper on a real dependency: candle-transformers 0.11 (a dev-dependency here).

use auto_hook_build::{fixed_module_as, hook_module_as, Dependency, Error};

fn dependency() -> Dependency {
    Dependency::locate(env!("CARGO_MANIFEST_DIR"), "candle-transformers").unwrap()
}

/// This crate does not depend on candle-core, serde, ...: pretend it does under
/// candle-transformers' own names, as a crate that uses the output would.
fn with_all_names(mut dep: Dependency) -> Dependency {
    for (name, (ours, _)) in dep.renames.iter_mut() {
        *ours = Some(name.clone());
    }
    dep
}

#[test]
fn finds_candle_transformers_through_cargo_metadata() {
    let dep = dependency();
    assert_eq!(dep.package, "candle-transformers");
    assert!(dep.version.starts_with("0.11"), "{}", dep.version);
    assert_eq!(dep.lib_name, "candle_transformers");
    assert!(dep.src_dir.join("models/qwen2.rs").is_file());
    assert_eq!(dep.renames["candle"].1, "candle-core");
}

#[test]
fn hooked_qwen2_is_a_module_with_absolute_paths_and_hooked_structs() {
    let source = hook_module_as(&with_all_names(dependency()), "models/qwen2.rs", "qwen2").unwrap();
    let file = syn::parse_file(&source).expect("the output parses");
    assert_eq!(file.items.len(), 1, "one `pub mod qwen2`");
    assert!(source.contains("pub mod qwen2"));
    assert!(source.contains("::candle_transformers::models::with_tracing"));
    assert!(source.contains("::candle_transformers::utils::repeat_kv"));
    assert!(!source.contains("crate::"), "no crate:: path left");
    assert!(
        source.contains("::auto_hook::"),
        "the structs are rewritten"
    );
    let fixed = fixed_module_as(&with_all_names(dependency()), "models/qwen2.rs", "qwen2").unwrap();
    assert!(!fixed.contains("::auto_hook::"));
    assert!(fixed.contains("::candle_transformers::models::with_tracing"));
}

#[test]
fn every_crate_the_caller_lacks_is_named_in_one_error() {
    let err = hook_module_as(&dependency(), "models/qwen2.rs", "qwen2").unwrap_err();
    let Error::MissingDependency { missing, .. } = &err else {
        panic!("expected missing dependencies, got {err}");
    };
    let packages: Vec<&str> = missing.iter().map(|(_, p)| p.as_str()).collect();
    assert!(
        packages.contains(&"candle-core") && packages.contains(&"serde"),
        "{err}"
    );
    let msg = err.to_string();
    assert!(msg.contains("qwen2.rs"), "{msg}");
    assert!(
        msg.contains("candle-core = ") && msg.contains("serde = "),
        "{msg}"
    );
    // a build script's `fn main() -> Result<(), Error>` prints Debug: the same text
    assert_eq!(format!("{err:?}"), msg);
}

#[test]
fn the_struct_report_says_what_is_data_and_why() {
    let report =
        auto_hook_build::struct_report(&with_all_names(dependency()), "models/bert.rs").unwrap();
    let find = |name: &str| report.iter().find(|s| s.name == name).unwrap();
    let out = find("BertSelfOutput");
    assert!(out.module, "{out:?}");
    assert!(out.reason.contains("`dense`"), "{out:?}");
    let dropout = find("Dropout");
    assert!(
        !dropout.module,
        "bert's own Dropout holds plain values: {dropout:?}"
    );
    let config = find("Config");
    assert!(
        !config.module && config.reason.contains("derives"),
        "{config:?}"
    );
}

#[test]
fn a_missing_file_and_a_missing_crate_are_clear_errors() {
    let err = hook_module_as(&dependency(), "models/qwen9.rs", "qwen9").unwrap_err();
    assert!(matches!(err, Error::FileNotFound { .. }), "{err}");
    assert!(err.to_string().contains("models/qwen9.rs"), "{err}");
    let err = Dependency::locate(env!("CARGO_MANIFEST_DIR"), "not-a-dependency").unwrap_err();
    assert!(err.to_string().contains("not-a-dependency"), "{err}");
}

#[test]
fn a_parse_error_names_the_file_and_line() {
    let dir = std::env::temp_dir().join(format!("auto_hook_build_parse_{}", std::process::id()));
    std::fs::create_dir_all(dir.join("models")).unwrap();
    std::fs::write(dir.join("models/bad.rs"), "pub struct A {}\n\nfn f( {\n").unwrap();
    let mut dep = dependency();
    dep.src_dir = dir.clone();
    let err = hook_module_as(&dep, "models/bad.rs", "bad").unwrap_err();
    std::fs::remove_dir_all(&dir).unwrap();
    match &err {
        Error::Parse { line, .. } => assert_eq!(*line, 3, "{err}"),
        other => panic!("expected a parse error, got {other}"),
    }
    assert!(err.to_string().contains("bad.rs:3:"), "{err}");
}

#[test]
fn builder_names_every_missing_dependency_of_every_crate_and_writes_nothing() {
    let out = std::env::temp_dir().join(format!("auto_hook_build_out_{}", std::process::id()));
    let result = auto_hook_build::Builder::new("candle-transformers")
        .manifest_dir(env!("CARGO_MANIFEST_DIR"))
        .out_dir(&out)
        .module("models/qwen2.rs")
        .module("models/bert.rs")
        .dependency("candle-nn")
        .module("linear.rs")
        .generate();
    let written = out.join("candle-transformers/models/qwen2.rs").exists();
    let _ = std::fs::remove_dir_all(&out);
    // this crate lacks candle-core, serde, ..., which the generated modules would need
    let err = result.unwrap_err();
    let Error::MissingDependency { files, missing } = &err else {
        panic!("expected missing dependencies, got {err}");
    };
    assert_eq!(files.len(), 3, "one error for the three files: {err}");
    assert!(files.iter().any(|f| f.ends_with("linear.rs")), "{err}");
    assert!(missing.iter().any(|(_, p)| p == "serde"), "{err}");
    assert!(!written);
}

#[test]
fn a_refused_item_is_an_error_with_its_line_and_the_attribute_message() {
    let dir = std::env::temp_dir().join(format!("auto_hook_build_refused_{}", std::process::id()));
    std::fs::create_dir_all(dir.join("models")).unwrap();
    let src =
        "use candle_nn::Linear;\n\npub struct A {\n    #[auto_hook(bogus)]\n    l: Linear,\n}\n";
    std::fs::write(dir.join("models/refused.rs"), src).unwrap();
    let mut dep = with_all_names(dependency());
    dep.src_dir = dir.clone();
    let err = hook_module_as(&dep, "models/refused.rs", "refused").unwrap_err();
    std::fs::remove_dir_all(&dir).unwrap();
    match &err {
        Error::Rewrite { line, message, .. } => {
            assert_eq!(*line, 3, "{err}");
            assert!(message.contains("bogus"), "{err}");
        }
        other => panic!("expected a rewrite error, got {other}"),
    }
}
