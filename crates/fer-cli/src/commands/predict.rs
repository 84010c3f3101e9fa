//! `fer predict`: emotions of faces in image files, with per-file errors that never stop a batch.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use fer_data::Emotion;
use fer_data::face_image::{face_pixels, is_image_path, load_image};
use fer_model::TrainedModel;
use fer_model::eval::{argmax, predict_faces};
use rayon::prelude::*;
use serde::Serialize;
use serde_json::json;

use crate::shared::device::device;
use crate::shared::progress::progress_bar;

/// Predict the emotions of the faces in photos (PNG, JPEG, BMP, GIF, WebP, TIFF, PNM) of any
/// size: every face is found (SeetaFace frontal detector, built in), cropped square with a
/// margin, resized to 48x48 and normalised with the model's own normaliser. With --no-detect
/// each image is taken as one pre-cropped face (its centred square), like FER2013's.
///
/// Folders are searched recursively for image files. A file that cannot be read is reported
/// and the others still run; the exit status is then 1. A photo without a face is not an
/// error: it is listed with no faces.
///
/// Example: fer predict --model runs/seed photos/ --annotate annotated/ --top 3
#[derive(clap::Args)]
pub struct PredictArgs {
    /// Run directory (uses its best.safetensors) or a .safetensors file inside one.
    #[arg(long)]
    pub model: PathBuf,
    /// Image files or folders.
    #[arg(required = true, value_name = "IMAGE_OR_DIR")]
    pub inputs: Vec<PathBuf>,
    /// Print one JSON document: every file with its faces, boxes and probabilities.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print CSV: one row per face with the seven probabilities.
    #[arg(long)]
    pub csv: bool,
    /// How many emotions to list per face, most likely first (text and JSON output).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=7))]
    pub top: u8,
    /// Images per forward pass.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..))]
    pub batch_size: u16,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Take each image as one pre-cropped face (its centred square) instead of detecting faces.
    #[arg(long)]
    pub no_detect: bool,
    /// Draw the boxes and top emotions on the photos: a .png/.jpg file for one input image,
    /// else a folder that receives one annotated PNG per photo.
    #[arg(long, value_name = "PATH")]
    pub annotate: Option<PathBuf>,
    /// Smallest face to find, in pixels (at least 20; below 40 detection is slower).
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u32).range(20..))]
    pub min_face: u32,
    /// Margin added around each detected face box before cropping, as a share of its side.
    #[arg(long, default_value_t = fer_detect::DEFAULT_MARGIN)]
    pub margin: f32,
}

/// Where in the image a face was taken from, in the image's pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FaceBox {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    /// The detector's score (SeetaFace's, not a probability); absent with --no-detect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detection_score: Option<f32>,
}

/// One face of one image and the model's probabilities for it.
#[derive(Debug, Clone)]
pub struct FacePrediction {
    pub face_box: FaceBox,
    pub probabilities: [f32; 7],
}

/// What became of one input file.
#[derive(Debug, Clone)]
pub struct ImagePrediction {
    pub file: PathBuf,
    pub result: Result<Vec<FacePrediction>, String>,
}

/// The files to read: the given files as they are, folders searched recursively for images
/// (sorted, so output order is stable). Paths that do not exist are kept: reading them fails
/// per file with a clear message.
pub fn collect_inputs(inputs: &[PathBuf]) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            out.push(dir.to_path_buf()); // reported when read
            return;
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            if path.is_dir() {
                walk(&path, out);
            } else if is_image_path(&path) {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let before = files.len();
            walk(input, &mut files);
            if files.len() == before {
                tracing::warn!("{}: no image files in this folder", input.display());
            }
        } else {
            files.push(input.clone());
        }
    }
    files
}

/// How faces are taken from an image.
enum FaceSource {
    /// Every face the detector finds, cropped square with a margin.
    Detect {
        detector: fer_detect::FaceDetector,
        margin: f32,
    },
    /// The whole image is one face: its centred square (pre-cropped faces).
    WholeImage,
}

