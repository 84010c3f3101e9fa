//! `--annotate`: copies of the photos with each face's box and most likely emotion drawn on.

use std::path::{Path, PathBuf};

use anyhow::Context;
use fer_data::Emotion;
use fer_data::face_image::load_image;
use fer_detect::{Annotation, PALETTE};
use fer_model::eval::argmax;

use super::prediction::ImagePrediction;

/// Writes annotated copies: to the `--annotate` file for a single input image, else into the
/// `--annotate` folder as `<stem>.png` (with `-2`, `-3`, ... when stems repeat).
pub struct Annotator {
    target: PathBuf,
    single: bool,
    used: Vec<PathBuf>,
}

impl Annotator {
    /// Annotates into `target`; `single` when there is one input image.
    pub fn new(target: &Path, single: bool) -> Self {
        Annotator {
            target: target.to_path_buf(),
            single,
            used: Vec::new(),
        }
    }

    /// Draws the faces of `prediction` on its photo and saves it; a file that could not be
    /// read gets no copy.
    pub fn annotate(&mut self, prediction: &ImagePrediction) -> anyhow::Result<()> {
        let out = self.path_for(&prediction.file);
        write_annotated(prediction, &out)
    }

    /// Where the annotated copy of `file` goes.
    fn path_for(&mut self, file: &Path) -> PathBuf {
        let target = &self.target;
        if self.single && target.extension().is_some() && !target.is_dir() {
            return target.clone();
        }
        let stem = file
            .file_stem()
            .map_or_else(|| "image".to_string(), |s| s.to_string_lossy().into_owned());
        let mut candidate = target.join(format!("{stem}.png"));
        let mut n = 2;
        while self.used.contains(&candidate) {
            candidate = target.join(format!("{stem}-{n}.png"));
            n += 1;
        }
        self.used.push(candidate.clone());
        candidate
    }
}

/// Draws the faces' boxes and top emotions on the photo and saves it.
fn write_annotated(prediction: &ImagePrediction, out: &Path) -> anyhow::Result<()> {
    let Ok(faces) = &prediction.result else {
        return Ok(());
    };
    let photo = load_image(&prediction.file)?.to_rgb8();
    let annotations: Vec<Annotation> = faces
        .iter()
        .map(|face| {
            let best = argmax(&face.emotions.probabilities);
            Annotation::new(
                face.face_box,
                Emotion::ALL[best].name().to_lowercase(),
                face.emotions.probabilities[best],
            )
            .with_color(PALETTE[best % PALETTE.len()])
            .with_points(face.landmarks.iter().flat_map(|m| m.points()))
        })
        .collect();
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    fer_detect::annotate(&photo, &annotations)
        .save(out)
        .with_context(|| format!("cannot write {}", out.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_go_to_the_file_for_one_image_and_get_distinct_names_in_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("out.png");
        let mut single = Annotator::new(&file, true);
        assert_eq!(single.path_for(Path::new("photos/a.jpg")), file);

        let folder = dir.path().join("annotated");
        let mut many = Annotator::new(&folder, false);
        assert_eq!(many.path_for(Path::new("x/a.jpg")), folder.join("a.png"));
        assert_eq!(many.path_for(Path::new("y/a.png")), folder.join("a-2.png"));
        assert_eq!(many.path_for(Path::new("z/a.gif")), folder.join("a-3.png"));
        assert_eq!(many.path_for(Path::new("b.jpg")), folder.join("b.png"));
    }
}
