//! The one error type of the crate.

use std::fmt;
use std::path::PathBuf;

/// Why a module could not be hooked. Each message names the crate, the file and, where
/// there is one, the line.
///
/// ```
/// let err = auto_hook_build::Error::FileNotFound {
///     crate_name: "candle-transformers".into(),
///     path: "models/qwen9.rs".into(),
///     looked_at: "/src/models/qwen9.rs".into(),
/// };
/// assert!(err.to_string().contains("models/qwen9.rs"));
/// ```
#[derive(Debug)]
pub enum Error {
    /// `cargo metadata` could not be run or read, or an environment variable is missing.
    Metadata(String),
    /// The calling package has no dependency of that name.
    CrateNotFound { crate_name: String, caller: String },
    /// The dependency has no such file.
    FileNotFound {
        crate_name: String,
        path: String,
        looked_at: PathBuf,
    },
    /// Reading or writing a file failed.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file does not parse as Rust.
    Parse {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// `#[auto_hook]` refused an item of the file (its compile error).
    Rewrite {
        file: PathBuf,
        line: usize,
        message: String,
    },
    /// The file names a crate that the dependency has but the calling package lacks.
    MissingDependency {
        file: PathBuf,
        name: String,
        package: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Metadata(msg) => write!(f, "auto_hook_build: {msg}"),
            Error::CrateNotFound { crate_name, caller } => write!(
                f,
                "auto_hook_build: crate `{crate_name}` is not a dependency of `{caller}`; \
                 add it to [dependencies] (or [dev-dependencies]) of `{caller}`"
            ),
            Error::FileNotFound {
                crate_name,
                path,
                looked_at,
            } => write!(
                f,
                "auto_hook_build: `{crate_name}` has no file `{path}` (looked at {})",
                looked_at.display()
            ),
            Error::Io { path, source } => {
                write!(f, "auto_hook_build: {}: {source}", path.display())
            }
            Error::Parse {
                file,
                line,
                column,
                message,
            } => write!(
                f,
                "auto_hook_build: {}:{line}:{column}: {message}",
                file.display()
            ),
            Error::Rewrite {
                file,
                line,
                message,
            } => write!(f, "auto_hook_build: {}:{line}: {message}", file.display()),
            Error::MissingDependency {
                file,
                name,
                package,
            } => write!(
                f,
                "auto_hook_build: {} uses `{name}::` (package `{package}`), which the calling \
                 package does not depend on; add `{package}` to its [dependencies]",
                file.display()
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
