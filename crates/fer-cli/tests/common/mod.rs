//! What every `fer` CLI test shares: running the binary and reading its output.

use std::path::Path;
use std::process::{Command, Output};

/// Runs the `fer` binary with `args`, without the environment variables that change its input
/// or logging.
pub fn fer(args: &[&str]) -> Output {
    fer_in(Path::new("."), args)
}

/// [`fer`] run from the folder `dir` (for relative paths that name files of the workspace).
pub fn fer_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fer"))
        .args(args)
        .current_dir(dir)
        .env_remove("FER2013_CSV")
        .env_remove("RUST_LOG")
        .output()
        .expect("run fer")
}

/// Captured output as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts that `fer` succeeded (exit status 0), showing its stderr when it did not.
#[allow(dead_code)] // each test binary compiles this module and uses a part of it
pub fn assert_ok(out: &Output) {
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

/// Asserts that `fer` exited with `code` (1: a failure, 2: bad usage) and that its stderr
/// says `message`.
#[allow(dead_code)]
pub fn assert_fails(out: &Output, code: i32, message: &str) {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    assert!(
        stderr.contains(message),
        "expected {message:?} on stderr:\n{stderr}"
    );
}

/// Runs `fer` with `args` and asserts that it succeeded.
#[allow(dead_code)]
pub fn fer_ok(args: &[&str]) -> Output {
    let out = fer(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        text(&out.stderr)
    );
    out
}

/// Runs `fer` with `args` and asserts that it exited with `code`, saying `message`.
#[allow(dead_code)]
pub fn fer_fails(args: &[&str], code: i32, message: &str) {
    let out = fer(args);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
    assert!(stderr.contains(message), "{args:?}: {stderr}");
}
