//! Every figure rendered to PNG and SVG files: the PNG decodes to the figure's size, the SVG
//! is an SVG document with the figure's text.

use std::path::Path;

use fer_data::synthetic::{SyntheticConfig, generate};
use fer_data::{Emotion, Split, Statistics};
use fer_model::{EpochRecord, Metrics};
use fer_report::{
    ConfusionChart, CurvesChart, DataSummary, DistributionChart, EvalReport, PerClassChart, Plot,
    SampleGrid,
};

fn history(epochs: usize) -> Vec<EpochRecord> {
    (1..=epochs)
        .map(|epoch| EpochRecord {
            epoch,
            train_loss: 300.0 / epoch as f64,
            val_loss: 40.0 / epoch as f64,
            val_accuracy: 0.3 + 0.02 * epoch as f64,
            train_accuracy: Some(0.35 + 0.03 * epoch as f64),
            val_macro_f1: 0.2 + 0.02 * epoch as f64,
            best_epoch: epoch,
            lr: 0.1,
            train_seconds: 10.0,
            eval_seconds: 1.0,
            train_images_per_second: 100.0,
        })
        .collect()
}

fn eval() -> EvalReport {
    let labels: Vec<usize> = (0..70).map(|i| i % 7).collect();
    let predictions: Vec<usize> = (0..70)
        .map(|i| if i % 3 == 0 { 3 } else { i % 7 })
        .collect();
    EvalReport::new(
        Split::PrivateTest,
        &Metrics::from_predictions(&labels, &predictions),
        Some(1.5),
    )
}

/// The contents of the SVG's `<text>` elements, trimmed.
fn texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            let body = &t[t.find('>')? + 1..];
            Some(body[..body.find("</text>")?].trim().to_string())
        })
        .collect()
}

fn has(svg: &str, text: &str) -> bool {
    texts(svg).iter().any(|t| t == text)
}

/// Saves `plot` as PNG and SVG in `dir` and checks both files; returns the SVG text.
fn check(plot: &impl Plot, dir: &Path, name: &str) -> String {
    let (w, h) = plot.size();
    let png = dir.join(format!("{name}.png"));
    plot.save(&png).unwrap();
    let decoded = image::open(&png).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (w, h), "{name}");
    // Not a blank page: the figure has dark (text) and white pixels.
    let rgb = decoded.to_rgb8();
    assert!(rgb.pixels().any(|p| p.0.iter().all(|&c| c < 80)), "{name}");
    assert!(rgb.pixels().any(|p| p.0 == [255, 255, 255]), "{name}");

    let svg_path = dir.join(format!("{name}.svg"));
    plot.save(&svg_path).unwrap();
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert!(
        svg.trim_start().starts_with("<svg"),
        "{name}: {}",
        &svg[..80]
    );
    assert!(svg.contains(&format!("width=\"{w}\"")), "{name}");
    assert!(svg.trim_end().ends_with("</svg>"), "{name}");
    svg
}

#[test]
fn distribution_shows_each_split_with_its_counts() {
    let dir = tempfile::tempdir().unwrap();
    let data = generate(&SyntheticConfig::small(5));
    let summary = DataSummary::from_statistics(&Statistics::compute(&data));
    let chart = DistributionChart::new(&summary.splits).unwrap();
    let svg = check(&chart, dir.path(), "distribution");
    for split in &summary.splits {
        assert!(has(
            &svg,
            &format!("{} ({} images)", split.name, split.total())
        ));
        let most = split.per_class.iter().max().unwrap();
        assert!(
            has(&svg, &format!("{most}")),
            "count {most} of {}",
            split.name
        );
    }
    assert!(has(&svg, "Surprise"));
    assert!(DistributionChart::new(&[]).is_err());
}

#[test]
fn samples_show_the_first_faces_with_their_labels() {
    let dir = tempfile::tempdir().unwrap();
    let data = generate(&SyntheticConfig::small(6));
    let view = data.view(Split::Training);
    let grid = SampleGrid::first(&view, 10, 5).unwrap();
    assert_eq!(grid.size(), (5 * 156 + 12, 40 + 2 * 180));
    assert_eq!(grid.faces().len(), 10);
    assert_eq!(grid.faces()[3].label, view.label(3));
    let svg = check(&grid, dir.path(), "samples");
    assert_eq!(svg.matches("<image ").count(), 10);
    assert!(has(&svg, view.label(0).name()));
    // The PNG shows the first face's pixels, scaled 3x, at its place.
    let png = image::open(dir.path().join("samples.png"))
        .unwrap()
        .to_luma8();
    let first = view.image(0);
    for (x, y) in [(0, 0), (17, 30), (47, 47)] {
        let shown = png.get_pixel(12 + 3 * x + 1, 40 + 3 * y + 1).0[0];
        assert_eq!(
            shown,
            first[y as usize * 48 + x as usize],
            "pixel ({x}, {y})"
        );
    }
    assert!(SampleGrid::new(vec![], 5).is_err());
}

#[test]
fn curves_plot_losses_and_accuracy_per_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let mut records = history(5);
    records[2].val_loss = f64::NAN; // a diverged value is left out, not a failure
    let svg = check(&CurvesChart::new(&records).unwrap(), dir.path(), "curves");
    assert!(has(&svg, "Training loss"));
    assert!(has(&svg, "macro-F1"));
    assert!(has(&svg, "training accuracy") && has(&svg, "validation accuracy"));
    assert!(svg.contains("<polyline") || svg.contains("<path"));
    // One epoch is a point, not an error.
    check(
        &CurvesChart::new(&history(1)).unwrap(),
        dir.path(),
        "one-epoch",
    );
    assert!(CurvesChart::new(&[]).is_err());
}

#[test]
fn confusion_matrix_shows_counts_and_row_shares() {
    let dir = tempfile::tempdir().unwrap();
    let e = eval();
    let svg = check(&ConfusionChart::new(&e), dir.path(), "confusion");
    // Happy (3) gets its own 10 plus every third sample of the others.
    assert_eq!(e.confusion[3][3], 10);
    assert!(has(&svg, "100.0%"));
    let angry_share = 100.0 * e.confusion[0][0] as f64 / 10.0;
    assert!(has(&svg, &format!("{angry_share:.1}%")), "{angry_share}");
    for emotion in Emotion::ALL {
        assert!(has(&svg, emotion.name()));
    }
}

#[test]
fn per_class_bars_show_precision_recall_and_f1() {
    let dir = tempfile::tempdir().unwrap();
    let e = eval();
    let svg = check(&PerClassChart::new(&e), dir.path(), "per-class");
    let happy = &e.per_class[3];
    assert!(has(&svg, &format!("{:.2}", happy.precision)));
    assert!(has(&svg, &format!("n = {}", happy.support)));
    assert!(has(&svg, "recall"));
}
