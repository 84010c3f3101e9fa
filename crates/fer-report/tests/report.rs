//! HTML reports over fake run directories: figures inlined, the comparison table's numbers,
//! escaping, and the errors of missing or broken runs.

use std::path::{Path, PathBuf};

use fer_data::Split;
use fer_data::synthetic::{SyntheticConfig, generate};
use fer_model::{EpochRecord, Metrics, TrainConfig};
use fer_report::{DataSection, DataSummary, EvalReport, Plot, Report, Run, SampleGrid};

/// A run directory with config, 3 epochs of history and a PrivateTest evaluation in which
/// the first `right` of 100 images (cycling through the classes) are predicted correctly.
fn fake_run(root: &Path, name: &str, right: usize, augmented: bool) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let mut config = serde_json::to_value(TrainConfig::default()).unwrap();
    if !augmented {
        config["augmentation"] = serde_json::json!({"transforms": []});
    }
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let history: Vec<EpochRecord> = (1..=3)
        .map(|epoch| EpochRecord {
            epoch,
            train_loss: 100.0 / epoch as f64,
            val_loss: 20.0 / epoch as f64,
            val_accuracy: 0.2 * epoch as f64,
            train_accuracy: None,
            val_macro_f1: 0.1 * epoch as f64,
            best_epoch: epoch,
            lr: 0.1,
            train_seconds: 100.0,
            eval_seconds: 10.0,
            train_images_per_second: 287.0,
        })
        .collect();
    std::fs::write(
        dir.join("history.json"),
        serde_json::to_string(&history).unwrap(),
    )
    .unwrap();
    let labels: Vec<usize> = (0..100).map(|i| i % 7).collect();
    let predictions: Vec<usize> = labels
        .iter()
        .enumerate()
        .map(|(i, &l)| if i < right { l } else { (l + 1) % 7 })
        .collect();
    let metrics = Metrics::from_predictions(&labels, &predictions);
    let mut report = EvalReport::new(Split::PrivateTest, &metrics, Some(1.0));
    if augmented {
        // Images 0-3 (all right) have a copy in Training: 96 left.
        let kept = Metrics::from_predictions(&labels[4..], &predictions[4..]);
        report = report.with_training_copies_removed(4, &kept);
    }
    report
        .save(&EvalReport::path_in(&dir, Split::PrivateTest))
        .unwrap();
    dir
}

/// The `<tr>` of the comparison table whose first cell is `name`, as cell texts.
fn comparison_row(html: &str, name: &str) -> Vec<String> {
    let table = &html[html.find("id=\"comparison-table\"").unwrap()..];
    let table = &table[..table.find("</table>").unwrap()];
    let row = table
        .split("<tr>")
        .find(|r| r.starts_with(&format!("<td>{name}</td>")))
        .unwrap_or_else(|| panic!("no row {name} in {table}"));
    row.split("<td")
        .skip(1)
        .map(|c| {
            let c = &c[c.find('>').unwrap() + 1..];
            c[..c.find("</td>").unwrap()].to_string()
        })
        .collect()
}

