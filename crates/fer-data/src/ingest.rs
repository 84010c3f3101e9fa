//! Reading FER2013 CSV files with polars (plain or gzip'd, three layouts) and checking every row.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use polars::prelude::*;
use rayon::prelude::*;

use crate::pixels::{format_pixels, parse_pixels};
use crate::{BadRow, Dataset, Emotion, Error, IMAGE_PIXELS, Result, Split};

/// What to do with a row that fails validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RowPolicy {
    /// Stop at the first bad row with an error naming its line and field (the default).
    #[default]
    Fail,
    /// Leave bad rows out and list them in [`Loaded::skipped`].
    Skip,
}

/// Options of [`load`].
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub bad_rows: RowPolicy,
}

impl LoadOptions {
    /// Options that skip bad rows instead of failing.
    pub fn skipping_bad_rows() -> Self {
        LoadOptions {
            bad_rows: RowPolicy::Skip,
        }
    }
}

/// The column layouts of the FER2013 files in circulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Layout {
    /// The original `fer2013.csv`: `emotion,pixels,Usage`.
    Fer2013,
    /// Kaggle's `icml_face_data.csv`: `emotion, Usage, pixels` (names with leading spaces).
    IcmlFaceData,
    /// Kaggle's `train.csv`: `emotion,pixels`, every row Training.
    TrainOnly,
}

/// A loaded file: the dataset, the layout that was recognised, and the rows left out.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub dataset: Dataset,
    pub layout: Layout,
    /// Rows left out under [`RowPolicy::Skip`], in file order (empty under `Fail`).
    pub skipped: Vec<BadRow>,
}

/// Reads a FER2013 CSV file (`.csv` or gzip'd, recognised by content) into memory.
///
/// Every row is checked: the label must be an integer in 0..=6, `pixels` exactly 2304
/// integers in 0..=255, and `Usage` (when the layout has it) one of `Training`, `PublicTest`,
/// `PrivateTest`. Quirks of the real data (all-black images, duplicates) are valid rows; see
/// [`crate::Statistics`] to find them.
pub fn load(path: impl AsRef<Path>, options: &LoadOptions) -> Result<Loaded> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    if file.metadata().map_err(|e| Error::io(path, e))?.is_dir() {
        return Err(Error::Csv {
            path: path.to_path_buf(),
            message: "is a directory".into(),
        });
    }
    let frame = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0)) // every column as text: we validate ourselves
        .with_rechunk(false)
        .into_reader_with_file_handle(file)
        .finish()
        .map_err(|e| explain_polars_error(path, e))?;
    let columns = Columns::find(path, &frame)?;
    let n = frame.height();
    let mut pixels = vec![0u8; n * IMAGE_PIXELS];
    let rows: Vec<std::result::Result<(Emotion, Split), BadRow>> = {
        let emotion = text_column(path, columns.emotion)?;
        let pixel_text = text_column(path, columns.pixels)?;
        let usage = match columns.usage {
            Some(column) => text_column(path, column)?,
            None => vec![Some(Split::Training.name()); n],
        };
        pixels
            .par_chunks_mut(IMAGE_PIXELS)
            .enumerate()
            .map(|(row, out)| check_row(row, emotion[row], pixel_text[row], usage[row], out))
            .collect()
    };
    let layout = columns.layout;
    drop(frame);

    let mut skipped = Vec::new();
    let mut labels = Vec::with_capacity(n);
    let mut splits = Vec::with_capacity(n);
    let mut row_ids = Vec::with_capacity(n);
    for (row, result) in rows.into_iter().enumerate() {
        match result {
            Ok((label, split)) => {
                let kept = labels.len();
                if kept != row {
                    pixels.copy_within(
                        row * IMAGE_PIXELS..(row + 1) * IMAGE_PIXELS,
                        kept * IMAGE_PIXELS,
                    );
                }
                labels.push(label);
                splits.push(split);
                row_ids.push(u32::try_from(row).unwrap_or(u32::MAX));
            }
            Err(bad) if options.bad_rows == RowPolicy::Skip => skipped.push(bad),
            Err(bad) => {
                return Err(Error::BadRow {
                    path: path.to_path_buf(),
                    row: bad,
                });
            }
        }
    }
    pixels.truncate(labels.len() * IMAGE_PIXELS);
    if labels.is_empty() {
        return Err(Error::Empty {
            path: path.to_path_buf(),
        });
    }
    if !skipped.is_empty() {
        tracing::warn!(file = %path.display(), skipped = skipped.len(), "left out bad rows");
    }
    Ok(Loaded {
        dataset: Dataset::from_parts(pixels, labels, splits, row_ids)?,
        layout,
        skipped,
    })
}

/// The values of a text column, `None` for missing fields.
fn text_column<'a>(path: &Path, column: &'a Column) -> Result<Vec<Option<&'a str>>> {
    Ok(column
        .str()
        .map_err(|e| explain_polars_error(path, e))?
        .iter()
        .collect())
}

/// The columns of a recognised layout.
struct Columns<'a> {
    emotion: &'a Column,
    pixels: &'a Column,
    usage: Option<&'a Column>,
    layout: Layout,
}