impl FaceSource {
    /// The faces of one image file with the boxes they were taken from.
    fn faces_of(&self, path: &Path) -> Result<Vec<(FaceBox, Vec<u8>)>, String> {
        if path.is_dir() {
            return Err(format!("{}: cannot read this folder", path.display()));
        }
        // The message with its causes, as `fer` prints errors.
        let image = load_image(path)
            .map_err(|e| format!("{:#}", anyhow::Error::from(e)))?
            .to_luma8();
        match self {
            FaceSource::WholeImage => {
                let (width, height) = image.dimensions();
                let side = width.min(height);
                let face_box = FaceBox {
                    x: (width - side) / 2,
                    y: (height - side) / 2,
                    width: side,
                    height: side,
                    detection_score: None,
                };
                Ok(vec![(face_box, face_pixels(&image))])
            }
            FaceSource::Detect { detector, margin } => Ok(detector
                .detect(&image)
                .into_iter()
                .map(|face| {
                    let crop = fer_detect::crop_face(&image, &face, *margin);
                    let face_box = FaceBox {
                        x: face.x,
                        y: face.y,
                        width: face.width,
                        height: face.height,
                        detection_score: Some(face.score),
                    };
                    (face_box, crop.into_raw())
                })
                .collect()),
        }
    }
}

