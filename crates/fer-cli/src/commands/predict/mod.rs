//! `fer predict`: emotions of faces in image files, with per-file errors that never stop a batch.
//!
//! The input files ([`inputs`]) are taken a batch at a time ([`batch`]): the faces of each
//! file ([`faces`]) go through the model together, then each file's result ([`prediction`])
//! is drawn on its photo ([`annotate`]) and printed in the chosen format ([`output`]).

mod annotate;
mod batch;
mod faces;
mod inputs;
mod output;
mod prediction;

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::mpsc;

use fer::FaceSource;

use crate::shared::progress::progress_bar;
use crate::shared::recognizer::RecognizerArgs;
use annotate::Annotator;
use output::OutputFormat;

/// Predict the emotions of the faces in photos (PNG, JPEG, BMP, GIF, WebP, TIFF, PNM) of any
/// size: every face is found (SeetaFace frontal detector, built in), cropped square with a
/// margin, resized to 48x48 and normalised with the model's own normaliser. With --no-detect
/// each image is taken as one pre-cropped face (its centred square), like FER2013's.
///
/// Without --model, the default built-in model classifies (`fer models` lists them).
///
/// Folders are searched recursively for image files. A file that cannot be read is reported
/// and the others still run; the exit status is then 1. A photo without a face is not an
/// error: it is listed with no faces.
///
/// Example: fer predict photos/ --annotate annotated/ --top 3
///
/// Example: fer predict --model runs/cpu/cpu-vgg-bn photo.jpg --json
#[derive(clap::Args)]
pub struct PredictArgs {
    /// Image files or folders.
    #[arg(required = true, value_name = "IMAGE_OR_DIR")]
    pub inputs: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text, conflicts_with_all = ["json", "csv"])]
    pub format: OutputFormat,
    /// Print one JSON document: every file with its faces, boxes and probabilities (--format
    /// json).
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print CSV: one row per face with the seven probabilities (--format csv).
    #[arg(long)]
    pub csv: bool,
    /// How many emotions to list per face, most likely first (text and JSON output).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=7))]
    pub top: u8,
    #[command(flatten)]
    pub recognizer: RecognizerArgs,
    /// Take each image as one pre-cropped face (its centred square) instead of detecting faces.
    #[arg(long)]
    pub no_detect: bool,
    /// Draw the boxes, top emotions and landmarks (eyes, nose, mouth corners) on the photos: a
    /// .png/.jpg file for one input image, else a folder that receives one annotated PNG per
    /// photo.
    #[arg(long, value_name = "PATH")]
    pub annotate: Option<PathBuf>,
}

impl PredictArgs {
    /// The output format: --format, or its shorthands --json and --csv.
    fn output_format(&self) -> OutputFormat {
        if self.json {
            OutputFormat::Json
        } else if self.csv {
            OutputFormat::Csv
        } else {
            self.format
        }
    }

    /// Where faces come from: the detector, or the whole image.
    fn face_source(&self) -> FaceSource {
        if self.no_detect {
            FaceSource::WholeImage
        } else {
            FaceSource::Detect
        }
    }
}

/// Files per batch read ahead of the one being classified.
const BATCHES_AHEAD: usize = 1;

pub fn run(args: &PredictArgs, quiet: bool) -> anyhow::Result<()> {
    let recognizer = args.recognizer.open()?;
    let files = inputs::collect_inputs(&args.inputs);
    anyhow::ensure!(!files.is_empty(), "no image files to read");
    let source = args.face_source();
    let mut annotator = args
        .annotate
        .as_deref()
        .map(|target| Annotator::new(target, files.len() == 1));
    let mut printer = args
        .output_format()
        .printer(args.top, &args.recognizer.model.to_string());

    let bar = progress_bar(files.len(), quiet, "images");
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    printer.begin(&mut out)?;
    let mut failed = 0usize;
    let mut faceless = 0usize;
    // Decoding and detection of the next batch overlap the classification of this one.
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let (sender, batches) = mpsc::sync_channel(BATCHES_AHEAD);
        let recognizer = &recognizer;
        let files = &files;
        scope.spawn(move || {
            for chunk in files.chunks(args.recognizer.batch_size) {
                let decoded = batch::read_faces(chunk, source, recognizer);
                if sender.send((chunk.len(), decoded)).is_err() {
                    return; // the printer stopped (an error): read no further
                }
            }
        });
        for (count, decoded) in batches {
            for prediction in batch::classify(decoded, recognizer)? {
                match &prediction.result {
                    Err(message) => {
                        failed += 1;
                        bar.suspend(|| tracing::error!("{message}"));
                    }
                    Ok(faces) if faces.is_empty() => faceless += 1,
                    Ok(_) => {}
                }
                if let Some(annotator) = &mut annotator
                    && let Err(error) = annotator.annotate(&prediction)
                {
                    failed += 1;
                    bar.suspend(|| tracing::error!("{error:#}"));
                }
                printer.image(&mut out, &prediction)?;
            }
            out.flush()?;
            bar.inc(count as u64);
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    printer.finish(&mut out)?;
    out.flush()?;
    if faceless > 0 && source == FaceSource::Detect {
        // Face crops that fill the image are often missed by the detector.
        tracing::warn!(
            "no face found in {faceless} of {} image(s); for images that are already face \
             crops (like FER2013's), --no-detect classifies each whole image",
            files.len()
        );
    }
    anyhow::ensure!(
        failed == 0,
        "{failed} of {} file(s) could not be read",
        files.len()
    );
    Ok(())
}
