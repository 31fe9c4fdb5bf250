//! Scenario tests of realistic stacks live in `tests/`; this crate has no library code.