#[test]
fn two_runs_are_compared_side_by_side() {
    let root = tempfile::tempdir().unwrap();
    let with = Run::open(&fake_run(root.path(), "with-aug", 61, true)).unwrap();
    let without = Run::open(&fake_run(root.path(), "no-aug", 43, false)).unwrap();
    assert_eq!(with.epochs(), Some(3));
    assert_eq!(with.wall_seconds(), Some(330.0));
    let runs = [with, without];
    let html = Report {
        manifest: None,
        title: "augmentation".into(),
        runs: &runs,
        data: None,
    }
    .render()
    .unwrap();

    let row = comparison_row(&html, "with-aug");
    // run, split, accuracy, macro-F1, without Training copies, epochs, best epoch, wall time,
    // 7 recalls.
    assert_eq!(row.len(), 15, "{row:?}");
    assert_eq!(row[1], "PrivateTest (100)");
    assert_eq!(row[2], "61.00%");
    let e = runs[0].evaluation().unwrap();
    assert_eq!(row[3], format!("{:.3}", e.macro_f1));
    // 57 of the 96 images left are right.
    let kept = e.without_training_copies.as_ref().unwrap();
    assert_eq!(row[4], format!("59.38% / {:.3} (96)", kept.macro_f1));
    assert_eq!(row[5..8], ["3", "3", "5 min 30 s"]);
    // Angry: samples 0, 7, ..., 56 are right (9 of 15).
    assert_eq!(row[8], "60.0%");
    let other = comparison_row(&html, "no-aug");
    assert_eq!((other[2].as_str(), other[4].as_str()), ("43.00%", "–"));
    assert!(html.contains(
        "Without the 4 images that have an exact copy in Training (96 left): accuracy <b>59.38%</b>"
    ));
    // The better accuracy is marked.
    assert!(html.contains("<td class=\"num best\">61.00%</td>"));
    assert!(html.contains("<td class=\"num\">43.00%</td>"));
    // The configs differ in their augmentation only.
    assert!(html.contains("<code>augmentation.transforms.0.type</code>"));
    assert!(!html.contains("<code>optimizer.lr</code>"));

    // Per run: curves, confusion matrix, per-class bars, inline SVG of the figures' sizes.
    assert_eq!(html.matches("<svg role=\"img\"").count(), 6);
    let history = runs[0].history.as_ref().unwrap();
    let (w, h) = fer_report::CurvesChart::new(history).unwrap().size();
    assert!(html.contains(&format!(
        "<svg role=\"img\" aria-label=\"training curves\" width=\"{w}\" height=\"{h}\""
    )));
    assert!(html.contains("<h3>Evaluation on PrivateTest</h3>"));
    assert!(html.trim_end().ends_with("</html>"));
}

