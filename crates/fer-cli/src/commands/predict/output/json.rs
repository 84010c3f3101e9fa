//! The JSON output: one document, written after the last file, listing every file with its
//! faces (box, detector score, top emotions, all seven probabilities) or its error.

use std::io::Write;

use serde_json::Value;

use super::Printer;
use crate::commands::predict::prediction::ImagePrediction;

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
        let document =
            fer::json::prediction_document(&self.model, std::mem::take(&mut self.images));
        writeln!(out, "{}", serde_json::to_string_pretty(&document)?)?;
        Ok(())
    }
}

fn json_image(prediction: &ImagePrediction, top: u8) -> Value {
    let file = prediction.file.display().to_string();
    let faces = prediction.result.as_deref().map_err(String::as_str);
    fer::json::image_entry(&file, faces, usize::from(top))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::predict::prediction::fixtures::{face, prediction};

    #[test]
    fn json_lists_each_file_with_its_faces_or_its_error() {
        let value = json_image(&prediction(Ok(vec![face()])), 2);
        assert_eq!(value["file"], "dir/a,b.png");
        let face = &value["faces"][0];
        assert_eq!(face["emotion"], "happy");
        assert_eq!(face["box"]["detection_score"], 12.5);
        assert_eq!(face["top"].as_array().unwrap().len(), 2);
        let error = json_image(&prediction(Err("cannot decode".into())), 2);
        assert_eq!(error["error"], "cannot decode");
        assert_eq!(error["faces"].as_array().unwrap().len(), 0);
    }
}
