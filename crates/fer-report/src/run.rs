//! `Run`: what a report reads from a run directory. Only `config.json` (shown as opaque JSON),
//! `history.json`, `eval-*.json`, `manifest.json` and `stats.json` are read; all are optional,
//! but a directory with none of the first three is not a run.

use std::path::{Path, PathBuf};

use fer_data::Split;
use fer_model::EpochRecord;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::evaluation::{EvalReport, split_slug};
use crate::summary::DataSummary;

/// The files of one run directory that a report shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub dir: PathBuf,
    /// The directory's name.
    pub name: String,
    /// `config.json`, whatever its shape (a CNN's `TrainConfig`, a baseline's own).
    pub config: Option<Value>,
    /// `history.json`: one record per epoch.
    pub history: Option<Vec<EpochRecord>>,
    /// `eval-<split>.json` files, PrivateTest first, then PublicTest, Training, others.
    pub evaluations: Vec<EvalReport>,
    /// `manifest.json` of a pipeline (steps, wall seconds, commit, data hash, machine).
    pub manifest: Option<Value>,
    /// `stats.json`: `fer stats --json` of the data the run used.
    pub data: Option<DataSummary>,
}

/// Reads `dir/name` as JSON if the file exists.
fn read_optional<T: serde::de::DeserializeOwned>(dir: &Path, name: &str) -> Result<Option<T>> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| Error::json(&path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(&path, e)),
    }
}

/// Rank of an evaluation file name: PrivateTest, PublicTest, Training, then the rest.
fn eval_rank(file_name: &str) -> usize {
    [Split::PrivateTest, Split::PublicTest, Split::Training]
        .iter()
        .position(|&s| file_name == format!("eval-{}.json", split_slug(s)))
        .unwrap_or(3)
}

impl Run {
    /// Reads a run directory; fails on a missing directory, a file that is not valid JSON of
    /// its kind, or a directory with no `config.json`, `history.json` or `eval-*.json`.
    pub fn open(dir: &Path) -> Result<Run> {
        let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
        let mut eval_files: Vec<(usize, String, PathBuf)> = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // `eval-<split>-data-<fingerprint>.json` holds figures on other data than the
            // run's (`fer eval --data OTHER`): never the run's own. `eval-epochs-<split>.json`
            // (`fer eval --every-epoch`) scores every kept epoch, not the run's checkpoint.
            if name.starts_with("eval-")
                && name.ends_with(".json")
                && !name.contains("-data-")
                && !name.starts_with("eval-epochs-")
            {
                eval_files.push((eval_rank(&name), name, entry.path()));
            }
        }
        eval_files.sort();
        let evaluations = eval_files
            .iter()
            .map(|(_, _, path)| EvalReport::load(path))
            .collect::<Result<Vec<_>>>()?;
        let config: Option<Value> = read_optional(dir, "config.json")?;
        let history: Option<Vec<EpochRecord>> = read_optional(dir, "history.json")?;
        if config.is_none() && history.is_none() && evaluations.is_empty() {
            return Err(Error::NotARun {
                path: dir.to_path_buf(),
            });
        }
        let data = match dir.join("stats.json") {
            path if path.is_file() => Some(DataSummary::load(&path)?),
            _ => None,
        };
        let name = dir
            .canonicalize()
            .ok()
            .as_deref()
            .unwrap_or(dir)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        Ok(Run {
            dir: dir.to_path_buf(),
            name,
            config,
            history,
            evaluations,
            manifest: read_optional(dir, "manifest.json")?,
            data,
        })
    }

    /// The headline evaluation: PrivateTest if there is one, else the first.
    pub fn evaluation(&self) -> Option<&EvalReport> {
        self.evaluations.first()
    }

    /// Epochs trained: the history's length, else `epochs` in the config.
    pub fn epochs(&self) -> Option<usize> {
        match &self.history {
            Some(history) => Some(history.len()),
            None => self
                .config
                .as_ref()
                .and_then(|c| c.get("epochs"))
                .and_then(Value::as_u64)
                .map(|e| e as usize),
        }
    }

    /// The epoch whose weights are `best.safetensors`, from the history.
    pub fn best_epoch(&self) -> Option<usize> {
        self.history.as_ref()?.last().map(|r| r.best_epoch)
    }

    /// Wall time in seconds: training and validation per epoch from the history, else the
    /// manifest's `wall_seconds`, or the sum of its steps' `wall_seconds`.
    pub fn wall_seconds(&self) -> Option<f64> {
        if let Some(history) = self.history.as_ref().filter(|h| !h.is_empty()) {
            return Some(
                history
                    .iter()
                    .map(|r| r.train_seconds + r.eval_seconds)
                    .sum(),
            );
        }
        let manifest = self.manifest.as_ref()?;
        if let Some(total) = manifest.get("wall_seconds").and_then(Value::as_f64) {
            return Some(total);
        }
        let steps = manifest.get("steps")?.as_array()?;
        let seconds: Vec<f64> = steps
            .iter()
            .filter_map(|s| s.get("wall_seconds").and_then(Value::as_f64))
            .collect();
        (!seconds.is_empty()).then(|| seconds.iter().sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fer_model::Metrics;

    #[test]
    fn evaluations_on_other_data_are_not_the_runs_own() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = |right: usize| {
            let truth = vec![0usize; 4];
            let predicted: Vec<usize> = (0..4).map(|k| usize::from(k >= right)).collect();
            Metrics::from_predictions(&truth, &predicted)
        };
        EvalReport::new(Split::PrivateTest, &metrics(3), None)
            .save(&dir.path().join("eval-private-test.json"))
            .unwrap();
        EvalReport::new(Split::PrivateTest, &metrics(1), None)
            .save(&dir.path().join("eval-private-test-data-0123456789ab.json"))
            .unwrap();
        // Per-epoch figures are another document, not an evaluation of the run.
        std::fs::write(
            dir.path().join("eval-epochs-private-test.json"),
            r#"{"split": "PrivateTest", "best_epoch": 1, "epochs": []}"#,
        )
        .unwrap();
        let run = Run::open(dir.path()).unwrap();
        assert_eq!(run.evaluations.len(), 1);
        assert_eq!(run.evaluations[0].accuracy, 0.75);
    }
}
