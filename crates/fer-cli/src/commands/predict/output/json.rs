//! The JSON output: one document, written after the last file, listing every file with its
//! faces (box, detector score, top emotions, all seven probabilities) or its error.

use std::io::Write;

use fer_data::Emotion;
use serde_json::{Value, json};

use super::Printer;
use crate::commands::predict::prediction::{FacePrediction, ImagePrediction, ranked};

/// Collects the files' entries and prints `{"model": ..., "images": [...]}` at the end.
pub struct JsonPrinter {
    top: u8,
    model: String,
    images: Vec<Value>,
}

impl JsonPrinter {
    /// Lists the `top` most likely emotions per face; `model` is named in the document.
    pub fn new(top: u8, model: &str) -> Self {
        JsonPrinter {
            top,
            model: model.to_string(),
            images: Vec::new(),
        }
    }
}

impl Printer for JsonPrinter {
    fn image(&mut self, _out: &mut dyn Write, prediction: &ImagePrediction) -> anyhow::Result<()> {
        self.images.push(json_image(prediction, self.top));
        Ok(())
    }

    fn finish(&mut self, out: &mut dyn Write) -> anyhow::Result<()> {
        let document = json!({
            "model": self.model,
            "images": std::mem::take(&mut self.images),
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&document)?)?;
        Ok(())
    }
}

fn json_image(prediction: &ImagePrediction, top: u8) -> Value {
    let file = prediction.file.display().to_string();
    match &prediction.result {
        Err(message) => json!({"file": file, "error": message, "faces": []}),
        Ok(faces) => {
            let faces: Vec<_> = faces.iter().map(|face| json_face(face, top)).collect();
            json!({"file": file, "error": null, "faces": faces})
        }
    }
}

fn json_face(face: &FacePrediction, top: u8) -> Value {
    let probabilities: serde_json::Map<String, Value> = Emotion::ALL
        .iter()
        .zip(face.probabilities)
        .map(|(e, p)| (e.name().to_lowercase(), json!(p)))
        .collect();
    let ranked = ranked(&face.probabilities);
    let top: Vec<_> = ranked
        .iter()
        .take(usize::from(top))
        .map(|(e, p)| json!({"emotion": e.name().to_lowercase(), "probability": p}))
        .collect();
    json!({
        "box": json_box(face),
        "emotion": ranked[0].0.name().to_lowercase(),
        "score": ranked[0].1,
        "top": top,
        "probabilities": probabilities,
    })
}

/// The face's box in the image's pixels, with the detector's score when it was detected.
fn json_box(face: &FacePrediction) -> Value {
    let b = face.face_box;
    let mut value = json!({"x": b.x, "y": b.y, "width": b.width, "height": b.height});
    if let Some(score) = face.detection_score() {
        value["detection_score"] = json!(score);
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::predict::faces::FaceOrigin;
    use crate::commands::predict::prediction::fixtures::{face, prediction};

    #[test]
    fn json_lists_faces_with_boxes_and_top_k() {
        let value = json_image(&prediction(Ok(vec![face()])), 2);
        let face = &value["faces"][0];
        assert_eq!(face["emotion"], "happy");
        assert_eq!(face["box"]["width"], 30);
        assert_eq!(face["box"]["detection_score"], 12.5);
        assert_eq!(face["top"].as_array().unwrap().len(), 2);
        assert_eq!(face["top"][1]["emotion"], "neutral");
        let sum: f64 = face["probabilities"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_f64().unwrap())
            .sum();
        assert!((sum - 1.0).abs() < 1e-6);
        let error = json_image(&prediction(Err("cannot decode".into())), 2);
        assert_eq!(error["error"], "cannot decode");
        assert_eq!(error["faces"].as_array().unwrap().len(), 0);
    }

    #[test]
    fn a_box_lists_its_fields_in_order_and_a_score_only_when_detected() {
        let detected = face();
        assert_eq!(
            json_box(&detected).to_string(),
            r#"{"x":1,"y":2,"width":30,"height":30,"detection_score":12.5}"#
        );
        let whole = FacePrediction {
            origin: FaceOrigin::WholeImage,
            ..detected
        };
        assert_eq!(
            json_box(&whole).to_string(),
            r#"{"x":1,"y":2,"width":30,"height":30}"#
        );
    }
}