/// Draws the faces' boxes and top emotions on the photo and saves it.
fn write_annotated(prediction: &ImagePrediction, out: &Path) -> anyhow::Result<()> {
    let Ok(faces) = &prediction.result else {
        return Ok(());
    };
    let photo = load_image(&prediction.file)?.to_rgb8();
    let annotations: Vec<fer_detect::Annotation> = faces
        .iter()
        .map(|face| {
            let best = argmax(&face.probabilities);
            let b = face.face_box;
            let detected = fer_detect::FaceBox {
                x: b.x,
                y: b.y,
                width: b.width,
                height: b.height,
                score: b.detection_score.unwrap_or(0.0),
            };
            fer_detect::Annotation::new(
                detected,
                Emotion::ALL[best].name().to_lowercase(),
                face.probabilities[best],
            )
            .with_color(fer_detect::PALETTE[best % fer_detect::PALETTE.len()])
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

/// Where the annotated copy of `file` goes: `target` itself for a single input image, else
/// `target/<stem>.png` (with `-2`, `-3`, ... when stems repeat).
fn annotated_path(target: &Path, file: &Path, single: bool, used: &mut Vec<PathBuf>) -> PathBuf {
    if single && target.extension().is_some() && !target.is_dir() {
        return target.to_path_buf();
    }
    let stem = file
        .file_stem()
        .map_or_else(|| "image".to_string(), |s| s.to_string_lossy().into_owned());
    let mut candidate = target.join(format!("{stem}.png"));
    let mut n = 2;
    while used.contains(&candidate) {
        candidate = target.join(format!("{stem}-{n}.png"));
        n += 1;
    }
    used.push(candidate.clone());
    candidate
}

pub fn run(args: &PredictArgs, quiet: bool) -> anyhow::Result<()> {
    let device = device(&args.device)?;
    let trained = TrainedModel::open(&args.model, &device)
        .with_context(|| format!("cannot load model {}", args.model.display()))?;
    let files = collect_inputs(&args.inputs);
    anyhow::ensure!(!files.is_empty(), "no image files to read");
    let source = if args.no_detect {
        FaceSource::WholeImage
    } else {
        anyhow::ensure!(
            (0.0..=fer_detect::MAX_MARGIN).contains(&args.margin),
            "--margin must be between 0 and {}",
            fer_detect::MAX_MARGIN
        );
        let options = fer_detect::DetectorOptions {
            min_face_size: args.min_face,
            ..fer_detect::DetectorOptions::default()
        };
        FaceSource::Detect {
            detector: fer_detect::FaceDetector::new(options)?,
            margin: args.margin,
        }
    };
    let single = files.len() == 1;
    let mut annotated_paths = Vec::new();

    let format = if args.json {
        Format::Json
    } else if args.csv {
        Format::Csv
    } else {
        Format::Text
    };
    let bar = progress_bar(files.len(), quiet, "images");
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if format == Format::Csv {
        writeln!(out, "{}", csv_header())?;
    }
    let mut json_images = Vec::new();
    let mut failed = 0usize;
    let chunk_size = usize::from(args.batch_size);
    for chunk in files.chunks(chunk_size) {
        let decoded: Vec<_> = chunk.par_iter().map(|path| source.faces_of(path)).collect();
        let pixels: Vec<u8> = decoded
            .iter()
            .flat_map(|faces| faces.iter().flatten().flat_map(|(_, p)| p.iter().copied()))
            .collect();
        let mut probabilities = predict_faces(
            trained.model.as_ref(),
            &trained.normalizer,
            &pixels,
            &device,
            chunk_size,
        )?
        .into_iter();
        for (path, faces) in chunk.iter().zip(decoded) {
            let result = faces.map(|faces| {
                faces
                    .into_iter()
                    .map(|(face_box, _)| FacePrediction {
                        face_box,
                        probabilities: probabilities.next().expect("one row per face"),
                    })
                    .collect::<Vec<_>>()
            });
            let prediction = ImagePrediction {
                file: path.clone(),
                result,
            };
            if let Err(message) = &prediction.result {
                failed += 1;
                bar.suspend(|| tracing::error!("{message}"));
            }
            if let Some(target) = &args.annotate {
                let out_path = annotated_path(target, path, single, &mut annotated_paths);
                if let Err(error) = write_annotated(&prediction, &out_path) {
                    failed += 1;
                    bar.suspend(|| tracing::error!("{error:#}"));
                }
            }
            match format {
                Format::Text => write!(out, "{}", text_lines(&prediction, args.top))?,
                Format::Csv => write!(out, "{}", csv_rows(&prediction))?,
                Format::Json => json_images.push(json_image(&prediction, args.top)),
            }
        }
        out.flush()?;
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    if format == Format::Json {
        let document = json!({
            "model": args.model.display().to_string(),
            "images": json_images,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&document)?)?;
    }
    out.flush()?;
    anyhow::ensure!(
        failed == 0,
        "{failed} of {} file(s) could not be read",
        files.len()
    );
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Text,
    Json,
    Csv,
}

/// Classes sorted by probability, most likely first (ties keep the class order).
fn ranked(probabilities: &[f32; 7]) -> Vec<(Emotion, f32)> {
    let mut ranked: Vec<(Emotion, f32)> = Emotion::ALL
        .iter()
        .copied()
        .zip(probabilities.iter().copied())
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked
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
        let listed: Vec<String> = ranked(&face.probabilities)
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
                let best = argmax(&face.probabilities);
                let _ = write!(
                    rows,
                    "{file},{},{},{},{},{},{},{:.6}",
                    k + 1,
                    b.x,
                    b.y,
                    b.width,
                    b.height,
                    Emotion::ALL[best].name().to_lowercase(),
                    face.probabilities[best]
                );
                for p in face.probabilities {
                    let _ = write!(rows, ",{p:.6}");
                }
                rows.push_str(",\n");
            }
        }
    }
    rows
}

fn json_image(prediction: &ImagePrediction, top: u8) -> serde_json::Value {
    let file = prediction.file.display().to_string();
    match &prediction.result {
        Err(message) => json!({"file": file, "error": message, "faces": []}),
        Ok(faces) => {
            let faces: Vec<_> = faces
                .iter()
                .map(|face| {
                    let probabilities: serde_json::Map<String, serde_json::Value> = Emotion::ALL
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
                        "box": face.face_box,
                        "emotion": ranked[0].0.name().to_lowercase(),
                        "score": ranked[0].1,
                        "top": top,
                        "probabilities": probabilities,
                    })
                })
                .collect();
            json!({"file": file, "error": null, "faces": faces})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prediction(result: Result<Vec<FacePrediction>, String>) -> ImagePrediction {
        ImagePrediction {
            file: PathBuf::from("dir/a,b.png"),
            result,
        }
    }

    fn face() -> FacePrediction {
        FacePrediction {
            face_box: FaceBox {
                x: 1,
                y: 2,
                width: 30,
                height: 30,
                detection_score: Some(12.5),
            },
            probabilities: [0.05, 0.0, 0.05, 0.6, 0.1, 0.05, 0.15],
        }
    }

    #[test]
    fn ranking_puts_the_most_likely_first() {
        let ranked = ranked(&face().probabilities);
        assert_eq!(ranked[0].0, Emotion::Happy);
        assert_eq!(ranked[1].0, Emotion::Neutral);
        assert_eq!(ranked[2].0, Emotion::Sad);
    }

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
}