impl<'a> Columns<'a> {
    fn find(path: &Path, frame: &'a DataFrame) -> Result<Self> {
        let names: Vec<String> = frame
            .get_column_names()
            .iter()
            .map(|name| name.trim().to_ascii_lowercase())
            .collect();
        let position = |wanted: &str| names.iter().position(|name| name == wanted);
        let missing = |column: &'static str| Error::MissingColumn {
            path: path.to_path_buf(),
            column,
            found: frame
                .get_column_names()
                .iter()
                .map(|s| format!("'{s}'"))
                .collect::<Vec<_>>()
                .join(", "),
        };
        let emotion = position("emotion").ok_or_else(|| missing("emotion"))?;
        let pixels = position("pixels").ok_or_else(|| missing("pixels"))?;
        let usage = position("usage");
        let layout = match usage {
            None => Layout::TrainOnly,
            Some(u) if u < pixels => Layout::IcmlFaceData,
            Some(_) => Layout::Fer2013,
        };
        let columns = frame.columns();
        Ok(Columns {
            emotion: &columns[emotion],
            pixels: &columns[pixels],
            usage: usage.map(|u| &columns[u]),
            layout,
        })
    }
}

/// Checks one data row (0-based) and writes its pixels into `out`.
fn check_row(
    row: usize,
    emotion: Option<&str>,
    pixels: Option<&str>,
    usage: Option<&str>,
    out: &mut [u8],
) -> std::result::Result<(Emotion, Split), BadRow> {
    let line = row + 2; // 1-based, after the header line
    let bad = |field: &'static str, message: String| BadRow {
        line,
        field,
        message,
    };
    if emotion.is_none() && pixels.is_none() {
        return Err(bad("row", "empty line".into()));
    }
    let emotion = emotion.ok_or_else(|| bad("emotion", "missing value".into()))?;
    let label = emotion
        .trim()
        .parse::<u8>()
        .ok()
        .and_then(Emotion::from_label)
        .ok_or_else(|| {
            bad(
                "emotion",
                format!("expected a label 0..6, found '{}'", clip(emotion)),
            )
        })?;
    let usage = usage.ok_or_else(|| bad("Usage", "missing value".into()))?;
    let split = Split::from_usage(usage).ok_or_else(|| {
        bad(
            "Usage",
            format!(
                "expected Training, PublicTest or PrivateTest, found '{}'",
                clip(usage)
            ),
        )
    })?;
    let pixels = pixels.ok_or_else(|| bad("pixels", "missing value".into()))?;
    parse_pixels(pixels, out).map_err(|e| bad("pixels", e.to_string()))?;
    Ok((label, split))
}

/// At most 32 characters of a field, for error messages.
fn clip(text: &str) -> String {
    let mut clipped: String = text.chars().take(32).collect();
    if clipped.len() < text.len() {
        clipped.push_str("...");
    }
    clipped
}

/// Turns a polars parse error into ours; for ragged rows, finds the line polars choked on.
fn explain_polars_error(path: &Path, error: PolarsError) -> Error {
    let message = error.to_string();
    if let Some(row) = first_ragged_line(path) {
        return Error::BadRow {
            path: path.to_path_buf(),
            row,
        };
    }
    Error::Csv {
        path: path.to_path_buf(),
        message: message.lines().next().unwrap_or_default().to_string(),
    }
}

/// The first line whose number of fields differs from the header's (slow path, errors only).
fn first_ragged_line(path: &Path) -> Option<BadRow> {
    let reader = open_maybe_gzip(path).ok()?;
    let mut lines = reader.split(b'\n');
    let header = lines.next()?.ok()?;
    let fields = count_fields(&header);
    for (i, line) in lines.enumerate() {
        let line = line.ok()?;
        let found = count_fields(&line);
        if found != fields && !(line.is_empty() || line == b"\r") {
            return Some(BadRow {
                line: i + 2,
                field: "row",
                message: format!("expected {fields} comma-separated fields, found {found}"),
            });
        }
    }
    None
}

fn count_fields(line: &[u8]) -> usize {
    let mut quoted = false;
    let mut fields = 1;
    for &b in line {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => fields += 1,
            _ => {}
        }
    }
    fields
}

fn open_maybe_gzip(path: &Path) -> std::io::Result<Box<dyn BufRead>> {
    let mut file = BufReader::new(File::open(path)?);
    let magic = file.fill_buf()?;
    if magic.starts_with(&[0x1f, 0x8b]) {
        let decoder = flate2::bufread::MultiGzDecoder::new(file);
        Ok(Box::new(BufReader::new(decoder)))
    } else {
        Ok(Box::new(file))
    }
}

/// Writes `dataset` as a FER2013 CSV (`emotion,pixels,Usage`, the original layout) with
/// polars; gzip'd when `path` ends in `.gz`. Rows are written in dataset order.
pub fn write_csv(dataset: &Dataset, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let labels: Vec<i64> = dataset
        .labels()
        .iter()
        .map(|e| i64::from(e.label()))
        .collect();
    let pixels: Vec<String> = (0..dataset.len())
        .into_par_iter()
        .map(|i| format_pixels(dataset.image(i)))
        .collect();
    let usage: Vec<&str> = dataset.splits().iter().map(|s| s.name()).collect();
    let csv_error = |e: PolarsError| Error::Csv {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut frame = DataFrame::new_infer_height(vec![
        Column::new("emotion".into(), labels),
        Column::new("pixels".into(), pixels),
        Column::new("Usage".into(), usage),
    ])
    .map_err(csv_error)?;
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let gzip = path.extension().is_some_and(|ext| ext == "gz");
    let mut sink: Box<dyn std::io::Write> = if gzip {
        Box::new(flate2::write::GzEncoder::new(
            file,
            flate2::Compression::fast(),
        ))
    } else {
        Box::new(std::io::BufWriter::new(file))
    };
    CsvWriter::new(&mut sink)
        .include_header(true)
        .finish(&mut frame)
        .map_err(csv_error)?;
    sink.flush().map_err(|e| Error::io(path, e))?;
    drop(sink);
    Ok(())
}
