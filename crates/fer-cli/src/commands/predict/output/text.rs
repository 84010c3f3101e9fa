//! The text output: one line per face with its most likely emotions, or "no face found".

use std::fmt::Write as _;
use std::io::Write;

use super::Printer;
use crate::commands::predict::prediction::ImagePrediction;

/// Prints `file: Happy 81.2%, Neutral 9.1%, ...`; with several faces in a file, one line per
/// face with its box. Unreadable files print nothing here (they are reported on stderr).
pub struct TextPrinter {
    top: u8,
}

impl TextPrinter {
    /// Lists the `top` most likely emotions per face.
    pub fn new(top: u8) -> Self {
        TextPrinter { top }
    }
}

impl Printer for TextPrinter {
    fn image(&mut self, out: &mut dyn Write, prediction: &ImagePrediction) -> anyhow::Result<()> {
        write!(out, "{}", text_lines(prediction, self.top))?;
        Ok(())
    }
}

fn text_lines(prediction: &ImagePrediction, top: u8) -> String {
    let mut text = String::new();
    let Ok(faces) = &prediction.result else {
        return text; // errors go to stderr
    };
    let file = prediction.file.display();
    if faces.is_empty() {
        let _ = writeln!(text, "{file}: no face found");
    }
    for (k, face) in faces.iter().enumerate() {
        let listed: Vec<String> = face
            .emotions
            .ranked()
            .into_iter()
            .take(usize::from(top))
            .map(|(emotion, p)| format!("{} {:.1}%", emotion.name(), 100.0 * p))
            .collect();
        if faces.len() == 1 {
            let _ = writeln!(text, "{file}: {}", listed.join(", "));
        } else {
            let b = face.face_box;
            let _ = writeln!(
                text,
                "{file} face {} at ({}, {}) {}x{}: {}",
                k + 1,
                b.x,
                b.y,
                b.width,
                b.height,
                listed.join(", ")
            );
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::predict::prediction::fixtures::{face, prediction};

    #[test]
    fn one_line_per_face_with_the_top_emotions() {
        assert_eq!(
            text_lines(&prediction(Ok(vec![face()])), 2),
            "dir/a,b.png: Happy 60.0%, Neutral 15.0%\n"
        );
        assert_eq!(
            text_lines(&prediction(Ok(vec![face(), face()])), 1),
            "dir/a,b.png face 1 at (1, 2) 30x30: Happy 60.0%\n\
             dir/a,b.png face 2 at (1, 2) 30x30: Happy 60.0%\n"
        );
        assert_eq!(
            text_lines(&prediction(Ok(vec![])), 3),
            "dir/a,b.png: no face found\n"
        );
        assert_eq!(text_lines(&prediction(Err("unreadable".into())), 3), "");
    }
}
