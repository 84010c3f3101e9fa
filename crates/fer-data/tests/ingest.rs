//! Loading FER CSV files: the three layouts, gzip, and a clear error for every kind of bad row.

use std::io::Write;
use std::path::{Path, PathBuf};

use fer_data::pixels::format_pixels;
use fer_data::synthetic::{SyntheticConfig, generate};
use fer_data::{
    Dataset, Emotion, Error, IMAGE_PIXELS, Layout, LoadOptions, Split, load, write_csv,
};

fn csv_text(header: &str, rows: &[String]) -> String {
    let mut text = format!("{header}\n");
    for row in rows {
        text.push_str(row);
        text.push('\n');
    }
    text
}

fn fer_rows(data: &Dataset) -> Vec<String> {
    data.iter()
        .map(|s| {
            format!(
                "{},{},{}",
                s.label.label(),
                format_pixels(s.pixels),
                s.split
            )
        })
        .collect()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The error of loading `path` as `fer` prints it: the message, then each source after ": ".
fn load_err(path: &Path) -> String {
    chain_text(&load(path, &LoadOptions::default()).unwrap_err())
}

fn chain_text(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[test]
fn reads_what_write_csv_wrote_plain_and_gzipped() {
    let data = generate(&SyntheticConfig::fer_like(5, [60, 20, 20]));
    let dir = tempfile::tempdir().unwrap();
    for name in ["fer2013.csv", "fer2013.csv.gz"] {
        let path = dir.path().join(name);
        write_csv(&data, &path).unwrap();
        let loaded = load(&path, &LoadOptions::default()).unwrap();
        assert_eq!(loaded.layout, Layout::Fer2013);
        assert!(loaded.skipped.is_empty());
        assert_eq!(loaded.dataset, data, "{name}");
    }
    let gz = std::fs::read(dir.path().join("fer2013.csv.gz")).unwrap();
    assert_eq!(&gz[..2], &[0x1f, 0x8b], "written gzip'd");
}

#[test]
fn written_csv_is_byte_for_byte_the_fer2013_format() {
    let data = generate(&SyntheticConfig::small(2))
        .subset(&[0, 150, 200])
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.csv");
    write_csv(&data, &path).unwrap();
    let expected = csv_text("emotion,pixels,Usage", &fer_rows(&data));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), expected);
}

#[test]
fn reads_the_kaggle_icml_and_train_layouts() {
    let data = generate(&SyntheticConfig::small(9));
    let dir = tempfile::tempdir().unwrap();
    let icml: Vec<String> = data
        .iter()
        .map(|s| {
            format!(
                "{},{},{}",
                s.label.label(),
                s.split,
                format_pixels(s.pixels)
            )
        })
        .collect();
    let path = write(
        dir.path(),
        "icml_face_data.csv",
        &csv_text("emotion, Usage, pixels", &icml),
    );
    let loaded = load(&path, &LoadOptions::default()).unwrap();
    assert_eq!(loaded.layout, Layout::IcmlFaceData);
    assert_eq!(loaded.dataset, data);

    let train: Vec<String> = data
        .iter()
        .map(|s| format!("{},{}", s.label.label(), format_pixels(s.pixels)))
        .collect();
    let path = write(dir.path(), "train.csv", &csv_text("emotion,pixels", &train));
    let loaded = load(&path, &LoadOptions::default()).unwrap();
    assert_eq!(loaded.layout, Layout::TrainOnly);
    assert_eq!(loaded.dataset.len(), data.len());
    assert!(
        loaded
            .dataset
            .splits()
            .iter()
            .all(|&s| s == Split::Training)
    );
    assert_eq!(loaded.dataset.pixels(), data.pixels());
    assert_eq!(loaded.dataset.labels(), data.labels());
}

/// Four good rows, then `bad` as the data row on line 4 (after header, rows on lines 2, 3).
fn file_with_bad_line_4(dir: &Path, bad: &str) -> PathBuf {
    let data = generate(&SyntheticConfig::small(4));
    let mut rows = fer_rows(&data)[..4].to_vec();
    rows.insert(2, bad.to_string());
    write(dir, "bad.csv", &csv_text("emotion,pixels,Usage", &rows))
}

