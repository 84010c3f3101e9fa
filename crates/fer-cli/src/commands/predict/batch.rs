//! One batch of files: their faces read in parallel, then one forward pass over all the faces.

use std::path::PathBuf;

use candle_core::Device;
use fer_model::TrainedModel;
use fer_model::eval::predict_faces;
use rayon::prelude::*;

use super::faces::FaceSource;
use super::prediction::{FacePrediction, ImagePrediction};

/// What each of `files` holds, in order: a file that cannot be read gets its error and the
/// others still run. Faces go through the model `batch_size` at a time.
pub fn predict_files(
    files: &[PathBuf],
    source: &FaceSource,
    trained: &TrainedModel,
    device: &Device,
    batch_size: usize,
) -> anyhow::Result<Vec<ImagePrediction>> {
    let decoded: Vec<_> = files.par_iter().map(|path| source.faces_of(path)).collect();
    let pixels: Vec<u8> = decoded
        .iter()
        .flat_map(|faces| faces.iter().flatten())
        .flat_map(|face| face.pixels.iter().copied())
        .collect();
    let mut probabilities = predict_faces(
        trained.model.as_ref(),
        &trained.normalizer,
        &pixels,
        device,
        batch_size,
    )?
    .into_iter();
    Ok(files
        .iter()
        .zip(decoded)
        .map(|(file, faces)| ImagePrediction {
            file: file.clone(),
            result: faces.map(|faces| {
                faces
                    .into_iter()
                    .map(|face| FacePrediction {
                        face_box: face.face_box,
                        origin: face.origin,
                        probabilities: probabilities.next().expect("one row per face"),
                    })
                    .collect()
            }),
        })
        .collect())
}
