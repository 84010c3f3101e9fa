//! Evaluation of a model on a split: loss, metrics and per-image predictions.

use candle_core::{Device, Tensor};
use fer_data::{IMAGE_PIXELS, Normalizer, View};
use serde::Serialize;

use crate::Metrics;
use crate::model::{Classifier, Head, NUM_CLASSES, loss};

/// The prediction for one image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    /// Source row of the image (see `fer_data::Sample::row`).
    pub row: u32,
    pub label: usize,
    pub predicted: usize,
    /// Class probabilities (softmax of the scores, for either head).
    pub probabilities: [f32; NUM_CLASSES],
}

/// Loss, metrics and predictions of a model on a set of images.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// Sum over batches of each batch's mean loss (how the seed notebook reports it).
    pub loss_sum: f64,
    /// Mean loss per image.
    pub loss_mean: f64,
    pub metrics: Metrics,
    pub predictions: Vec<Prediction>,
}

/// Runs `model` over `view` in batches of `batch_size`, without dropout.
pub fn evaluate(
    model: &dyn Classifier,
    view: &View<'_>,
    normalizer: &Normalizer,
    device: &Device,
    batch_size: usize,
) -> candle_core::Result<Evaluation> {
    evaluate_with_progress(model, view, normalizer, device, batch_size, &mut |_| {})
}

/// [`evaluate`], calling `on_batch(images_in_batch)` after each batch (for progress bars).
pub fn evaluate_with_progress(
    model: &dyn Classifier,
    view: &View<'_>,
    normalizer: &Normalizer,
    device: &Device,
    batch_size: usize,
    on_batch: &mut dyn FnMut(usize),
) -> candle_core::Result<Evaluation> {
    let dataset = view.dataset();
    let mut loss_sum = 0f64;
    let mut weighted = 0f64;
    let mut predictions = Vec::with_capacity(view.len());
    for chunk in view.indices().chunks(batch_size.max(1)) {
        let sub = dataset
            .view_of(chunk.to_vec())
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let inputs = Tensor::from_vec(
            normalizer.apply_view(&sub),
            (chunk.len(), 1, 48, 48),
            device,
        )?;
        let labels: Vec<u32> = sub.labels().iter().map(|e| u32::from(e.label())).collect();
        let label_tensor = Tensor::new(labels.as_slice(), device)?;
        let scores = model.predict(&inputs)?;
        let batch_loss = f64::from(loss(model.head(), &scores, &label_tensor)?.to_scalar::<f32>()?);
        loss_sum += batch_loss;
        weighted += batch_loss * chunk.len() as f64;
        let probabilities = match model.head() {
            Head::Softmax => scores.exp()?,
            Head::Svm => candle_nn::ops::softmax(&scores, 1)?,
        };
        for (k, probs) in probabilities.to_vec2::<f32>()?.into_iter().enumerate() {
            let predicted = argmax(&probs);
            let mut fixed = [0f32; NUM_CLASSES];
            fixed.copy_from_slice(&probs[..NUM_CLASSES]);
            predictions.push(Prediction {
                row: dataset.rows()[chunk[k]],
                label: labels[k] as usize,
                predicted,
                probabilities: fixed,
            });
        }
        on_batch(chunk.len());
    }
    let truth: Vec<usize> = predictions.iter().map(|p| p.label).collect();
    let predicted: Vec<usize> = predictions.iter().map(|p| p.predicted).collect();
    Ok(Evaluation {
        loss_sum,
        loss_mean: if predictions.is_empty() {
            0.0
        } else {
            weighted / predictions.len() as f64
        },
        metrics: Metrics::from_predictions(&truth, &predicted),
        predictions,
    })
}

/// Class probabilities (softmax of the scores, for either head) of raw 48x48 grey faces,
/// `faces` holding them back to back (a multiple of 2304 bytes), in batches of `batch_size`.
pub fn predict_faces(
    model: &dyn Classifier,
    normalizer: &Normalizer,
    faces: &[u8],
    device: &Device,
    batch_size: usize,
) -> candle_core::Result<Vec<[f32; NUM_CLASSES]>> {
    if !faces.len().is_multiple_of(IMAGE_PIXELS) {
        candle_core::bail!(
            "predict_faces: {} bytes is not a whole number of 48x48 faces",
            faces.len()
        );
    }
    let mut out = Vec::with_capacity(faces.len() / IMAGE_PIXELS);
    for chunk in faces.chunks(IMAGE_PIXELS * batch_size.max(1)) {
        let n = chunk.len() / IMAGE_PIXELS;
        let mut inputs = vec![0f32; chunk.len()];
        for (face, normalized) in chunk
            .chunks_exact(IMAGE_PIXELS)
            .zip(inputs.chunks_exact_mut(IMAGE_PIXELS))
        {
            normalizer.apply(face, normalized);
        }
        let inputs = Tensor::from_vec(inputs, (n, 1, 48, 48), device)?;
        let scores = model.forward(&inputs, None)?;
        let probabilities = match model.head() {
            Head::Softmax => scores.exp()?,
            Head::Svm => candle_nn::ops::softmax(&scores, 1)?,
        };
        for probs in probabilities.to_vec2::<f32>()? {
            let mut fixed = [0f32; NUM_CLASSES];
            fixed.copy_from_slice(&probs[..NUM_CLASSES]);
            out.push(fixed);
        }
    }
    Ok(out)
}

/// Index of the largest value (the first on ties).
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}
