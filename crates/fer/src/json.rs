//! The JSON documents `fer predict --json` prints and `fer serve` answers: one schema, one
//! serializer.
//!
//! A prediction document is `{"model": NAME, "images": [IMAGE, ...]}`; an image is
//! `{"file": NAME, "error": null or MESSAGE, "faces": [FACE, ...]}`; a face is
//! `{"box": {"x", "y", "width", "height"[, "detection_score"]}, "emotion", "score", "top":
//! [{"emotion", "probability"}, ...], "probabilities": {"angry": ..., ..., "neutral": ...}[,
//! "landmarks": {"left_eye": [x, y], "right_eye", "nose", "mouth_left", "mouth_right",
//! "roll_degrees"}]}` (landmarks when the face was detected and turned upright by its eyes).
//! Emotion names are lower case, in [`Emotion::ALL`] order.

use serde_json::{Map, Value, json};

use crate::builtin::{BUILTIN_MODELS, BuiltinModel, DEFAULT_BUILTIN};
use crate::error::{Error, Result};
use crate::recognizer::FaceEmotions;
use fer_data::Emotion;
use fer_detect::{FaceLandmarks, Point};

/// The whole document: the model's name and every image's entry, in order.
pub fn prediction_document(model: &str, images: Vec<Value>) -> Value {
    json!({"model": model, "images": images})
}

/// One image's entry: its faces (an empty list when none was found), or why it could not be
/// read. `top` is how many emotions each face lists, most likely first (1 to 7).
pub fn image_entry(name: &str, faces: Result<&[FaceEmotions], &str>, top: usize) -> Value {
    match faces {
        Err(message) => json!({"file": name, "error": message, "faces": []}),
        Ok(faces) => {
            let faces: Vec<_> = faces.iter().map(|face| face_entry(face, top)).collect();
            json!({"file": name, "error": null, "faces": faces})
        }
    }
}

/// One face: its box, the most likely emotion, the `top` most likely, all seven probabilities.
pub fn face_entry(face: &FaceEmotions, top: usize) -> Value {
    let probabilities: Map<String, Value> = Emotion::ALL
        .iter()
        .zip(face.emotions.probabilities)
        .map(|(e, p)| (emotion_name(*e), json!(p)))
        .collect();
    let ranked = face.emotions.ranked();
    let listed: Vec<_> = ranked
        .iter()
        .take(top.clamp(1, 7))
        .map(|(e, p)| json!({"emotion": emotion_name(*e), "probability": p}))
        .collect();
    let mut entry = json!({
        "box": box_entry(face),
        "emotion": emotion_name(ranked[0].0),
        "score": ranked[0].1,
        "top": listed,
        "probabilities": probabilities,
    });
    if let Some(marks) = &face.landmarks {
        entry["landmarks"] = landmarks_entry(marks);
    }
    entry
}

/// Eyes, nose and mouth corners in the image's pixels (to 0.1 px), and the eyes' roll.
fn landmarks_entry(marks: &FaceLandmarks) -> Value {
    let point = |p: Point| json!([round1(p.x), round1(p.y)]);
    json!({
        "left_eye": point(marks.left_eye),
        "right_eye": point(marks.right_eye),
        "nose": point(marks.nose),
        "mouth_left": point(marks.mouth_left),
        "mouth_right": point(marks.mouth_right),
        "roll_degrees": round1(marks.roll_degrees()),
    })
}

fn round1(value: f32) -> f64 {
    (f64::from(value) * 10.0).round() / 10.0
}

/// The face's box in the image's pixels, with the detector's score when it was detected.
fn box_entry(face: &FaceEmotions) -> Value {
    let b = face.face_box;
    let mut value = json!({"x": b.x, "y": b.y, "width": b.width, "height": b.height});
    if let Some(score) = face.detection_score() {
        value["detection_score"] = json!(score);
    }
    value
}

/// An emotion's name as the JSON writes it: lower case.
pub fn emotion_name(emotion: Emotion) -> String {
    emotion.name().to_lowercase()
}

/// The built-in models, as `fer models --json` lists them: name, whether it is the default,
/// summary, its networks (one, or an ensemble's members), weight size, and both recorded
/// evaluations in full.
pub fn builtin_models() -> Result<Value> {
    BUILTIN_MODELS
        .iter()
        .map(builtin_model_entry)
        .collect::<Result<Vec<_>>>()
        .map(Value::Array)
}

