//! auto_hook's overhead benchmark (`benches/overhead.rs`, run with
//! `cargo bench -p auto_hook_dev --bench overhead`) and its compile-fail tests
//! (`tests/compile_fail.rs`). They live apart from the `auto_hook` package so that
//! building its examples compiles neither criterion nor trybuild. This library is empty.