#[test]
fn every_kind_of_bad_row_names_file_line_field_and_finding() {
    let good = format_pixels(&[9u8; IMAGE_PIXELS]);
    let short = format_pixels(&[9u8; 2303]);
    let with_bad_value = good.replacen("9", "300", 1);
    let with_word = good.replacen("9", "nine", 1);
    let cases = [
        (
            format!("0,{short},Training"),
            "line 4: pixels: expected 2304 values, found 2303",
        ),
        (
            format!("0,{good} 9,Training"),
            "line 4: pixels: expected 2304 values, found 2305",
        ),
        (
            format!("0,{with_bad_value},Training"),
            "line 4: pixels: value 1: '300' is not an integer in 0..255",
        ),
        (
            format!("0,{with_word},Training"),
            "line 4: pixels: value 1: 'nine' is not an integer in 0..255",
        ),
        ("0,,Training".to_string(), "line 4: pixels: missing value"),
        (
            format!("7,{good},Training"),
            "line 4: emotion: expected a label 0..6, found '7'",
        ),
        (
            format!("-1,{good},Training"),
            "line 4: emotion: expected a label 0..6, found '-1'",
        ),
        (
            format!("happy,{good},Training"),
            "line 4: emotion: expected a label 0..6, found 'happy'",
        ),
        (
            format!(",{good},Training"),
            "line 4: emotion: missing value",
        ),
        (
            format!("3,{good},Validation"),
            "line 4: Usage: expected Training, PublicTest or PrivateTest, found 'Validation'",
        ),
        (format!("3,{good},"), "line 4: Usage: missing value"),
        (format!("3,{good}"), "line 4: Usage: missing value"),
        (
            format!("3,{good},Training,extra"),
            "line 4: row: expected 3 comma-separated fields, found 4",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (bad, expected) in cases {
        let path = file_with_bad_line_4(dir.path(), &bad);
        let err = load_err(&path);
        assert!(err.contains(expected), "expected '{expected}' in '{err}'");
        assert!(err.starts_with(&path.display().to_string()), "{err}");
    }
}

#[test]
fn skipping_reports_the_bad_lines_and_keeps_the_rest() {
    let data = generate(&SyntheticConfig::small(4));
    let mut rows = fer_rows(&data)[..6].to_vec();
    rows[1] = format!("9,{}", rows[1].split_once(',').unwrap().1);
    rows[4] = format!("0,{},Training", format_pixels(&[5u8; 2303]));
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "some-bad.csv",
        &csv_text("emotion,pixels,Usage", &rows),
    );
    let loaded = load(&path, &LoadOptions::skipping_bad_rows()).unwrap();
    let lines: Vec<usize> = loaded.skipped.iter().map(|b| b.line).collect();
    assert_eq!(lines, vec![3, 6]);
    assert_eq!(loaded.skipped[0].field, "emotion");
    assert_eq!(
        loaded.skipped[1].message,
        "expected 2304 values, found 2303"
    );
    assert_eq!(loaded.dataset.rows(), &[0, 2, 3, 5]);
    let expected = data.subset(&[0, 2, 3, 5]).unwrap();
    assert_eq!(loaded.dataset.pixels(), expected.pixels());
    assert_eq!(loaded.dataset.labels(), expected.labels());
}

/// A missing file's message names it; the system's error is its source, said once.
#[test]
fn a_missing_file_names_the_path_and_leaves_the_cause_to_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.csv");
    let err = load(&missing, &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert_eq!(err.to_string(), missing.display().to_string());
    let source = std::error::Error::source(&err).expect("the I/O error");
    assert_eq!(
        source.downcast_ref::<std::io::Error>().map(|e| e.kind()),
        Some(std::io::ErrorKind::NotFound)
    );
    let text = chain_text(&err);
    assert_eq!(text, format!("{}: {source}", missing.display()));
    assert_eq!(text.matches("No such file").count(), 1, "{text}");
}

#[test]
fn files_that_are_not_fer_csv_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.csv");
    let err = load_err(&missing);
    assert!(
        err.contains("nope.csv") && err.contains("No such file"),
        "{err}"
    );

    let path = write(dir.path(), "test.csv", "pixels\n1 2 3\n");
    let err = load_err(&path);
    assert!(
        err.contains("missing column 'emotion'") && err.contains("'pixels'"),
        "{err}"
    );

    let path = write(dir.path(), "header-only.csv", "emotion,pixels,Usage\n");
    assert!(matches!(
        load(&path, &LoadOptions::default()),
        Err(Error::Empty { .. })
    ));

    let path = write(dir.path(), "empty.csv", "");
    assert!(load(&path, &LoadOptions::default()).is_err());

    let err = load_err(dir.path());
    assert!(
        err.contains("is a directory") || err.contains("Is a directory"),
        "{err}"
    );

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"emotion,pixels,Usage\n0,1 2 3,Training\n")
        .unwrap();
    let mut bytes = gz.finish().unwrap();
    bytes.truncate(bytes.len() / 2);
    let path = dir.path().join("truncated.csv.gz");
    std::fs::write(&path, bytes).unwrap();
    let err = load_err(&path);
    assert!(err.contains("truncated.csv.gz"), "{err}");
}

