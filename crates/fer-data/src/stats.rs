//! Class balance per split and the quirks of the data: all-black images and exact duplicates.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;
use serde_json::{Value, json};

use crate::{Dataset, Emotion, Split};

/// Class counts of one split.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SplitStats {
    pub split: Split,
    pub total: usize,
    /// Images per class, indexed by label.
    pub per_class: [usize; Emotion::COUNT],
    /// `per_class / total`.
    pub shares: [f64; Emotion::COUNT],
    /// Largest class count over smallest (`None` when a class is absent).
    pub imbalance_ratio: Option<f64>,
}

impl SplitStats {
    fn new(split: Split, per_class: [usize; Emotion::COUNT]) -> Self {
        let total: usize = per_class.iter().sum();
        let shares = per_class.map(|c| {
            if total == 0 {
                0.0
            } else {
                c as f64 / total as f64
            }
        });
        let max = per_class.iter().max().copied().unwrap_or(0);
        let min = per_class.iter().min().copied().unwrap_or(0);
        SplitStats {
            split,
            total,
            per_class,
            shares,
            imbalance_ratio: (min > 0).then(|| max as f64 / min as f64),
        }
    }
}

/// Images whose pixels are exactly equal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DuplicateGroup {
    /// Positions in the dataset, ascending.
    pub indices: Vec<usize>,
    /// Source rows of the same images.
    pub rows: Vec<u32>,
    pub labels: Vec<Emotion>,
    pub splits: Vec<Split>,
}

impl DuplicateGroup {
    /// Whether the copies sit in more than one split (a leak between training and test).
    pub fn spans_splits(&self) -> bool {
        self.splits.iter().any(|s| *s != self.splits[0])
    }

    /// Whether the copies carry different labels.
    pub fn labels_conflict(&self) -> bool {
        self.labels.iter().any(|l| *l != self.labels[0])
    }
}

/// The exact duplicates of a dataset, found by comparing pixel content.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Duplicates {
    /// Distinct images.
    pub unique_images: usize,
    /// Groups of two or more identical images, ordered by their first position.
    pub groups: Vec<DuplicateGroup>,
}

impl Duplicates {
    /// Finds every group of identical images.
    pub fn find(dataset: &Dataset) -> Self {
        let mut by_content: HashMap<&[u8], Vec<usize>> = HashMap::with_capacity(dataset.len());
        for i in 0..dataset.len() {
            by_content.entry(dataset.image(i)).or_default().push(i);
        }
        let unique_images = by_content.len();
        let mut groups: Vec<DuplicateGroup> = by_content
            .into_values()
            .filter(|indices| indices.len() > 1)
            .map(|indices| DuplicateGroup {
                rows: indices.iter().map(|&i| dataset.rows()[i]).collect(),
                labels: indices.iter().map(|&i| dataset.labels()[i]).collect(),
                splits: indices.iter().map(|&i| dataset.splits()[i]).collect(),
                indices,
            })
            .collect();
        groups.sort_by_key(|g| g.indices[0]);
        Duplicates {
            unique_images,
            groups,
        }
    }

    /// Images that belong to a duplicate group.
    pub fn rows_in_groups(&self) -> usize {
        self.groups.iter().map(|g| g.indices.len()).sum()
    }

    /// Images beyond the first of each group.
    pub fn extra_copies(&self) -> usize {
        self.rows_in_groups() - self.groups.len()
    }

    /// Groups whose copies sit in more than one split.
    pub fn cross_split_groups(&self) -> usize {
        self.groups.iter().filter(|g| g.spans_splits()).count()
    }

    /// Groups whose copies disagree on the label.
    pub fn conflicting_label_groups(&self) -> usize {
        self.groups.iter().filter(|g| g.labels_conflict()).count()
    }

    /// Images of `split` that have an exact copy in `Training` (for test splits: leaked images).
    pub fn with_copy_in_training(&self, split: Split) -> usize {
        self.rows_with_copy_in_training(split).len()
    }

    /// Source rows of the `split` images whose pixels exactly equal an image in Training. For
    /// a test split these are images a model trained on Training has seen, so evaluations
    /// also report their figures without them (FER2013: 280 PublicTest and 288 PrivateTest
    /// images). For Training itself: the images with a second copy in Training.
    pub fn rows_with_copy_in_training(&self, split: Split) -> BTreeSet<u32> {
        let itself = usize::from(split == Split::Training);
        self.groups
            .iter()
            .filter(|g| g.splits.iter().filter(|s| **s == Split::Training).count() > itself)
            .flat_map(|g| {
                g.rows
                    .iter()
                    .zip(&g.splits)
                    .filter(|(_, s)| **s == split)
                    .map(|(&row, _)| row)
            })
            .collect()
    }
}

/// Everything `fer stats` reports about a dataset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Statistics {
    /// One entry per split present, in dataset order.
    pub splits: Vec<SplitStats>,
    /// All splits together.
    pub all: SplitStats,
    /// Positions of the images whose pixels are all 0.
    pub black_images: Vec<usize>,
    pub duplicates: Duplicates,
}

impl Statistics {
    /// Computes class balance and quirks in one pass over the pixels.
    pub fn compute(dataset: &Dataset) -> Self {
        let splits = dataset
            .present_splits()
            .into_iter()
            .map(|split| SplitStats::new(split, dataset.view(split).class_counts()))
            .collect();
        let black_images = (0..dataset.len())
            .filter(|&i| dataset.image(i).iter().all(|&p| p == 0))
            .collect();
        Statistics {
            splits,
            all: SplitStats::new(Split::Training, dataset.class_counts()),
            black_images,
            duplicates: Duplicates::find(dataset),
        }
    }

