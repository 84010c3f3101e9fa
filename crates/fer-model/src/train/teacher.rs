//! A teacher's class probabilities on the Training images, looked up by dataset index while
//! a distilled run trains (see [`DistillationConfig`](super::config::DistillationConfig)).

use fer_data::{Dataset, Split};

use crate::head::NUM_CLASSES;

/// Tolerance on a row's sum: probabilities written with 6 decimals, or averaged, still pass.
const SUM_TOLERANCE: f32 = 1e-3;

/// Per-image class probabilities for every Training image of one dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct TeacherProbabilities {
    /// Indexed by dataset index; rows of images outside Training are unused (zero).
    rows: Vec<[f32; NUM_CLASSES]>,
    /// Which dataset indices have a row (the Training ones).
    covered: Vec<bool>,
}

impl TeacherProbabilities {
    /// `probabilities` in the order of `dataset.indices_of(Split::Training)` (the order in
    /// which an evaluation of the Training view returns its predictions). Refuses a count
    /// that does not match, and any row that is not a distribution (naming the image's row).
    pub fn for_training(
        dataset: &Dataset,
        probabilities: &[[f32; NUM_CLASSES]],
    ) -> Result<Self, String> {
        let indices = dataset.indices_of(Split::Training);
        if indices.len() != probabilities.len() {
            return Err(format!(
                "the teacher's probabilities cover {} images, the Training split has {}",
                probabilities.len(),
                indices.len()
            ));
        }
        let mut rows = vec![[0f32; NUM_CLASSES]; dataset.len()];
        let mut covered = vec![false; dataset.len()];
        for (&i, row) in indices.iter().zip(probabilities) {
            let sum: f32 = row.iter().sum();
            if row.iter().any(|p| !p.is_finite() || *p < 0.0) || (sum - 1.0).abs() > SUM_TOLERANCE {
                return Err(format!(
                    "the teacher's probabilities for the image of row {} are not a distribution: {row:?}",
                    dataset.rows()[i]
                ));
            }
            rows[i] = *row;
            covered[i] = true;
        }
        Ok(TeacherProbabilities { rows, covered })
    }

    /// The teacher's probabilities for dataset index `index`, if it is a Training image of
    /// the dataset they were computed on.
    pub fn get(&self, index: usize) -> Option<&[f32; NUM_CLASSES]> {
        self.covered
            .get(index)
            .copied()
            .unwrap_or(false)
            .then(|| &self.rows[index])
    }

    /// Whether these probabilities were laid out for `dataset` and give a row for each of its
    /// Training images (what the training loop looks up); the error names what does not fit.
    pub fn check_covers(&self, dataset: &Dataset) -> Result<(), String> {
        if self.rows.len() != dataset.len() {
            return Err(format!(
                "the teacher's probabilities were laid out for {} images, the data has {}",
                self.rows.len(),
                dataset.len()
            ));
        }
        match dataset
            .indices_of(Split::Training)
            .into_iter()
            .find(|&i| self.get(i).is_none())
        {
            Some(i) => Err(format!(
                "the teacher's probabilities have no row for the Training image of row {}",
                dataset.rows()[i]
            )),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fer_data::synthetic::{SyntheticConfig, generate};

    fn data() -> Dataset {
        let mut config = SyntheticConfig::small(3);
        config.per_split = [6, 2, 2];
        generate(&config)
    }

    #[test]
    fn rows_follow_the_training_order_and_bad_rows_are_named() {
        let data = data();
        let training = data.indices_of(Split::Training);
        let rows: Vec<[f32; NUM_CLASSES]> = (0..training.len())
            .map(|k| {
                let mut row = [0f32; NUM_CLASSES];
                row[k % NUM_CLASSES] = 1.0;
                row
            })
            .collect();
        let teacher = TeacherProbabilities::for_training(&data, &rows).unwrap();
        assert_eq!(teacher.check_covers(&data), Ok(()));
        let mut other = SyntheticConfig::small(3);
        other.per_split = [6, 3, 2];
        let err = teacher.check_covers(&generate(&other)).unwrap_err();
        assert!(
            err.contains("laid out for 10 images, the data has 11"),
            "{err}"
        );
        for (k, &i) in training.iter().enumerate() {
            assert_eq!(teacher.get(i), Some(&rows[k]));
        }
        let public = data.indices_of(Split::PublicTest)[0];
        assert_eq!(teacher.get(public), None);
        assert_eq!(teacher.get(data.len()), None);

        let err = TeacherProbabilities::for_training(&data, &rows[1..]).unwrap_err();
        assert!(
            err.contains("cover 5 images") && err.contains("has 6"),
            "{err}"
        );
        let mut bad = rows.clone();
        bad[2] = [0.5, 0.6, 0.0, 0.0, 0.0, 0.0, 0.0];
        let err = TeacherProbabilities::for_training(&data, &bad).unwrap_err();
        let row = data.rows()[training[2]];
        assert!(err.contains(&format!("row {row}")), "{err}");
        bad[2] = [f32::NAN, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        assert!(TeacherProbabilities::for_training(&data, &bad).is_err());
    }
}
