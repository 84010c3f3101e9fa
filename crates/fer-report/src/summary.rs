//! `DataSummary`: class counts per split and the data's quirks, from [`Statistics`] or from a
//! stored `fer stats --json` file.

use std::collections::BTreeMap;
use std::path::Path;

use fer_data::{Emotion, Split, Statistics};
use serde::Deserialize;

use crate::error::{Error, Result};

/// Images per class of one split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitCounts {
    /// `Training`, `PublicTest`, `PrivateTest` (or another name a stats file used).
    pub name: String,
    /// Indexed by label.
    pub per_class: [usize; Emotion::COUNT],
}

impl SplitCounts {
    /// Images in the split.
    pub fn total(&self) -> usize {
        self.per_class.iter().sum()
    }
}

/// What a report shows about the data a run was trained on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSummary {
    /// In the order Training, PublicTest, PrivateTest, then any other names.
    pub splits: Vec<SplitCounts>,
    /// All-black images, when known.
    pub black_images: Option<usize>,
    /// Groups of exactly equal images, when known.
    pub duplicate_groups: Option<usize>,
}

#[derive(Deserialize)]
struct StatsFile {
    splits: BTreeMap<String, StatsSplit>,
    black_images: Option<usize>,
    duplicate_groups: Option<usize>,
}

#[derive(Deserialize)]
struct StatsSplit {
    per_class: [usize; Emotion::COUNT],
}

impl DataSummary {
    /// The summary of computed statistics.
    pub fn from_statistics(stats: &Statistics) -> Self {
        DataSummary {
            splits: stats
                .splits
                .iter()
                .map(|s| SplitCounts {
                    name: s.split.name().to_string(),
                    per_class: s.per_class,
                })
                .collect(),
            black_images: Some(stats.black_images.len()),
            duplicate_groups: Some(stats.duplicates.groups.len()),
        }
    }

    /// Reads the JSON that `fer stats --json` prints (e.g. saved as `RUN/stats.json`).
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let file: StatsFile = serde_json::from_str(&text).map_err(|e| Error::json(path, e))?;
        if file.splits.is_empty() {
            return Err(Error::invalid(path, "splits: no split"));
        }
        let mut splits: Vec<SplitCounts> = file
            .splits
            .into_iter()
            .map(|(name, s)| SplitCounts {
                name,
                per_class: s.per_class,
            })
            .collect();
        let order = |name: &str| {
            Split::ALL
                .iter()
                .position(|s| s.name() == name)
                .unwrap_or(Split::ALL.len())
        };
        splits.sort_by_key(|s| order(&s.name));
        Ok(DataSummary {
            splits,
            black_images: file.black_images,
            duplicate_groups: file.duplicate_groups,
        })
    }

    /// Images in all splits.
    pub fn total(&self) -> usize {
        self.splits.iter().map(SplitCounts::total).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fer_data::synthetic::{SyntheticConfig, generate};

    #[test]
    fn a_stats_file_reads_back_like_the_statistics() {
        let data = generate(&SyntheticConfig::small(3));
        let stats = Statistics::compute(&data);
        let summary = DataSummary::from_statistics(&stats);
        assert_eq!(summary.splits[0].name, "Training");
        assert_eq!(
            summary.splits[0].per_class,
            data.view(Split::Training).class_counts()
        );
        assert_eq!(summary.total(), data.len());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stats.json");
        std::fs::write(&path, stats.summary_json(&data).to_string()).unwrap();
        assert_eq!(DataSummary::load(&path).unwrap(), summary);
    }

    #[test]
    fn a_bad_stats_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stats.json");
        std::fs::write(&path, r#"{"splits": {"Training": {"per_class": [1, 2]}}}"#).unwrap();
        let error = DataSummary::load(&path).unwrap_err().to_string();
        assert!(error.contains("stats.json: invalid JSON"), "{error}");
    }
}