fn builtin_model_entry(model: &BuiltinModel) -> Result<Value> {
    let parse = |json: &str, split: &str| -> Result<Value> {
        serde_json::from_str(json).map_err(|e| {
            Error::InvalidInput(format!(
                "built-in model {}: its {split} figures do not parse: {e}",
                model.name
            ))
        })
    };
    Ok(json!({
        "name": model.name,
        "default": model.name == DEFAULT_BUILTIN,
        "summary": model.summary,
        "networks": model.networks.iter().map(|n| n.name).collect::<Vec<_>>(),
        "weights_bytes": model.weights_bytes(),
        "public_test": parse(model.eval_public_test_json, "PublicTest")?,
        "private_test": parse(model.eval_private_test_json, "PrivateTest")?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FaceSource;
    use crate::recognizer::Emotions;
    use fer_detect::FaceBox;

    /// A detected face, most likely Happy, then Neutral, then Sad.
    fn face(source: FaceSource) -> FaceEmotions {
        FaceEmotions {
            face_box: FaceBox {
                x: 1,
                y: 2,
                width: 30,
                height: 30,
                score: 12.5,
            },
            landmarks: None,
            source,
            emotions: Emotions {
                probabilities: [0.05, 0.0, 0.05, 0.6, 0.1, 0.05, 0.15],
            },
        }
    }

    #[test]
    fn an_image_lists_faces_with_boxes_and_top_k() {
        let value = image_entry("a.png", Ok(&[face(FaceSource::Detect)]), 2);
        let face = &value["faces"][0];
        assert_eq!(value["file"], "a.png");
        assert_eq!(value["error"], Value::Null);
        assert_eq!(face["emotion"], "happy");
        assert_eq!(face["score"].as_f64().unwrap() as f32, 0.6);
        assert_eq!(face["box"]["width"], 30);
        assert_eq!(face["top"].as_array().unwrap().len(), 2);
        assert_eq!(face["top"][1]["emotion"], "neutral");
        let names: Vec<&String> = face["probabilities"].as_object().unwrap().keys().collect();
        assert_eq!(
            names,
            [
                "angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"
            ]
        );
        let sum: f64 = face["probabilities"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_f64().unwrap())
            .sum();
        assert!((sum - 1.0).abs() < 1e-6);
        let error = image_entry("b.png", Err("cannot decode"), 2);
        assert_eq!(error["error"], "cannot decode");
        assert_eq!(error["faces"].as_array().unwrap().len(), 0);
    }

    #[test]
    fn landmarks_are_listed_when_known() {
        assert!(
            face_entry(&face(FaceSource::Detect), 1)
                .get("landmarks")
                .is_none()
        );
        let p = |x, y| Point { x, y };
        let marked = FaceEmotions {
            landmarks: Some(FaceLandmarks {
                left_eye: p(10.04, 20.0),
                right_eye: p(30.0, 40.0),
                nose: p(20.0, 30.0),
                mouth_left: p(12.0, 45.0),
                mouth_right: p(28.0, 45.0),
                face_probability: 0.99,
            }),
            ..face(FaceSource::Detect)
        };
        let entry = face_entry(&marked, 1);
        assert_eq!(
            entry["landmarks"].to_string(),
            r#"{"left_eye":[10.0,20.0],"right_eye":[30.0,40.0],"nose":[20.0,30.0],"mouth_left":[12.0,45.0],"mouth_right":[28.0,45.0],"roll_degrees":45.1}"#
        );
    }

    #[test]
    fn a_box_lists_its_fields_in_order_and_a_score_only_when_detected() {
        assert_eq!(
            box_entry(&face(FaceSource::Detect)).to_string(),
            r#"{"x":1,"y":2,"width":30,"height":30,"detection_score":12.5}"#
        );
        assert_eq!(
            box_entry(&face(FaceSource::WholeImage)).to_string(),
            r#"{"x":1,"y":2,"width":30,"height":30}"#
        );
    }

    #[test]
    fn builtin_models_list_their_figures() {
        let models = builtin_models().unwrap();
        let models = models.as_array().unwrap();
        assert_eq!(models.len(), BUILTIN_MODELS.len());
        assert_eq!(
            models.iter().filter(|m| m["default"] == true).count(),
            1,
            "exactly one default"
        );
        for model in models {
            let accuracy = model["private_test"]["accuracy"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&accuracy), "{model}");
        }
    }
}
