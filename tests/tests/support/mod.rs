//! Helpers the integration tests in this folder share (cargo does not build
//! files in subfolders of `tests/` as tests of their own).

pub mod bridge;
#[path = "../../../bridge/tests/support/postgres.rs"]
pub mod postgres;
