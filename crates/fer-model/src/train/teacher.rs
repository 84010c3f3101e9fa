//! A teacher's class probabilities on the Training images, looked up by dataset index while
//! a distilled run trains (see [`DistillationConfig`](super::config::DistillationConfig)),
//! and kept in the run directory ([`TEACHER_FILE`]) for a resumed run.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use fer_data::{Dataset, Split};

use crate::checkpoint::{CheckpointError, load_tensors, save_tensors};
use crate::head::NUM_CLASSES;

/// The file of a distilled run's directory that keeps its teacher's probabilities, written
/// before the first epoch: a resumed run reads them back instead of evaluating the teacher
/// again, so it trains on the very targets it started with (a teacher named
/// `builtin:accurate` may be another model in a later binary) and starts minutes sooner.
pub const TEACHER_FILE: &str = "teacher.safetensors";

/// The tensor of [`TEACHER_FILE`]: (Training images, 7), in the order of
/// `dataset.indices_of(Split::Training)`.
const PROBABILITIES: &str = "probabilities";

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

    /// Writes the rows of `dataset`'s Training images to `path` (safetensors, atomically).
    pub fn save(&self, dataset: &Dataset, path: &Path) -> Result<(), CheckpointError> {
        self.check_covers(dataset)
            .map_err(|e| CheckpointError::invalid(path, e))?;
        let training = dataset.indices_of(Split::Training);
        let values: Vec<f32> = training.iter().flat_map(|&i| self.rows[i]).collect();
        let tensor = Tensor::from_vec(values, (training.len(), NUM_CLASSES), &Device::Cpu)
            .map_err(|e| CheckpointError::invalid(path, e))?;
        save_tensors(path, &HashMap::from([(PROBABILITIES.to_string(), tensor)]))
    }

    /// Reads what [`save`](Self::save) wrote for `dataset`; refuses a file that is not that
    /// (missing, corrupt, another shape or type, another number of Training images, a row
    /// that is not a distribution), naming the file.
    pub fn load(dataset: &Dataset, path: &Path) -> Result<Self, CheckpointError> {
        let tensors = load_tensors(path, &Device::Cpu)?;
        let invalid = |message: String| CheckpointError::invalid(path, message);
        let (Some(tensor), 1) = (tensors.get(PROBABILITIES), tensors.len()) else {
            let mut names: Vec<&String> = tensors.keys().collect();
            names.sort();
            return Err(invalid(format!(
                "expected one tensor `{PROBABILITIES}`, found {names:?}"
            )));
        };
        if tensor.dtype() != DType::F32
            || tensor.dims().len() != 2
            || tensor.dims()[1] != NUM_CLASSES
        {
            return Err(invalid(format!(
                "`{PROBABILITIES}` is {:?} {:?}, expected f32 (images, {NUM_CLASSES})",
                tensor.dtype(),
                tensor.dims()
            )));
        }
        let values = tensor
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| invalid(e.to_string()))?;
        let rows: Vec<[f32; NUM_CLASSES]> = values
            .chunks_exact(NUM_CLASSES)
            .map(|row| std::array::from_fn(|k| row[k]))
            .collect();
        Self::for_training(dataset, &rows).map_err(invalid)
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

    /// The file gives back the same rows, bit for bit; a file of another shape, type or
    /// image count, a row that is not a distribution, or no safetensors at all is refused
    /// with the file's name.
    #[test]
    fn the_saved_file_reads_back_and_a_wrong_one_is_refused() {
        let data = data();
        let training = data.indices_of(Split::Training);
        let rows: Vec<[f32; NUM_CLASSES]> = (0..training.len())
            .map(|k| std::array::from_fn(|c| if c == k % NUM_CLASSES { 0.7 } else { 0.05 }))
            .collect();
        let teacher = TeacherProbabilities::for_training(&data, &rows).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(TEACHER_FILE);
        teacher.save(&data, &path).unwrap();
        assert_eq!(TeacherProbabilities::load(&data, &path).unwrap(), teacher);

        let mut other = SyntheticConfig::small(3);
        other.per_split = [7, 2, 2];
        let err = TeacherProbabilities::load(&generate(&other), &path)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(TEACHER_FILE) && err.contains("cover 6 images, the Training split has 7"),
            "{err}"
        );
        let write = |name: &str, tensor: Tensor| {
            save_tensors(&path, &HashMap::from([(name.to_string(), tensor)])).unwrap();
            TeacherProbabilities::load(&data, &path)
                .unwrap_err()
                .to_string()
        };
        let cpu = &Device::Cpu;
        let err = write("probs", Tensor::zeros((6, 7), DType::F32, cpu).unwrap());
        assert!(
            err.contains("expected one tensor `probabilities`, found [\"probs\"]"),
            "{err}"
        );
        let err = write(
            PROBABILITIES,
            Tensor::zeros((6, 6), DType::F32, cpu).unwrap(),
        );
        assert!(err.contains("expected f32 (images, 7)"), "{err}");
        let err = write(
            PROBABILITIES,
            Tensor::zeros((6, 7), DType::F16, cpu).unwrap(),
        );
        assert!(err.contains("F16"), "{err}");
        let err = write(
            PROBABILITIES,
            Tensor::zeros((6, 7), DType::F32, cpu).unwrap(),
        );
        assert!(err.contains("not a distribution"), "{err}");
        std::fs::write(&path, b"not safetensors").unwrap();
        let err = TeacherProbabilities::load(&data, &path)
            .unwrap_err()
            .to_string();
        assert!(err.contains(TEACHER_FILE), "{err}");
    }
}