#[test]
fn text_from_files_and_paths_is_escaped() {
    let root = tempfile::tempdir().unwrap();
    let dir = fake_run(root.path(), "a<b>&c", 50, true);
    let evil = "</pre><script>alert('x')</script>";
    std::fs::write(
        dir.join("config.json"),
        serde_json::json!({"note": evil, "epochs": 3}).to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::json!({
            "git_commit": "0123456789abcdef0123",
            "machine": "<img src=x>",
            "steps": [{"name": "train", "wall_seconds": 12.5}, {"name": "eval", "wall_seconds": 2.0}],
        })
        .to_string(),
    )
    .unwrap();
    let runs = [Run::open(&dir).unwrap()];
    let html = Report {
        manifest: None,
        title: "<title>".into(),
        runs: &runs,
        data: None,
    }
    .render()
    .unwrap();
    assert!(!html.contains("<script>"), "{html}");
    assert!(!html.contains("<img src=x>"));
    assert!(!html.contains("a<b>"));
    assert!(html.contains("&lt;/pre&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
    assert!(html.contains("<h2>Run: a&lt;b&gt;&amp;c</h2>"));
    assert!(html.contains("<title>&lt;title&gt;</title>"));
    // The manifest's steps are a table.
    assert!(html.contains("<h3>Pipeline manifest</h3>"));
    assert!(html.contains("<th>wall_seconds</th>"));
    assert!(html.contains("<td>12.500</td>"));
    assert!(html.contains("<code>0123456789abcdef0123</code>"));
}

#[test]
fn data_section_shows_counts_distribution_and_samples() {
    let data = generate(&SyntheticConfig::small(9));
    let summary = DataSummary::from_statistics(&fer_data::Statistics::compute(&data));
    let section = DataSection {
        source: "synthetic & small".into(),
        samples: Some(SampleGrid::first(&data.view(Split::Training), 10, 5).unwrap()),
        summary,
    };
    let html = Report {
        manifest: None,
        title: "data".into(),
        runs: &[],
        data: Some(&section),
    }
    .render()
    .unwrap();
    assert!(html.contains("synthetic &amp; small"));
    let training = data.view(Split::Training);
    assert!(html.contains(&format!(
        "<tr><td>Training</td><td class=\"num\">{}</td>",
        training.len()
    )));
    assert_eq!(html.matches("<svg role=\"img\"").count(), 2);
    assert_eq!(html.matches("data:image/png;base64,").count(), 10);
    assert!(
        Report {
            manifest: None,
            title: "x".into(),
            runs: &[],
            data: None
        }
        .render()
        .is_err()
    );
}

#[test]
fn missing_empty_and_broken_run_directories_fail_naming_the_file() {
    let root = tempfile::tempdir().unwrap();
    let error = Run::open(&root.path().join("nope"))
        .unwrap_err()
        .to_string();
    assert!(error.contains("nope"), "{error}");

    let empty = root.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let error = Run::open(&empty).unwrap_err().to_string();
    assert!(error.contains("not a run directory"), "{error}");

    let dir = fake_run(root.path(), "broken", 50, true);
    std::fs::write(dir.join("history.json"), "[{\"epoch\": 1}").unwrap();
    let error = Run::open(&dir).unwrap_err().to_string();
    assert!(error.contains("history.json: invalid JSON"), "{error}");

    // A baseline: config of its own and an evaluation, no history.
    let baseline = root.path().join("hog-svm");
    std::fs::create_dir(&baseline).unwrap();
    std::fs::write(
        baseline.join("config.json"),
        r#"{"kind": "hog-svm", "c": 1.0}"#,
    )
    .unwrap();
    std::fs::copy(
        dir.join("eval-private-test.json"),
        baseline.join("eval-private-test.json"),
    )
    .unwrap();
    let run = Run::open(&baseline).unwrap();
    assert_eq!(run.history, None);
    assert_eq!(run.epochs(), None);
    let runs = [run];
    let html = Report {
        manifest: None,
        title: "baseline".into(),
        runs: &runs,
        data: None,
    }
    .render()
    .unwrap();
    assert!(html.contains("No history.json"));
    assert_eq!(html.matches("<svg role=\"img\"").count(), 2);
}
/// A HOG-SVM run directory as `fer train` writes it (`{"model": "hog-svm", ...}`), with the
/// PrivateTest evaluation of `like`, optionally with another `c_grid`.
fn fake_hog_svm_run(root: &Path, name: &str, like: &Path, c_grid: Option<&[f64]>) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let mut config = serde_json::to_value(fer_model::hog_svm::HogSvmConfig::default()).unwrap();
    config["model"] = fer_model::hog_svm::MODEL_TAG.into();
    if let Some(c_grid) = c_grid {
        config["c_grid"] = serde_json::json!(c_grid);
    }
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    std::fs::copy(
        like.join("eval-private-test.json"),
        dir.join("eval-private-test.json"),
    )
    .unwrap();
    dir
}

fn render(runs: &[Run]) -> String {
    Report {
        manifest: None,
        title: "kinds".into(),
        runs,
        data: None,
    }
    .render()
    .unwrap()
}

/// The configuration-difference tables: per table, its header cells and the first cell
/// (the config entry) of each further row.
fn difference_tables(html: &str) -> Vec<(Vec<String>, Vec<String>)> {
    html.split("<table class=\"config-diff\">")
        .skip(1)
        .map(|t| {
            let t = &t[..t.find("</table>").unwrap()];
            let mut rows = t.split("<tr>").skip(1);
            let header = rows
                .next()
                .unwrap()
                .split("<th>")
                .skip(1)
                .map(|c| c[..c.find("</th>").unwrap()].to_string())
                .collect();
            let entries = rows
                .map(|r| {
                    let c = &r[r.find("<code>").unwrap() + 6..];
                    c[..c.find("</code>").unwrap()].to_string()
                })
                .collect();
            (header, entries)
        })
        .collect()
}

#[test]
fn configurations_are_compared_only_among_runs_of_the_same_kind() {
    let root = tempfile::tempdir().unwrap();
    let cnn = fake_run(root.path(), "cnn-a", 61, true);
    let hog = fake_hog_svm_run(root.path(), "hog", &cnn, None);
    // A CNN beside a HOG-SVM: their configs share no schema, so nothing is compared.
    let runs = [Run::open(&cnn).unwrap(), Run::open(&hog).unwrap()];
    let html = render(&runs);
    assert!(difference_tables(&html).is_empty(), "{html}");
    for entry in [
        "model",
        "model.architecture",
        "c_grid.0",
        "optimizer.lr",
        "hog.cell_side",
    ] {
        assert!(!html.contains(&format!("<code>{entry}</code>")), "{entry}");
    }
    assert!(
        html.contains(
            "<p>Not compared: cnn-a is the only CNN run; hog is the only hog-svm run.</p>"
        )
    );
    // The comparison table still has both.
    assert_eq!(comparison_row(&html, "hog")[2], "61.00%");

    // Two CNN runs that differ in one entry, beside the HOG-SVM: exactly that row.
    let b = fake_run(root.path(), "cnn-b", 50, true);
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(b.join("config.json")).unwrap()).unwrap();
    config["optimizer"]["lr"] = 0.5.into();
    std::fs::write(b.join("config.json"), config.to_string()).unwrap();
    let runs = [
        Run::open(&cnn).unwrap(),
        Run::open(&hog).unwrap(),
        Run::open(&b).unwrap(),
    ];
    let html = render(&runs);
    let tables = difference_tables(&html);
    assert_eq!(tables.len(), 1, "{html}");
    assert_eq!(tables[0].0, ["config entry", "cnn-a", "cnn-b"]);
    assert_eq!(tables[0].1, ["optimizer.lr"]);
    assert!(
        html.contains(
            "<p>Among the 2 CNN runs (cnn-a and cnn-b), these config entries differ:</p>"
        )
    );
    assert!(html.contains("<p>Not compared: hog is the only hog-svm run.</p>"));

    // A second HOG-SVM run whose C grid ends in another value: a table of its own.
    let hog2 = fake_hog_svm_run(root.path(), "hog-2", &cnn, Some(&[0.0001, 0.001, 0.1]));
    let runs = [
        Run::open(&hog2).unwrap(),
        Run::open(&cnn).unwrap(),
        Run::open(&hog).unwrap(),
        Run::open(&b).unwrap(),
    ];
    let html = render(&runs);
    let tables = difference_tables(&html);
    assert_eq!(tables.len(), 2, "{html}");
    assert_eq!(tables[0].0, ["config entry", "hog-2", "hog"]);
    assert_eq!(tables[0].1, ["c_grid.2"]);
    assert_eq!(tables[1].0, ["config entry", "cnn-a", "cnn-b"]);
    assert_eq!(tables[1].1, ["optimizer.lr"]);
    assert!(!html.contains("Not compared"));
}

