//! Which data a run was trained on (`RUN/data.json`: the content fingerprint of `--data`), so
//! that `fer eval` stores figures in a run as its own only when they were measured on that
//! data, and a run is never resumed on other data.

use std::path::{Path, PathBuf};

use anyhow::Context;
use fer_data::{Dataset, Split};
use serde::{Deserialize, Serialize};

/// The file in a run directory.
pub const DATA_RECORD: &str = "data.json";

/// What a run records of its data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataRecord {
    /// [`Dataset::fingerprint`] of the whole `--data` (before any `--train-subset`).
    pub fingerprint: String,
    /// Images in it.
    pub images: usize,
    /// The `--data` path as given, for people (the fingerprint decides).
    pub source: String,
}

impl DataRecord {
    pub fn of(dataset: &Dataset, source: &Path) -> Self {
        DataRecord {
            fingerprint: dataset.fingerprint(),
            images: dataset.len(),
            source: source.display().to_string(),
        }
    }

    /// The record of `run_dir`, if it has one (runs trained before it existed do not).
    pub fn read(run_dir: &Path) -> anyhow::Result<Option<Self>> {
        let path = run_dir.join(DATA_RECORD);
        if !path.is_file() {
            return Ok(None);
        }
        let text =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let record = serde_json::from_slice(&text)
            .with_context(|| format!("{}: not a data record", path.display()))?;
        Ok(Some(record))
    }

    /// Records this data in `run_dir` before training; a run that records other data is
    /// refused (resuming it on this data would mix two data sets in one model).
    pub fn check_and_write(&self, run_dir: &Path) -> anyhow::Result<()> {
        if let Some(saved) = Self::read(run_dir)? {
            anyhow::ensure!(
                saved.fingerprint == self.fingerprint,
                "{} was trained on other data ({}, {} images, fingerprint {}) than --data {} \
                 ({} images, fingerprint {}); choose another --out",
                run_dir.display(),
                saved.source,
                saved.images,
                &saved.fingerprint[..12.min(saved.fingerprint.len())],
                self.source,
                self.images,
                &self.fingerprint[..12],
            );
            return Ok(());
        }
        std::fs::create_dir_all(run_dir)
            .with_context(|| format!("cannot create {}", run_dir.display()))?;
        let mut text = serde_json::to_string_pretty(self)?;
        text.push('\n');
        fer_data::write_atomically(&run_dir.join(DATA_RECORD), text.as_bytes())?;
        Ok(())
    }
}

/// Where `fer eval` stores its figures on `split` of `dataset` in `run_dir`: the run's own
/// `eval-<split>.json` when the run records this very data, else a file named after the
/// data's fingerprint (`eval-<split>-data-<12 hex digits>.json`), so that figures on other
/// data never replace the run's. The second value says why, when it is not the run's own.
pub fn eval_report_path(
    run_dir: &Path,
    split: Split,
    dataset: &Dataset,
) -> anyhow::Result<(PathBuf, Option<&'static str>)> {
    run_file_for_data(
        run_dir,
        fer_report::EvalReport::path_in(run_dir, split),
        dataset,
    )
}

/// Where a figures file of `run_dir` whose own path is `own` (`RUN/NAME.json`) goes for
/// `dataset`: `own` when the run records this very data, else `RUN/NAME-data-<12 hex
/// digits>.json`; the second value says why, when it is not the run's own.
pub fn run_file_for_data(
    run_dir: &Path,
    own: PathBuf,
    dataset: &Dataset,
) -> anyhow::Result<(PathBuf, Option<&'static str>)> {
    let fingerprint = dataset.fingerprint();
    let reason = match DataRecord::read(run_dir)? {
        Some(record) if record.fingerprint == fingerprint => return Ok((own, None)),
        Some(_) => "this is not the data the run was trained on",
        None => "the run does not record the data it was trained on",
    };
    let name = own
        .file_stem()
        .map(|stem| {
            format!(
                "{}-data-{}.json",
                stem.to_string_lossy(),
                &fingerprint[..12]
            )
        })
        .expect("a file name");
    Ok((run_dir.join(name), Some(reason)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fer_data::synthetic::{SyntheticConfig, generate};

    #[test]
    fn figures_on_other_data_never_replace_the_runs_own() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path();
        let own = generate(&SyntheticConfig::small(1));
        let other = generate(&SyntheticConfig::small(2));

        // A run without a record: never its own file.
        let (path, reason) = eval_report_path(run, Split::PrivateTest, &own).unwrap();
        assert_ne!(path, run.join("eval-private-test.json"));
        assert!(reason.unwrap().contains("does not record"));

        DataRecord::of(&own, Path::new("own.csv"))
            .check_and_write(run)
            .unwrap();
        let (path, reason) = eval_report_path(run, Split::PrivateTest, &own).unwrap();
        assert_eq!(path, run.join("eval-private-test.json"));
        assert_eq!(reason, None);

        let (path, reason) = eval_report_path(run, Split::PrivateTest, &other).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(
            name,
            format!("eval-private-test-data-{}.json", &other.fingerprint()[..12])
        );
        assert!(reason.unwrap().contains("not the data"));

        // The same data again is fine; other data is refused, naming both.
        DataRecord::of(&own, Path::new("again.csv"))
            .check_and_write(run)
            .unwrap();
        let error = DataRecord::of(&other, Path::new("other.csv"))
            .check_and_write(run)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("own.csv") && error.contains("other.csv"),
            "{error}"
        );
    }
}