    /// The figures of one split, if present.
    pub fn split(&self, split: Split) -> Option<&SplitStats> {
        self.splits.iter().find(|s| s.split == split)
    }

    /// A JSON summary: `{"splits": {"Training": {"total", "per_class", "shares",
    /// "imbalance_ratio"}, ...}, "total", "per_class", "black_images" (count),
    /// "black_image_rows", "duplicate_groups" (count), "duplicates": {...}}`.
    pub fn summary_json(&self, dataset: &Dataset) -> Value {
        let split_entry = |s: &SplitStats| {
            json!({
                "total": s.total,
                "per_class": s.per_class,
                "shares": s.shares,
                "imbalance_ratio": s.imbalance_ratio,
            })
        };
        let splits: serde_json::Map<String, Value> = self
            .splits
            .iter()
            .map(|s| (s.split.name().to_string(), split_entry(s)))
            .collect();
        let d = &self.duplicates;
        json!({
            "classes": Emotion::ALL.map(Emotion::name),
            "splits": splits,
            "total": self.all.total,
            "per_class": self.all.per_class,
            "black_images": self.black_images.len(),
            "black_image_rows": self.black_images.iter().map(|&i| dataset.rows()[i]).collect::<Vec<_>>(),
            "duplicate_groups": d.groups.len(),
            "duplicates": {
                "unique_images": d.unique_images,
                "groups": d.groups.len(),
                "rows_in_groups": d.rows_in_groups(),
                "extra_copies": d.extra_copies(),
                "cross_split_groups": d.cross_split_groups(),
                "conflicting_label_groups": d.conflicting_label_groups(),
                "public_test_with_training_copy": d.with_copy_in_training(Split::PublicTest),
                "private_test_with_training_copy": d.with_copy_in_training(Split::PrivateTest),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IMAGE_PIXELS;

    /// Images: 0 black (Training), 1 = 2 (Training, PublicTest, same label),
    /// 3 = 4 = 5 (Training, Training, PrivateTest; labels conflict), 6 unique, 7 black (PublicTest).
    fn quirky() -> Dataset {
        let fill = [0u8, 10, 10, 20, 20, 20, 30, 0];
        let labels = [3u8, 1, 1, 2, 2, 5, 6, 0].map(|l| Emotion::from_label(l).unwrap());
        use Split::*;
        let splits = [
            Training,
            Training,
            PublicTest,
            Training,
            Training,
            PrivateTest,
            Training,
            PublicTest,
        ];
        Dataset::from_parts(
            fill.iter().flat_map(|&v| vec![v; IMAGE_PIXELS]).collect(),
            labels.to_vec(),
            splits.to_vec(),
            (100..108).collect(),
        )
        .unwrap()
    }

    #[test]
    fn rows_with_a_copy_in_training_are_the_leaked_test_images() {
        let data = quirky();
        let duplicates = Duplicates::find(&data);
        let rows = |split| {
            duplicates
                .rows_with_copy_in_training(split)
                .into_iter()
                .collect::<Vec<_>>()
        };
        // 102 copies Training image 101; 107 is black like Training image 100.
        assert_eq!(rows(Split::PublicTest), [102, 107]);
        assert_eq!(rows(Split::PrivateTest), [105]);
        // In Training only 103 and 104 (each other's copy) count; 100, 101 and 106 are alone.
        assert_eq!(rows(Split::Training), [103, 104]);
    }

    #[test]
    fn counts_classes_per_split() {
        let stats = Statistics::compute(&quirky());
        let train = stats.split(Split::Training).unwrap();
        assert_eq!(train.total, 5);
        assert_eq!(train.per_class, [0, 1, 2, 1, 0, 0, 1]);
        assert_eq!(train.imbalance_ratio, None);
        assert!((train.shares[2] - 0.4).abs() < 1e-12);
        assert_eq!(stats.all.total, 8);
        assert_eq!(stats.splits.len(), 3);
    }

    #[test]
    fn finds_black_images_and_duplicate_groups() {
        let data = quirky();
        let stats = Statistics::compute(&data);
        assert_eq!(stats.black_images, vec![0, 7]);
        let d = &stats.duplicates;
        assert_eq!(d.unique_images, 4);
        assert_eq!(d.groups.len(), 3);
        assert_eq!(d.groups[0].indices, vec![0, 7]);
        assert_eq!(d.groups[1].rows, vec![101, 102]);
        assert_eq!(d.rows_in_groups(), 7);
        assert_eq!(d.extra_copies(), 4);
        assert_eq!(d.cross_split_groups(), 3);
        assert_eq!(d.conflicting_label_groups(), 2);
        assert_eq!(d.with_copy_in_training(Split::PublicTest), 2);
        assert_eq!(d.with_copy_in_training(Split::PrivateTest), 1);
        assert_eq!(d.with_copy_in_training(Split::Training), 2);
        let json = stats.summary_json(&data);
        assert_eq!(json["splits"]["PublicTest"]["per_class"][1], 1);
        assert_eq!(json["black_images"], 2);
        assert_eq!(json["black_image_rows"][1], 107);
        assert_eq!(json["duplicate_groups"], 3);
    }

    #[test]
    fn balanced_split_has_ratio_one() {
        let s = SplitStats::new(Split::Training, [4; 7]);
        assert_eq!(s.imbalance_ratio, Some(1.0));
        assert_eq!(s.total, 28);
    }
}
