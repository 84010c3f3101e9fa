//! `fer plot` and `fer report` end to end on generated data, and `fer eval` storing its
//! figures in the run directory: outputs, errors and exit codes (0 ok, 1 failure, 2 usage).

mod common;

use common::{fer_fails, fer_ok};

use std::path::Path;

use fer_data::synthetic::{SyntheticConfig, generate};
use fer_data::{Split, Statistics};
use fer_report::{DataSummary, DistributionChart, EvalReport, Plot, SampleGrid};

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn plots_of_the_data_have_the_figures_size() {
    let dir = tempfile::tempdir().unwrap();
    let data = generate(&SyntheticConfig::fer_like(11, [120, 30, 30]));
    let csv = dir.path().join("fer.csv.gz");
    fer_data::write_csv(&data, &csv).unwrap();

    let png = dir.path().join("distribution.png");
    fer_ok(&["plot", "distribution", "--data", p(&csv), "--out", p(&png)]);
    let summary = DataSummary::from_statistics(&Statistics::compute(&data));
    let expected = DistributionChart::new(&summary.splits).unwrap().size();
    let image = image::open(&png).unwrap();
    assert_eq!((image.width(), image.height()), expected);

    let svg = dir.path().join("samples.svg");
    fer_ok(&[
        "plot",
        "samples",
        "--data",
        p(&csv),
        "--split",
        "public-test",
        "--count",
        "6",
        "--columns",
        "3",
        "--out",
        p(&svg),
    ]);
    let svg = std::fs::read_to_string(svg).unwrap();
    assert!(svg.starts_with("<svg"));
    assert_eq!(svg.matches("<image ").count(), 6);
    let first = data.view(Split::PublicTest).label(0).name();
    assert!(svg.contains(&format!(">{first}</text>")), "{first}");
    let grid = SampleGrid::first(&data.view(Split::PublicTest), 6, 3).unwrap();
    assert!(svg.contains(&format!("width=\"{}\"", grid.size().0)));

    // Unknown format and missing data fail before drawing; no subcommand is a usage error.
    fer_fails(
        &["plot", "distribution", "--data", p(&csv), "--out", "d.jpg"],
        1,
        "d.jpg: unknown figure format",
    );
    fer_fails(
        &[
            "plot",
            "distribution",
            "--data",
            "missing.csv",
            "--out",
            "d.png",
        ],
        1,
        "missing.csv",
    );
    fer_fails(&["plot"], 2, "Usage");
    fer_fails(&["plot", "curves", "--out", "c.png"], 2, "<RUN>");
}

#[test]
fn eval_stores_its_figures_that_plot_and_report_read() {
    let dir = tempfile::tempdir().unwrap();
    let data = {
        let mut config = SyntheticConfig::small(21);
        config.per_split = [96, 32, 32];
        generate(&config)
    };
    let csv = dir.path().join("fer.csv");
    fer_data::write_csv(&data, &csv).unwrap();
    let run = dir.path().join("run");
    fer_ok(&[
        "train",
        "--data",
        p(&csv),
        "--out",
        p(&run),
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--optimizer",
        "sgd",
        "--lr",
        "0.01",
        "--seed",
        "1",
    ]);
    let out = fer_ok(&["eval", "--model", p(&run), "--data", p(&csv), "--json"]);
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let stored = EvalReport::load(&run.join("eval-private-test.json")).unwrap();
    assert_eq!(serde_json::to_value(&stored).unwrap(), printed);
    assert_eq!(stored.n, 32);

    for (figure, file) in [
        ("curves", "curves.svg"),
        ("confusion", "confusion.png"),
        ("per-class", "per-class.png"),
    ] {
        let path = dir.path().join(file);
        fer_ok(&["plot", figure, p(&run), "--out", p(&path)]);
        assert!(std::fs::metadata(&path).unwrap().len() > 1000, "{file}");
    }
    // An eval JSON file may be given instead of the run.
    let from_file = dir.path().join("from-file.png");
    let eval_file = run.join("eval-private-test.json");
    fer_ok(&["plot", "confusion", p(&eval_file), "--out", p(&from_file)]);
    assert_eq!(
        std::fs::read(&from_file).unwrap(),
        std::fs::read(dir.path().join("confusion.png")).unwrap()
    );
    fer_fails(
        &[
            "plot",
            "per-class",
            p(&run),
            "--split",
            "public-test",
            "--out",
            "x.png",
        ],
        1,
        "eval-public-test.json: no such evaluation",
    );

    // A second run: the same, evaluated on PublicTest only, with another seed in its config.
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    config["seed"] = 7.into();
    std::fs::write(other.join("config.json"), config.to_string()).unwrap();
    std::fs::copy(run.join("history.json"), other.join("history.json")).unwrap();
    let mut public = stored.clone();
    public.split = "PublicTest".into();
    public.accuracy = 0.5;
    public
        .save(&EvalReport::path_in(&other, Split::PublicTest))
        .unwrap();

    let html = dir.path().join("report.html");
    fer_ok(&[
        "report",
        p(&run),
        p(&other),
        "--data",
        p(&csv),
        "--samples",
        "5",
        "--title",
        "A & B",
        "--out",
        p(&html),
    ]);
    let html = std::fs::read_to_string(html).unwrap();
    assert!(html.contains("<title>A &amp; B</title>"));
    assert!(html.contains("id=\"comparison-table\""));
    assert!(html.contains("<td>run</td><td>PrivateTest (32)</td><td class=\"num"));
    assert!(
        html.contains("<td>other</td><td>PublicTest (32)</td><td class=\"num best\">50.00%</td>")
    );
    assert!(html.contains("<code>seed</code>"));
    // Data: distribution and samples; per run: curves, confusion, per-class.
    assert_eq!(html.matches("<svg role=\"img\"").count(), 2 + 3 + 3);
    assert_eq!(html.matches("data:image/png;base64,").count(), 5);
    assert!(html.contains(&format!(
        "<tr><td>Training</td><td class=\"num\">{}</td>",
        data.view(Split::Training).len()
    )));
}

#[test]
fn report_fails_on_missing_or_broken_runs_and_bad_usage() {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("report.html");
    let missing = dir.path().join("no-such-run");
    fer_fails(
        &["report", p(&missing), "--out", p(&html)],
        1,
        "no-such-run",
    );
    let broken = dir.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    std::fs::write(broken.join("history.json"), "not json").unwrap();
    fer_fails(
        &["report", p(&broken), "--out", p(&html)],
        1,
        "history.json: invalid JSON",
    );
    std::fs::write(broken.join("history.json"), "[]").unwrap();
    std::fs::write(broken.join("eval-private-test.json"), "{}").unwrap();
    fer_fails(
        &["report", p(&broken), "--out", p(&html)],
        1,
        "eval-private-test.json: invalid JSON",
    );
    fer_fails(
        &[
            "plot",
            "curves",
            p(&dir.path().join("empty")),
            "--out",
            "c.png",
        ],
        1,
        "empty",
    );
    assert!(!html.exists());
    fer_fails(&["report", "--out", p(&html)], 2, "<RUNS>...");
    fer_fails(&["report", p(&broken)], 2, "--out");
}