#[test]
fn runs_of_one_kind_with_equal_configs_are_called_identical() {
    let root = tempfile::tempdir().unwrap();
    let a = fake_run(root.path(), "a", 61, true);
    let b = fake_run(root.path(), "b", 40, true);
    let runs = [Run::open(&a).unwrap(), Run::open(&b).unwrap()];
    let html = render(&runs);
    assert!(difference_tables(&html).is_empty());
    assert!(
        html.contains("<p>The config.json files of the 2 CNN runs (a and b) are identical.</p>")
    );
}

#[test]
fn every_table_sits_in_a_sideways_scrolling_wrapper() {
    let root = tempfile::tempdir().unwrap();
    let cnn = fake_run(root.path(), "cnn", 61, true);
    let hog = fake_hog_svm_run(root.path(), "hog", &cnn, None);
    std::fs::write(
        cnn.join("manifest.json"),
        serde_json::json!({"steps": [{"name": "train", "wall_seconds": 12.5}]}).to_string(),
    )
    .unwrap();
    let runs = [Run::open(&cnn).unwrap(), Run::open(&hog).unwrap()];
    let data = generate(&SyntheticConfig::small(3));
    let section = DataSection {
        source: "synthetic".into(),
        samples: None,
        summary: DataSummary::from_statistics(&fer_data::Statistics::compute(&data)),
    };
    let manifest = serde_json::json!({"profile": {"epochs": 3}, "steps": [{"name": "a"}]});
    let html = Report {
        manifest: Some(&manifest),
        title: "wide".into(),
        runs: &runs,
        data: Some(&section),
    }
    .render()
    .unwrap();
    assert!(html.contains("<div class=\"table-wrap\"><table id=\"comparison-table\""));
    let tables = html.matches("<table").count();
    assert!(tables >= 8, "{tables}");
    assert_eq!(
        html.matches("<div class=\"table-wrap\"><table").count(),
        tables,
        "a table without its wrapper: {html}"
    );
    // The wrapper scrolls sideways instead of letting the table run out of the page.
    let style = &html[html.find("<style>").unwrap()..html.find("</style>").unwrap()];
    let rule = &style[style.find(".table-wrap {").expect("no .table-wrap rule")..];
    let rule = &rule[..rule.find('}').unwrap()];
    assert!(rule.contains("overflow-x: auto"), "{rule}");
    // Headers may wrap, so the comparison fits 1280 px: no header cell is kept on one line.
    for line in style.lines().filter(|l| l.contains("nowrap")) {
        let selectors = line.split('{').next().unwrap();
        for selector in selectors.split(',') {
            let last = selector.split_whitespace().last().unwrap_or("");
            assert!(
                !last.starts_with("th"),
                "header cells kept on one line: {line}"
            );
        }
    }
}
