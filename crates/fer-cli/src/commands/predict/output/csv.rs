//! The CSV output: a header, then one row per face (box, most likely emotion, the seven
//! probabilities), one row with face 0 for a file without faces, one row with the error for a
//! file that could not be read.

use std::fmt::Write as _;
use std::io::Write;

use fer_data::Emotion;
use fer_model::eval::argmax;

use super::Printer;
use crate::commands::predict::prediction::ImagePrediction;

/// Prints CSV rows as files come.
pub struct CsvPrinter;

impl Printer for CsvPrinter {
    fn begin(&mut self, out: &mut dyn Write) -> anyhow::Result<()> {
        writeln!(out, "{}", csv_header())?;
        Ok(())
    }

    fn image(&mut self, out: &mut dyn Write, prediction: &ImagePrediction) -> anyhow::Result<()> {
        write!(out, "{}", csv_rows(prediction))?;
        Ok(())
    }
}

fn csv_header() -> String {
    let mut header = String::from("file,face,x,y,width,height,emotion,score");
    for emotion in Emotion::ALL {
        let _ = write!(header, ",p_{}", emotion.name().to_lowercase());
    }
    header.push_str(",error");
    header
}

/// Quotes a CSV field when it holds a comma, quote or line break.
fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

fn csv_rows(prediction: &ImagePrediction) -> String {
    let file = csv_field(&prediction.file.display().to_string());
    let mut rows = String::new();
    match &prediction.result {
        Err(message) => {
            let _ = writeln!(rows, "{file}{}{}", ",".repeat(15), csv_field(message));
        }
        Ok(faces) if faces.is_empty() => {
            // No face found: face number 0, nothing else.
            let _ = writeln!(rows, "{file},0{}", ",".repeat(14));
        }
        Ok(faces) => {
            for (k, face) in faces.iter().enumerate() {
                let b = face.face_box;
                let best = argmax(&face.emotions.probabilities);
                let _ = write!(
                    rows,
                    "{file},{},{},{},{},{},{},{:.6}",
                    k + 1,
                    b.x,
                    b.y,
                    b.width,
                    b.height,
                    Emotion::ALL[best].name().to_lowercase(),
                    face.emotions.probabilities[best]
                );
                for p in face.emotions.probabilities {
                    let _ = write!(rows, ",{p:.6}");
                }
                rows.push_str(",\n");
            }
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::predict::prediction::fixtures::{face, prediction};

    /// Splits one CSV line, honouring quotes.
    fn split_csv(line: &str) -> Vec<String> {
        let (mut fields, mut field, mut quoted) = (Vec::new(), String::new(), false);
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '"' if quoted && chars.peek() == Some(&'"') => {
                    field.push('"');
                    chars.next();
                }
                '"' => quoted = !quoted,
                ',' if !quoted => fields.push(std::mem::take(&mut field)),
                _ => field.push(c),
            }
        }
        fields.push(field);
        fields
    }

    #[test]
    fn csv_rows_have_as_many_fields_as_the_header() {
        let header = split_csv(&csv_header());
        assert_eq!(header.len(), 16);
        let ok = split_csv(csv_rows(&prediction(Ok(vec![face()]))).trim_end());
        assert_eq!(ok.len(), header.len(), "{ok:?}");
        assert_eq!(ok[0], "dir/a,b.png");
        assert_eq!(ok[6], "happy");
        assert_eq!(ok[11], "0.600000");
        assert_eq!(ok[15], "");
        let err = split_csv(csv_rows(&prediction(Err("bad \"file\", sorry".into()))).trim_end());
        assert_eq!(err.len(), header.len(), "{err:?}");
        assert_eq!(err[15], "bad \"file\", sorry");
        assert!(err[1..15].iter().all(String::is_empty));
        let none = split_csv(csv_rows(&prediction(Ok(vec![]))).trim_end());
        assert_eq!(none.len(), header.len(), "{none:?}");
        assert_eq!(none[1], "0");
    }
}
