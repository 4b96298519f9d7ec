pub use auto_hook_runtime::*;
