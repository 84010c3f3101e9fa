//! What every `fer` CLI test shares: running the binary and reading its output.

use std::process::{Command, Output};

/// Runs the `fer` binary with `args`, without the environment variables that change its input
/// or logging.
pub fn fer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fer"))
        .args(args)
        .env_remove("FER2013_CSV")
        .env_remove("RUST_LOG")
        .output()
        .expect("run fer")
}

/// Captured output as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
