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
    /// The files name crates that the dependency has but the calling package lacks: every
    /// one of them, as `(the file's name for it, package)`, sorted.
    MissingDependency {
        files: Vec<PathBuf>,
        missing: Vec<(String, String)>,
    },
}

impl Error {
    /// Merges the missing dependencies of several files into one error; any other
    /// error is kept as it is (the first one wins).
    pub(crate) fn merge(errors: Vec<Error>) -> Option<Error> {
        let mut files = Vec::new();
        let mut missing: Vec<(String, String)> = Vec::new();
        for err in errors {
            match err {
                Error::MissingDependency {
                    files: f,
                    missing: m,
                } => {
                    files.extend(f);
                    missing.extend(m);
                }
                other => return Some(other),
            }
        }
        if missing.is_empty() {
            return None;
        }
        missing.sort();
        missing.dedup();
        Some(Error::MissingDependency { files, missing })
    }
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
            Error::MissingDependency { files, missing } => {
                let files: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
                let uses: Vec<String> = missing
                    .iter()
                    .map(|(name, package)| format!("`{name}::` (package `{package}`)"))
                    .collect();
                let mut packages: Vec<&str> = missing.iter().map(|(_, p)| p.as_str()).collect();
                packages.sort_unstable();
                packages.dedup();
                write!(
                    f,
                    "auto_hook_build: {} use{} {}, which the calling package does not depend on; \
                     add to its [dependencies]:",
                    files.join(", "),
                    if files.len() == 1 { "s" } else { "" },
                    uses.join(", ")
                )?;
                for package in packages {
                    write!(f, "\n    {package} = \"*\"")?;
                }
                Ok(())
            }
        }
    }
}

/// The same friendly text as `Display`, so `fn main() -> Result<(), auto_hook_build::Error>`
/// in a build script prints it.
///
/// ```
/// let err = auto_hook_build::Error::Metadata("OUT_DIR is not set".into());
/// assert_eq!(format!("{err:?}"), err.to_string());
/// ```
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
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