#[test]
fn labels_and_usage_tolerate_surrounding_spaces() {
    let px = format_pixels(&[1u8; IMAGE_PIXELS]);
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "spaces.csv",
        &format!("emotion,pixels,Usage\n 3 , {px} , PrivateTest \n"),
    );
    let loaded = load(&path, &LoadOptions::default()).unwrap();
    assert_eq!(loaded.dataset.labels(), &[Emotion::Happy]);
    assert_eq!(loaded.dataset.splits(), &[Split::PrivateTest]);
}

mod no_panic {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Random bytes, with or without a valid header in front: an error or a dataset,
        /// never a panic.
        #[test]
        fn random_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..4096), header in any::<bool>()) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("random.csv");
            let mut bytes = if header { b"emotion,pixels,Usage\n".to_vec() } else { Vec::new() };
            bytes.extend_from_slice(&body);
            std::fs::write(&path, &bytes).unwrap();
            let _ = load(&path, &LoadOptions::default());
            let _ = load(&path, &LoadOptions::skipping_bad_rows());
        }

        /// Valid rows with one field mangled: always an error naming line 2, never a panic.
        #[test]
        fn mangled_rows_are_reported(label in "[0-9a-z-]{0,4}", pixels in "[0-9 ,x-]{0,64}", usage in "[A-Za-z]{0,12}") {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("mangled.csv");
            std::fs::write(&path, format!("emotion,pixels,Usage\n{label},{pixels},{usage}\n")).unwrap();
            let result = load(&path, &LoadOptions::default());
            prop_assert!(result.is_err());
            let message = result.unwrap_err().to_string();
            prop_assert!(message.contains("line 2"), "{}", message);
        }
    }
}

#[test]
fn blank_lines_keep_line_numbers_true() {
    let data = generate(&SyntheticConfig::small(4));
    let mut rows = fer_rows(&data)[..4].to_vec();
    rows.insert(1, String::new());
    rows[3] = format!("8,{}", rows[3].split_once(',').unwrap().1);
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "blank.csv",
        &csv_text("emotion,pixels,Usage", &rows),
    );
    let err = load_err(&path);
    assert!(err.contains("line 3: row: empty line"), "{err}");
    let loaded = load(&path, &LoadOptions::skipping_bad_rows()).unwrap();
    let skipped: Vec<String> = loaded.skipped.iter().map(|b| b.to_string()).collect();
    assert_eq!(skipped[0], "line 3: row: empty line");
    assert!(
        skipped[1].starts_with("line 5: emotion: expected a label 0..6, found '8'"),
        "{skipped:?}"
    );
    assert_eq!(loaded.dataset.len(), 3);
}
