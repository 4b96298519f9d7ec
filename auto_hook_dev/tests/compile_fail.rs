//! Every compile error the macros can raise, with its message and span.

#[test]
fn misuse_is_a_compile_error_with_a_clear_message() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}

#[test]
fn unhookable_instances_are_compile_errors_with_a_message() {
    trybuild::TestCases::new().compile_fail("tests/instance_ui/*.rs");
}
