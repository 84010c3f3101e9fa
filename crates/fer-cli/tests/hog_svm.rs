//! `fer train --model hog-svm` and `fer eval` on its run directory, end to end on generated data.

mod common;

use common::{assert_fails, assert_ok, fer, text};

use fer_data::synthetic::{SyntheticConfig, generate};

#[test]
fn train_hog_svm_writes_its_run_and_eval_reads_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let data = generate(&SyntheticConfig::fer_like(11, [210, 70, 70]));
    let csv = dir.path().join("fer.csv.gz");
    fer_data::write_csv(&data, &csv).unwrap();
    // 8x8 cells keep the test quick; the default is 4x4.
    let config = dir.path().join("hog.json");
    std::fs::write(
        &config,
        r#"{"hog": {"orientations": 9, "signed": false, "cell_side": 8, "block_side": 2,
            "block_stride": 1}, "c_grid": [0.01, 0.1]}"#,
    )
    .unwrap();
    let run = dir.path().join("runs").join("hog-svm");
    let (csv, run_arg, config) = (
        csv.to_str().unwrap(),
        run.to_str().unwrap(),
        config.to_str().unwrap(),
    );
    let out = fer(&[
        "train", "--model", "hog-svm", "--data", csv, "--out", run_arg, "--config", config,
    ]);
    assert_ok(&out);
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("C\tPublicTest Acc"), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("0.01\t")), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("0.1\t")), "{stdout}");
    assert!(stdout.contains("PrivateTest: 70 images"), "{stdout}");

    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(saved["model"], "hog-svm");
    assert_eq!(saved["hog"]["cell_side"], 8);
    assert!(run.join("weights.safetensors").is_file());
    let selection: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("selection.json")).unwrap()).unwrap();
    let candidates = selection["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 2);
    let chosen = candidates
        .iter()
        .find(|c| c["c"] == selection["chosen_c"])
        .unwrap();

    // The PrivateTest report has `fer eval --json`'s schema.
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("eval-private-test.json")).unwrap())
            .unwrap();
    assert_eq!(report["split"], "PrivateTest");
    assert_eq!(report["n"], 70);
    assert!(report["loss"].is_null());
    let confusion: Vec<Vec<usize>> = serde_json::from_value(report["confusion"].clone()).unwrap();
    assert_eq!(confusion.len(), 7);
    assert_eq!(confusion.iter().flatten().sum::<usize>(), 70);
    let diagonal: usize = (0..7).map(|k| confusion[k][k]).sum();
    let accuracy = report["accuracy"].as_f64().unwrap();
    assert!((accuracy - diagonal as f64 / 70.0).abs() < 1e-12);
    assert!(accuracy > 0.6, "PrivateTest accuracy {accuracy}");
    let per_class = report["per_class"].as_array().unwrap();
    assert_eq!(per_class.len(), 7);
    assert_eq!(per_class[0]["class"], "Angry");
    for (k, c) in per_class.iter().enumerate() {
        assert_eq!(c["support"], confusion[k].iter().sum::<usize>());
    }

    // `fer eval` dispatches on the tag and reproduces the report and the PublicTest choice.
    let out = fer(&["eval", "--model", run_arg, "--data", csv, "--json"]);
    assert_ok(&out);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json, report);
    let predictions = dir.path().join("predictions.csv");
    let out = fer(&[
        "eval",
        "--model",
        run_arg,
        "--data",
        csv,
        "--split",
        "public-test",
        "--json",
        "--predictions",
        predictions.to_str().unwrap(),
    ]);
    assert_ok(&out);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["accuracy"], chosen["public_test_accuracy"]);
    let lines = std::fs::read_to_string(&predictions).unwrap();
    assert_eq!(lines.lines().count(), 71);
    let out = fer(&["eval", "--model", run_arg, "--data", csv]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout).starts_with("PrivateTest: 70 images, accuracy"),
        "{}",
        text(&out.stdout)
    );

    // A broken weights file fails naming it; CNN-only flags are refused.
    std::fs::write(run.join("weights.safetensors"), b"garbage").unwrap();
    let out = fer(&["eval", "--model", run_arg, "--data", csv]);
    assert_fails(&out, 1, "weights.safetensors");
    let other = dir.path().join("other");
    let out = fer(&[
        "train",
        "--model",
        "hog-svm",
        "--data",
        csv,
        "--out",
        other.to_str().unwrap(),
        "--epochs",
        "3",
    ]);
    assert_fails(&out, 1, "--epochs");
    assert!(!other.exists());
}
