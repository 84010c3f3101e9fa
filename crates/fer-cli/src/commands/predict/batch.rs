//! One batch of files: their faces read in parallel, then one pass of the model over all the
//! faces of the batch.

use std::path::PathBuf;

use fer::{FaceSource, Faces, Recognizer};
use rayon::prelude::*;

use super::faces::faces_of;
use super::prediction::ImagePrediction;

/// The files of a batch with their faces (or why each cannot be read), before classification.
pub struct DecodedBatch {
    files: Vec<PathBuf>,
    faces: Vec<Result<Faces, String>>,
}

/// Reads the faces of `files` in parallel: decoding and detection, the part of a batch that
/// does not need the model.
pub fn read_faces(files: &[PathBuf], source: FaceSource, recognizer: &Recognizer) -> DecodedBatch {
    DecodedBatch {
        files: files.to_vec(),
        faces: files
            .par_iter()
            .map(|path| faces_of(path, source, recognizer))
            .collect(),
    }
}

/// Classifies every face of the batch in one pass and pairs each file with its result; a
/// file that could not be read keeps its error and the others still run.
pub fn classify(
    batch: DecodedBatch,
    recognizer: &Recognizer,
) -> anyhow::Result<Vec<ImagePrediction>> {
    let found: Vec<&Faces> = batch.faces.iter().flatten().collect();
    let mut classified = recognizer.classify_found(&found)?.into_iter();
    Ok(batch
        .files
        .into_iter()
        .zip(batch.faces)
        .map(|(file, faces)| ImagePrediction {
            file,
            result: faces.map(|_| classified.next().expect("one entry per readable file")),
        })
        .collect())
}
