//! Evaluation of a model on a split: loss, [`metrics`] and per-image predictions; ensembles
//! as the mean of their members' probabilities.

pub mod metrics;

use std::collections::BTreeSet;

use candle_core::{Device, Tensor};
use fer_data::{IMAGE_PIXELS, IMAGE_SIDE, Normalizer, View};
use serde::Serialize;

use self::metrics::Metrics;
use crate::head::{Head, NUM_CLASSES};
use crate::loss::loss;
use crate::nets::classifier::Classifier;

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
            (chunk.len(), 1, IMAGE_SIDE, IMAGE_SIDE),
            device,
        )?;
        let labels: Vec<u32> = sub.labels().iter().map(|e| u32::from(e.label())).collect();
        let label_tensor = Tensor::new(labels.as_slice(), device)?;
        let (scores, probabilities) = infer(model, &inputs)?;
        let batch_loss = f64::from(loss(model.head(), &scores, &label_tensor)?.to_scalar::<f32>()?);
        loss_sum += batch_loss;
        weighted += batch_loss * chunk.len() as f64;
        for (k, probabilities) in probabilities.into_iter().enumerate() {
            predictions.push(Prediction {
                row: dataset.rows()[chunk[k]],
                label: labels[k] as usize,
                predicted: argmax(&probabilities),
                probabilities,
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

/// An ensemble's evaluation from its members' evaluations of the same images (in the same
/// order): each image's class probabilities are the members' mean, its prediction their
/// argmax, its loss the negative log of the averaged probability of the true class.
pub fn average_evaluations(members: &[Evaluation]) -> candle_core::Result<Evaluation> {
    let Some(first) = members.first() else {
        candle_core::bail!("an ensemble needs at least one member");
    };
    for (k, member) in members.iter().enumerate().skip(1) {
        let same_images = member.predictions.len() == first.predictions.len()
            && member
                .predictions
                .iter()
                .zip(&first.predictions)
                .all(|(a, b)| a.row == b.row && a.label == b.label);
        if !same_images {
            candle_core::bail!(
                "ensemble member {} was evaluated on other images than member 1",
                k + 1
            );
        }
    }
    let count = members.len() as f32;
    let predictions: Vec<Prediction> = (0..first.predictions.len())
        .map(|i| {
            let mut probabilities = [0f32; NUM_CLASSES];
            for member in members {
                for (sum, p) in probabilities
                    .iter_mut()
                    .zip(member.predictions[i].probabilities)
                {
                    *sum += p / count;
                }
            }
            Prediction {
                predicted: argmax(&probabilities),
                probabilities,
                ..first.predictions[i].clone()
            }
        })
        .collect();
    let losses: Vec<f64> = predictions
        .iter()
        .map(|p| -f64::from(p.probabilities[p.label].max(1e-12)).ln())
        .collect();
    let batch_means = losses
        .chunks(128)
        .map(|chunk| chunk.iter().sum::<f64>() / chunk.len() as f64);
    let truth: Vec<usize> = predictions.iter().map(|p| p.label).collect();
    let predicted: Vec<usize> = predictions.iter().map(|p| p.predicted).collect();
    Ok(Evaluation {
        loss_sum: batch_means.sum(),
        loss_mean: losses.iter().sum::<f64>() / losses.len().max(1) as f64,
        metrics: Metrics::from_predictions(&truth, &predicted),
        predictions,
    })
}

/// Class probabilities (softmax of the scores, for either head) of raw 48x48 grey faces,
/// `faces` holding them back to back (a multiple of 2304 bytes), in batches of `batch_size`:
/// the path [`evaluate`] takes, so a face gets the same probabilities from both when it is
/// batched the same way.
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
        let inputs = Tensor::from_vec(inputs, (n, 1, IMAGE_SIDE, IMAGE_SIDE), device)?;
        out.extend(infer(model, &inputs)?.1);
    }
    Ok(out)
}

/// The one inference path of evaluation and prediction: the scores of a batch of normalised
/// images from [`Classifier::predict`] (test-time augmentation as configured, the fast CPU
/// kernels), and each image's class probabilities (softmax of the scores, for either head).
fn infer(
    model: &dyn Classifier,
    inputs: &Tensor,
) -> candle_core::Result<(Tensor, Vec<[f32; NUM_CLASSES]>)> {
    let scores = model.predict(inputs)?;
    let probabilities = match model.head() {
        Head::Softmax => scores.exp()?,
        Head::Svm => candle_nn::ops::softmax(&scores, 1)?,
    };
    let rows = probabilities
        .to_vec2::<f32>()?
        .into_iter()
        .map(|row| {
            let mut fixed = [0f32; NUM_CLASSES];
            fixed.copy_from_slice(&row[..NUM_CLASSES]);
            fixed
        })
        .collect();
    Ok((scores, rows))
}

/// Metrics of the predictions whose rows are not in `excluded`, e.g. a test split without
/// its images that have an exact copy in Training (`fer_data::Duplicates::rows_with_copy_in_training`).
pub fn metrics_excluding(predictions: &[Prediction], excluded: &BTreeSet<u32>) -> Metrics {
    let (truth, predicted): (Vec<usize>, Vec<usize>) = predictions
        .iter()
        .filter(|p| !excluded.contains(&p.row))
        .map(|p| (p.label, p.predicted))
        .unzip();
    Metrics::from_predictions(&truth, &predicted)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn member(probabilities: &[[f32; NUM_CLASSES]], labels: &[usize]) -> Evaluation {
        let predictions: Vec<Prediction> = probabilities
            .iter()
            .zip(labels)
            .enumerate()
            .map(|(i, (p, &label))| Prediction {
                row: i as u32 * 3,
                label,
                predicted: argmax(p),
                probabilities: *p,
            })
            .collect();
        let truth: Vec<usize> = labels.to_vec();
        let predicted: Vec<usize> = predictions.iter().map(|p| p.predicted).collect();
        Evaluation {
            loss_sum: 0.0,
            loss_mean: 0.0,
            metrics: Metrics::from_predictions(&truth, &predicted),
            predictions,
        }
    }

    #[test]
    fn metrics_excluding_leaves_out_exactly_the_given_rows() {
        let one_hot = |k: usize| {
            let mut p = [0.0; NUM_CLASSES];
            p[k] = 1.0;
            p
        };
        // Rows 0, 3, 6, 9: right, wrong, right, wrong (predicting 0 for labels 0, 1, 0, 2).
        let e = member(&[one_hot(0); 4], &[0, 1, 0, 2]);
        assert_eq!(e.metrics.accuracy, 0.5);
        let without =
            |rows: &[u32]| metrics_excluding(&e.predictions, &rows.iter().copied().collect());
        let m = without(&[3]);
        assert_eq!((m.n, m.accuracy), (3, 2.0 / 3.0));
        assert_eq!(m.confusion[1], [0; NUM_CLASSES]);
        let m = without(&[3, 9]);
        assert_eq!((m.n, m.accuracy), (2, 1.0));
        // Rows that are not among the predictions change nothing.
        assert_eq!(without(&[1, 2, 100]), e.metrics);
    }

    #[test]
    fn an_ensemble_averages_probabilities_and_can_beat_its_members() {
        let labels = [0, 1];
        // Each member gets one image wrong, confidently right on the other.
        let a = member(
            &[
                [0.45, 0.55, 0.0, 0.0, 0.0, 0.0, 0.0],
                [0.0, 0.9, 0.1, 0.0, 0.0, 0.0, 0.0],
            ],
            &labels,
        );
        let b = member(
            &[
                [0.9, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0],
                [0.0, 0.4, 0.6, 0.0, 0.0, 0.0, 0.0],
            ],
            &labels,
        );
        assert_eq!(a.metrics.accuracy, 0.5);
        assert_eq!(b.metrics.accuracy, 0.5);
        let both = average_evaluations(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(both.metrics.accuracy, 1.0);
        assert!((both.predictions[0].probabilities[0] - 0.675).abs() < 1e-6);
        assert!((both.predictions[1].probabilities[1] - 0.65).abs() < 1e-6);
        assert_eq!(both.predictions[1].row, 3);
        let expected_loss = -(0.675f64.ln() + 0.65f64.ln()) / 2.0;
        assert!((both.loss_mean - expected_loss).abs() < 1e-6);
        // Members evaluated on other images are refused.
        let other = member(&[[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]], &[0]);
        let err = average_evaluations(&[a, other]).unwrap_err().to_string();
        assert!(err.contains("member 2"), "{err}");
    }
}
