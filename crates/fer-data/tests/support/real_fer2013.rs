//! Where the real FER2013 file is, for the tests that check against it, and whether they run:
//! one helper for every crate's real-data tests (fer-detect includes this file by path).
//!
//! The file is `$FER2013_CSV`, else `../shared/data/fer2013.csv.gz` beside the workspace. A
//! test without it is skipped, saying so on stderr (past the test harness's capture), when
//! `FER_SKIP_REAL_DATA=1` or when the file is missing; but where `CI` is set and
//! `FER_SKIP_REAL_DATA` is not `1`, a missing file fails the test, so CI never passes without
//! having run it.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What a real-data test does, given its environment and whether the file is there.
#[derive(Debug, PartialEq, Eq)]
pub enum RealData {
    /// Run on this file.
    Run(PathBuf),
    /// Skip, for this reason.
    Skip(String),
    /// Fail, with this message.
    Fail(String),
}

/// The decision for the file at `path` (present or not): pure, so that it can be tested.
/// `skip` and `ci` are the values of `FER_SKIP_REAL_DATA` and `CI`.
pub fn decide(skip: Option<&OsStr>, ci: Option<&OsStr>, path: &Path, present: bool) -> RealData {
    if skip.is_some_and(|v| v == "1") {
        return RealData::Skip("FER_SKIP_REAL_DATA=1".to_string());
    }
    if present {
        return RealData::Run(path.to_path_buf());
    }
    let on_ci = ci.is_some_and(|v| !v.is_empty() && v != "false" && v != "0");
    if on_ci {
        return RealData::Fail(format!(
            "no FER2013 file at {}, and CI must run the real-data tests: set FER2013_CSV to \
             fer2013.csv(.gz), or FER_SKIP_REAL_DATA=1 where the data cannot be had",
            path.display()
        ));
    }
    RealData::Skip(format!(
        "no FER2013 file at {} (set FER2013_CSV to fer2013.csv(.gz))",
        path.display()
    ))
}

/// Where the real FER2013 file should be: `$FER2013_CSV`, else beside the workspace.
pub fn default_path() -> PathBuf {
    std::env::var_os("FER2013_CSV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/fer2013.csv.gz")
        })
}

/// The real FER2013 file for the test `test`, or `None` after printing why it is skipped;
/// panics when it must run and cannot.
pub fn real_fer2013(test: &str) -> Option<PathBuf> {
    let path = default_path();
    let present = path.is_file();
    let skip = std::env::var_os("FER_SKIP_REAL_DATA");
    let ci = std::env::var_os("CI");
    match decide(skip.as_deref(), ci.as_deref(), &path, present) {
        RealData::Run(path) => Some(path),
        RealData::Skip(reason) => {
            // Straight to stderr: the harness captures `eprintln!` of passing tests.
            let _ = writeln!(std::io::stderr(), "SKIPPED real-data test {test}: {reason}");
            None
        }
        RealData::Fail(message) => panic!("real-data test {test}: {message}"),
    }
}
