//! The `fer` binary end to end on generated data: outputs, errors and exit codes.

mod common;

use common::{assert_fails, assert_ok, fer, fer_fails, text};

use std::path::{Path, PathBuf};

use fer_data::synthetic::{SyntheticConfig, generate};
use fer_data::{Dataset, IMAGE_PIXELS, IMAGE_SIDE, Split};

fn synthetic_csv(dir: &Path) -> (Dataset, PathBuf) {
    let data = generate(&SyntheticConfig::fer_like(11, [120, 30, 30]));
    let path = dir.join("fer.csv.gz");
    fer_data::write_csv(&data, &path).unwrap();
    (data, path)
}

#[test]
fn stats_json_reports_counts_and_quirks() {
    let dir = tempfile::tempdir().unwrap();
    let (data, path) = synthetic_csv(dir.path());
    let out = fer(&["stats", "--data", path.to_str().unwrap(), "--json"]);
    assert_ok(&out);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for split in Split::ALL {
        let view = data.view(split);
        let entry = &json["splits"][split.name()];
        assert_eq!(entry["total"], view.len());
        let per_class: Vec<usize> = serde_json::from_value(entry["per_class"].clone()).unwrap();
        assert_eq!(per_class, view.class_counts());
    }
    let black = (0..data.len())
        .filter(|&i| data.image(i).iter().all(|&p| p == 0))
        .count();
    assert_eq!(json["black_images"], black);
    let stats = fer_data::Statistics::compute(&data);
    assert_eq!(json["duplicate_groups"], stats.duplicates.groups.len());
}

#[test]
fn stats_table_lists_splits_and_quirks() {
    let dir = tempfile::tempdir().unwrap();
    let (data, path) = synthetic_csv(dir.path());
    let out = fer(&["stats", "--data", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    let training = stdout.lines().find(|l| l.starts_with("Training")).unwrap();
    let total: usize = training.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert_eq!(total, data.view(Split::Training).len());
    assert!(stdout.contains("all-black images:"), "{stdout}");
    assert!(stdout.contains("Disgust"), "{stdout}");
}

#[test]
fn bad_rows_fail_with_line_and_field_unless_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let good = fer_data::pixels::format_pixels(&[7u8; IMAGE_PIXELS]);
    let short = fer_data::pixels::format_pixels(&[7u8; IMAGE_PIXELS - 1]);
    let path = dir.path().join("bad.csv");
    std::fs::write(
        &path,
        format!("emotion,pixels,Usage\n0,{good},Training\n1,{good},Training\n2,{short},Training\n"),
    )
    .unwrap();
    let out = fer(&["stats", "--data", path.to_str().unwrap()]);
    assert_fails(
        &out,
        1,
        "bad.csv: line 4: pixels: expected 2304 values, found 2303",
    );
    assert!(out.stdout.is_empty());

    let out = fer(&[
        "stats",
        "--data",
        path.to_str().unwrap(),
        "--skip-bad-rows",
        "--json",
    ]);
    assert_ok(&out);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["total"], 2);
    assert!(
        text(&out.stderr).contains("skipped 1 bad row"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn missing_file_and_bad_usage_exit_1_and_2() {
    let out = fer(&["stats", "--data", "/nonexistent/fer2013.csv"]);
    assert_fails(&out, 1, "/nonexistent/fer2013.csv");
    let out = fer(&["stats"]);
    assert_eq!(out.status.code(), Some(2));
    let out = fer(&[
        "export-images",
        "--data",
        "x.csv",
        "--out",
        "y",
        "--split",
        "holdout",
    ]);
    assert_fails(&out, 2, "unknown split 'holdout'");
}

/// The error chain prints each cause once: the path, then what the system said.
#[test]
fn a_missing_data_file_is_one_line_naming_it_and_the_cause_once() {
    let out = fer(&["stats", "--data", "/nonexistent.csv"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: /nonexistent.csv: No such file or directory (os error 2)\n"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn export_images_writes_the_layout_that_stats_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let (data, path) = synthetic_csv(dir.path());
    let images = dir.path().join("images");
    let out = fer(&[
        "export-images",
        "--data",
        path.to_str().unwrap(),
        "--out",
        images.to_str().unwrap(),
        "--split",
        "private-test",
    ]);
    assert_ok(&out);
    let private = data.view(Split::PrivateTest);
    assert_eq!(
        text(&out.stdout).trim(),
        format!("wrote {} images under {}", private.len(), images.display())
    );
    let first = private.sample(0);
    let file = images
        .join("PrivateTest")
        .join(first.label.label().to_string())
        .join(format!("{}.png", first.row));
    assert!(file.is_file(), "{}", file.display());

    let out = fer(&["stats", "--data", images.to_str().unwrap(), "--json"]);
    assert_ok(&out);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["splits"]["PrivateTest"]["total"], private.len());
    assert!(json["splits"].get("Training").is_none());
}

/// Faces from elsewhere: label folders named by emotion, no split folder, images of another
/// size, names without row numbers, a non-image file beside them. Each face is a FER2013-like
/// image with 8 columns of padding either side, so its centred square is the image itself:
/// the evaluation must then equal the one of the same faces exported at 48x48.
#[test]
fn eval_reads_a_folder_of_labelled_faces_of_any_size() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = synthetic_csv(dir.path());
    let exported = dir.path().join("exported");
    fer_data::folder::export_images(&data, &exported, &[Split::PrivateTest]).unwrap();

    let faces = dir.path().join("faces");
    let private = data.view(Split::PrivateTest);
    let side = IMAGE_SIDE as u32;
    for i in 0..private.len() {
        let sample = private.sample(i);
        let folder = faces.join(sample.label.name().to_lowercase());
        std::fs::create_dir_all(&folder).unwrap();
        let padded = image::GrayImage::from_fn(side + 16, side, |x, y| {
            let inside = (8..8 + side).contains(&x);
            let value = if inside {
                sample.pixels[(y * side + x - 8) as usize]
            } else {
                255
            };
            image::Luma([value])
        });
        padded
            .save(folder.join(format!("face-{}-x.png", sample.row)))
            .unwrap();
    }
    std::fs::write(faces.join("LICENSE.txt"), "faces for a test").unwrap();

    let eval = |folder: &Path| {
        let out = fer(&["eval", "--data", folder.to_str().unwrap(), "--json"]);
        assert_ok(&out);
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (json, text(&out.stderr))
    };
    let (reference, _) = eval(&exported);
    let (json, stderr) = eval(&faces);
    assert_eq!(json["split"], "PrivateTest");
    assert_eq!(json["n"], private.len());
    assert_eq!(json["confusion"], reference["confusion"]);
    assert_eq!(json["accuracy"], reference["accuracy"]);
    let n = private.len();
    for line in [
        format!("{n} faces in label folders, read as the PrivateTest split"),
        format!("{n} of {n} images are not 48x48"),
        "1 file(s) that are not images left unread".to_string(),
    ] {
        assert!(stderr.contains(&line), "{line}: {stderr}");
    }

    // Training on it is refused before anything is written: no table, no run directory
    // whose data record would refuse the next try on other data.
    let run = dir.path().join("run");
    let out = fer(&[
        "train",
        "--data",
        faces.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ]);
    assert_fails(&out, 1, "no Training images to train on");
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    assert!(!run.exists());

    // A label the model does not know is named, with the ones it does.
    std::fs::create_dir_all(faces.join("contempt")).unwrap();
    let out = fer(&["eval", "--data", faces.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("contempt") && stderr.contains("unknown emotion 'contempt'"),
        "{stderr}"
    );
}

#[test]
fn augment_preview_draws_a_grid_of_the_requested_size() {
    let dir = tempfile::tempdir().unwrap();
    let (_, path) = synthetic_csv(dir.path());
    let grid = dir.path().join("grid.png");
    let out = fer(&[
        "augment-preview",
        "--data",
        path.to_str().unwrap(),
        "--out",
        grid.to_str().unwrap(),
        "--n",
        "4",
        "--versions",
        "5",
        "--zoom",
        "2",
        "--profile",
        "modern",
    ]);
    assert_ok(&out);
    let image = image::open(&grid).unwrap();
    // 6 columns and 4 rows of 96-pixel faces with 4-pixel gaps around them.
    assert_eq!((image.width(), image.height()), (6 * 100 + 4, 4 * 100 + 4));

    let config = dir.path().join("bad.json");
    std::fs::write(
        &config,
        r#"{"transforms": [{"type": "rotation", "degrees": -3}]}"#,
    )
    .unwrap();
    let out = fer(&[
        "augment-preview",
        "--data",
        path.to_str().unwrap(),
        "--out",
        grid.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_fails(&out, 1, "degrees must be finite and >= 0");
}

#[test]
fn train_then_eval_reports_metrics_and_bad_models_fail() {
    let dir = tempfile::tempdir().unwrap();
    let data = {
        let mut config = SyntheticConfig::small(21);
        config.per_split = [96, 32, 32];
        generate(&config)
    };
    let path = dir.path().join("fer.csv");
    fer_data::write_csv(&data, &path).unwrap();
    let run = dir.path().join("run");
    let out = fer(&[
        "train",
        "--data",
        path.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
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
    assert_ok(&out);
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("Epoch\tTrain Loss\tValidation Loss"),
        "{stdout}"
    );
    assert!(stdout.lines().any(|l| l.starts_with("2\t")), "{stdout}");
    assert!(run.join("best.safetensors").is_file());

    let predictions = dir.path().join("predictions.csv");
    let out = fer(&[
        "eval",
        "--model",
        run.to_str().unwrap(),
        "--data",
        path.to_str().unwrap(),
        "--json",
        "--predictions",
        predictions.to_str().unwrap(),
    ]);
    assert_ok(&out);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["split"], "PrivateTest");
    assert_eq!(json["n"], 32);
    let confusion: Vec<Vec<usize>> = serde_json::from_value(json["confusion"].clone()).unwrap();
    assert_eq!(confusion.iter().flatten().sum::<usize>(), 32);
    let diagonal: usize = (0..7).map(|k| confusion[k][k]).sum();
    assert!((json["accuracy"].as_f64().unwrap() - diagonal as f64 / 32.0).abs() < 1e-12);
    assert_eq!(json["per_class"].as_array().unwrap().len(), 7);
    let lines = std::fs::read_to_string(&predictions).unwrap();
    assert_eq!(lines.lines().count(), 33);
    assert!(lines.starts_with("row,label,predicted,p_angry"));

    // Every kept epoch, scored on PrivateTest and stored with the run; each equals that
    // epoch's checkpoint evaluated on its own.
    let (run_arg, data_arg) = (run.to_str().unwrap(), path.to_str().unwrap());
    let out = fer(&[
        "eval",
        "--model",
        run_arg,
        "--data",
        data_arg,
        "--every-epoch",
        "--json",
    ]);
    assert_ok(&out);
    let every: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let stored: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run.join("eval-epochs-private-test.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(every, stored);
    let epochs = every["epochs"].as_array().unwrap();
    assert_eq!(
        epochs
            .iter()
            .map(|e| e["epoch"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2]
    );
    for epoch in epochs {
        let weights = run.join(format!(
            "checkpoints/epoch-{:04}/model.safetensors",
            epoch["epoch"].as_u64().unwrap()
        ));
        let out = fer(&[
            "eval",
            "--model",
            weights.to_str().unwrap(),
            "--data",
            data_arg,
            "--json",
        ]);
        assert_ok(&out);
        let alone: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(alone["accuracy"], epoch["accuracy"]);
    }
    let best = epochs
        .iter()
        .map(|e| e["accuracy"].as_f64().unwrap())
        .fold(f64::MIN, f64::max);
    assert_eq!(every["best_accuracy"].as_f64().unwrap(), best);
    let two = fer(&[
        "eval",
        "--model",
        run_arg,
        "--model",
        run_arg,
        "--data",
        data_arg,
        "--every-epoch",
    ]);
    assert_fails(&two, 1, "--every-epoch takes one --model");

    // PrivateTest images that are exact copies of Training images (FER2013 has 288) are also
    // left out for a second set of figures. Plant 5 copies: PrivateTest images 0-4 get the
    // pixels of Training images 0-4.
    let (train, private) = (
        data.indices_of(Split::Training),
        data.indices_of(Split::PrivateTest),
    );
    let mut pixels = data.pixels().to_vec();
    for k in 0..5 {
        let from = data.image(train[k]).to_vec();
        pixels[private[k] * IMAGE_PIXELS..(private[k] + 1) * IMAGE_PIXELS].copy_from_slice(&from);
    }
    let leaky = Dataset::from_parts(
        pixels,
        data.labels().to_vec(),
        data.splits().to_vec(),
        data.rows().to_vec(),
    )
    .unwrap();
    let leaky_path = dir.path().join("leaky.csv");
    fer_data::write_csv(&leaky, &leaky_path).unwrap();
    // Which PrivateTest rows equal some Training image, by brute force.
    let copies: Vec<u32> = private
        .iter()
        .filter(|&&i| train.iter().any(|&t| leaky.image(t) == leaky.image(i)))
        .map(|&i| leaky.rows()[i])
        .collect();
    assert!(copies.len() >= 5);
    let eval_leaky = |json: bool| {
        let mut args = vec![
            "eval",
            "--model",
            run.to_str().unwrap(),
            "--data",
            leaky_path.to_str().unwrap(),
            "--predictions",
            predictions.to_str().unwrap(),
        ];
        if json {
            args.push("--json");
        }
        let out = fer(&args);
        assert_ok(&out);
        text(&out.stdout)
    };
    let json: serde_json::Value = serde_json::from_str(&eval_leaky(true)).unwrap();
    let kept = &json["without_training_copies"];
    assert_eq!(kept["excluded"], copies.len());
    assert_eq!(kept["n"], 32 - copies.len());
    // Its accuracy is that of the predictions whose rows are not copies.
    let (mut right, mut total) = (0, 0);
    for line in std::fs::read_to_string(&predictions)
        .unwrap()
        .lines()
        .skip(1)
    {
        let fields: Vec<&str> = line.split(',').collect();
        if !copies.contains(&fields[0].parse().unwrap()) {
            total += 1;
            right += usize::from(fields[1] == fields[2]);
        }
    }
    assert_eq!(total, 32 - copies.len());
    let accuracy = kept["accuracy"].as_f64().unwrap();
    assert!((accuracy - right as f64 / total as f64).abs() < 1e-12);
    let table = eval_leaky(false);
    assert!(
        table.contains(&format!(
            "without the {} images that have an exact copy in Training: {} images, accuracy {:.2}%",
            copies.len(),
            total,
            100.0 * accuracy
        )),
        "{table}"
    );

    // A run directory without a model, and a corrupt model file, exit 1 naming the file.
    let out = fer(&[
        "eval",
        "--model",
        dir.path().to_str().unwrap(),
        "--data",
        path.to_str().unwrap(),
    ]);
    assert_fails(&out, 1, "config.json");
    std::fs::write(
        run.join("broken.safetensors"),
        b"\x08\x00\x00\x00\x00\x00\x00\x00{}",
    )
    .unwrap();
    let broken = run.join("broken.safetensors");
    let out = fer(&[
        "eval",
        "--model",
        broken.to_str().unwrap(),
        "--data",
        path.to_str().unwrap(),
    ]);
    assert_fails(&out, 1, "broken.safetensors");
}

/// Trains a one-epoch model on a small synthetic CSV; returns (data, csv path, run dir).
fn tiny_run(dir: &Path) -> (Dataset, PathBuf, PathBuf) {
    let data = {
        let mut config = SyntheticConfig::small(5);
        config.per_split = [64, 16, 16];
        generate(&config)
    };
    let path = dir.join("fer.csv");
    fer_data::write_csv(&data, &path).unwrap();
    let run = dir.join("run");
    let out = fer(&[
        "train",
        "--data",
        path.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--seed",
        "3",
    ]);
    assert_ok(&out);
    (data, path, run)
}

#[test]
fn predict_matches_eval_and_reports_bad_files_without_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let (data, path, run) = tiny_run(dir.path());
    let predictions = dir.path().join("eval.csv");
    let out = fer(&[
        "eval",
        "--model",
        run.to_str().unwrap(),
        "--data",
        path.to_str().unwrap(),
        "--predictions",
        predictions.to_str().unwrap(),
    ]);
    assert_ok(&out);
    // row -> the seven probabilities `fer eval` computed.
    let expected: std::collections::HashMap<String, Vec<f64>> =
        std::fs::read_to_string(&predictions)
            .unwrap()
            .lines()
            .skip(1)
            .map(|line| {
                let fields: Vec<&str> = line.split(',').collect();
                let probs = fields[3..].iter().map(|p| p.parse().unwrap()).collect();
                (fields[0].to_string(), probs)
            })
            .collect();

    // Each PrivateTest face as a PNG; one also as a wider PNG with black side bands
    // (the centred square is the face again), one corrupt file and one missing file.
    let faces = dir.path().join("faces");
    std::fs::create_dir_all(faces.join("nested")).unwrap();
    let private = data.view(Split::PrivateTest);
    let side = IMAGE_SIDE as u32;
    for k in 0..4 {
        let sample = private.sample(k);
        let image = image::GrayImage::from_raw(side, side, sample.pixels.to_vec()).unwrap();
        image
            .save(faces.join("nested").join(format!("{}.png", sample.row)))
            .unwrap();
    }
    let first = private.sample(0);
    let wide = image::GrayImage::from_fn(2 * side, side, |x, y| {
        if (side / 2..side / 2 + side).contains(&x) {
            image::Luma([first.pixels[(y * side + x - side / 2) as usize]])
        } else {
            image::Luma([0])
        }
    });
    let wide_path = dir.path().join("wide.png");
    wide.save(&wide_path).unwrap();
    let corrupt = faces.join("corrupt.png");
    std::fs::write(&corrupt, b"not an image").unwrap();
    std::fs::write(faces.join("notes.txt"), b"ignored: not an image extension").unwrap();
    // 3.5 MB whose stream inflates to 3.6 GB of pixels: refused, and the batch goes on.
    std::fs::write(
        faces.join("bomb.png"),
        fer_data::synthetic::decompression_bomb_png(60_000),
    )
    .unwrap();

    let out = fer(&[
        "predict",
        "--model",
        run.to_str().unwrap(),
        "--no-detect",
        "--json",
        faces.to_str().unwrap(),
        wide_path.to_str().unwrap(),
        "missing.png",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a bad file makes the exit status 1"
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("corrupt.png") && stderr.contains("missing.png"),
        "{stderr}"
    );
    assert!(
        stderr.contains("bomb.png: the image is 60000x60000"),
        "{stderr}"
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let images = json["images"].as_array().unwrap();
    assert_eq!(
        images.len(),
        8,
        "4 faces + bomb + corrupt + wide + missing; notes.txt skipped"
    );
    let mut checked = 0;
    for image in images {
        let file = image["file"].as_str().unwrap();
        if file.ends_with("corrupt.png")
            || file.ends_with("missing.png")
            || file.ends_with("bomb.png")
        {
            assert!(image["error"].is_string(), "{image}");
            assert_eq!(image["faces"].as_array().unwrap().len(), 0);
            continue;
        }
        let row = if file.ends_with("wide.png") {
            first.row.to_string()
        } else {
            Path::new(file)
                .file_stem()
                .unwrap()
                .to_str()
                .unwrap()
                .to_string()
        };
        let face = &image["faces"][0];
        let got: Vec<f64> = [
            "angry", "disgust", "fear", "happy", "sad", "surprise", "neutral",
        ]
        .iter()
        .map(|name| face["probabilities"][name].as_f64().unwrap())
        .collect();
        for (g, e) in got.iter().zip(&expected[&row]) {
            assert!(
                (g - e).abs() < 2e-6,
                "{file}: {got:?} vs {:?}",
                expected[&row]
            );
        }
        assert_eq!(face["box"]["width"], IMAGE_SIDE);
        checked += 1;
    }
    assert_eq!(checked, 5);
    let wide_entry = images
        .iter()
        .find(|i| i["file"].as_str().unwrap().ends_with("wide.png"))
        .unwrap();
    assert_eq!(wide_entry["faces"][0]["box"]["x"], IMAGE_SIDE / 2);

    // Text output: one line per file, the top 2 emotions.
    let one = faces.join("nested").join(format!("{}.png", first.row));
    let out = fer(&[
        "predict",
        "--model",
        run.to_str().unwrap(),
        "--no-detect",
        "--top",
        "2",
        one.to_str().unwrap(),
    ]);
    assert_ok(&out);
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 1);
    assert_eq!(stdout.matches('%').count(), 2, "{stdout}");

    // --format names the same outputs as the --json and --csv shorthands and the default.
    let predict = |flags: &[&str]| {
        let mut args = vec!["predict", "--model", run.to_str().unwrap(), "--no-detect"];
        args.extend_from_slice(flags);
        args.push(one.to_str().unwrap());
        let out = fer(&args);
        assert_ok(&out);
        text(&out.stdout)
    };
    assert_eq!(predict(&["--format", "json"]), predict(&["--json"]));
    assert_eq!(predict(&["--format", "csv"]), predict(&["--csv"]));
    assert_eq!(predict(&["--format", "text"]), predict(&[]));
    assert!(predict(&["--format", "csv"]).starts_with("file,face,"));

    // A bad model file fails with its name, before reading any image; bad usage exits 2.
    let broken = run.join("broken.safetensors");
    std::fs::write(&broken, b"\x08\x00\x00\x00\x00\x00\x00\x00{}").unwrap();
    let out = fer(&[
        "predict",
        "--model",
        broken.to_str().unwrap(),
        one.to_str().unwrap(),
    ]);
    assert_fails(&out, 1, "broken.safetensors");
    let out = fer(&[
        "predict",
        "--model",
        run.to_str().unwrap(),
        "--top",
        "9",
        one.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn predict_detects_the_face_in_a_photo_annotates_it_and_accepts_photos_without_faces() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, run) = tiny_run(dir.path());
    let astronaut =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fer-detect/tests/data/astronaut.png");
    let noise = dir.path().join("noise.png");
    image::GrayImage::from_fn(320, 240, |x, y| {
        image::Luma([((x * 7919 + y * 104_729) % 251) as u8])
    })
    .save(&noise)
    .unwrap();
    let annotated = dir.path().join("annotated");
    let out = fer(&[
        "predict",
        "--model",
        run.to_str().unwrap(),
        "--json",
        "--annotate",
        annotated.to_str().unwrap(),
        astronaut.to_str().unwrap(),
        noise.to_str().unwrap(),
    ]);
    assert_ok(&out);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let images = json["images"].as_array().unwrap();
    let faces = images[0]["faces"].as_array().unwrap();
    assert_eq!(faces.len(), 1, "{}", images[0]);
    // The face measured by eye in the 512x512 portrait: (176, 70) 96x100.
    let b = &faces[0]["box"];
    let (x, y, w, h) = (
        b["x"].as_f64().unwrap(),
        b["y"].as_f64().unwrap(),
        b["width"].as_f64().unwrap(),
        b["height"].as_f64().unwrap(),
    );
    let overlap =
        ((x + w).min(272.0) - x.max(176.0)).max(0.0) * ((y + h).min(170.0) - y.max(70.0)).max(0.0);
    let iou = overlap / (w * h + 96.0 * 100.0 - overlap);
    assert!(iou > 0.7, "box {b}, IoU {iou}");
    assert!(b["detection_score"].as_f64().unwrap() > 3.85);
    assert_eq!(
        images[1]["faces"].as_array().unwrap().len(),
        0,
        "{}",
        images[1]
    );
    assert!(images[1]["error"].is_null());

    // The annotated portrait keeps its size and has the label colour on the box's edge.
    let drawn = image::open(annotated.join("astronaut.png"))
        .unwrap()
        .to_rgb8();
    assert_eq!(drawn.dimensions(), (512, 512));
    let original = image::open(&astronaut).unwrap().to_rgb8();
    let changed_on_edge = (x as u32..(x + w) as u32)
        .filter(|&px| {
            drawn.get_pixel(px, (y + h) as u32 - 1) != original.get_pixel(px, (y + h) as u32 - 1)
        })
        .count();
    assert!(
        changed_on_edge as f64 > 0.9 * w,
        "{changed_on_edge} of {w} edge pixels drawn"
    );
    assert!(annotated.join("noise.png").is_file());

    // Text output says when there is no face.
    let out = fer(&[
        "predict",
        "--model",
        run.to_str().unwrap(),
        noise.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout).ends_with("noise.png: no face found\n"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr)
            .contains("no face found in 1 of 1 image(s); for images that are already face crops"),
        "{}",
        text(&out.stderr)
    );
}

/// `fer eval --detect` on labelled photos: each image's largest face, found and cropped as
/// `fer predict` does (so the same class as predict's), images without a face left out and
/// counted; a CSV is refused.
#[test]
fn eval_detect_takes_each_photos_face_as_predict_crops_it() {
    let dir = tempfile::tempdir().unwrap();
    let astronaut =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fer-detect/tests/data/astronaut.png");
    let photos = dir.path().join("photos");
    for label in ["happy", "sad"] {
        std::fs::create_dir_all(photos.join(label)).unwrap();
        std::fs::copy(&astronaut, photos.join(label).join("astronaut.png")).unwrap();
    }
    image::GrayImage::from_fn(320, 240, |x, y| {
        image::Luma([((x * 7919 + y * 104_729) % 251) as u8])
    })
    .save(photos.join("happy").join("noise.png"))
    .unwrap();

    let out = fer(&["predict", "--json", astronaut.to_str().unwrap()]);
    assert_ok(&out);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let emotion = json["images"][0]["faces"][0]["emotion"]
        .as_str()
        .unwrap()
        .to_string();
    let predicted = fer_data::Emotion::ALL
        .into_iter()
        .position(|e| e.name().eq_ignore_ascii_case(&emotion))
        .unwrap();

    let eval = |extra: &[&str]| {
        let mut args = vec!["eval", "--data", photos.to_str().unwrap(), "--json"];
        args.extend_from_slice(extra);
        let out = fer(&args);
        assert_ok(&out);
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (json, text(&out.stderr))
    };
    let (json, stderr) = eval(&["--detect"]);
    assert_eq!(json["n"], 2, "{json}");
    let (happy, sad) = (
        fer_data::Emotion::Happy.index(),
        fer_data::Emotion::Sad.index(),
    );
    assert_eq!(json["confusion"][happy][predicted], 1, "{json}");
    assert_eq!(json["confusion"][sad][predicted], 1, "{json}");
    assert!(
        stderr.contains("no face found in 1 of 3 images, left out"),
        "{stderr}"
    );
    let (json, _) = eval(&[]);
    assert_eq!(
        json["n"], 3,
        "without --detect every image is a face: {json}"
    );

    let (_, csv) = synthetic_csv(dir.path());
    let out = fer(&["eval", "--data", csv.to_str().unwrap(), "--detect"]);
    assert_fails(&out, 1, "faces are found only in a folder of images");
}

/// `fer train` flags set up the modern recipe (saved in config.json), and `fer eval
/// --test-time-flip off` measures the same weights without flip averaging, and `fer eval
/// --corruption` on degraded images, each leaving the run's stored figures alone.
#[test]
fn modern_recipe_flags_reach_the_config_and_eval_overrides_leave_the_stored_figures() {
    let dir = tempfile::tempdir().unwrap();
    let (_, path) = synthetic_csv(dir.path());
    let run = dir.path().join("vgg");
    let (data, run_arg) = (path.to_str().unwrap(), run.to_str().unwrap());
    let mut args = vec!["train", "--data", data, "--out", run_arg];
    args.extend(
        "--epochs 2 --batch-size 32 --architecture vgg-bn --width 4 --test-time-flip \
         --optimizer sgd --lr 0.05 --cosine 0.5 --label-smoothing 0.1 \
         --class-weights sqrt-balanced --focal-gamma 1 --balanced-sampling \
         --mixup 0.2 --cutmix 1 --ema 0.99 --test-time-shift 2 -q"
            .split_whitespace(),
    );
    let out = fer(&args);
    assert_ok(&out);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["model"]["architecture"], "vgg-bn");
    assert_eq!(config["model"]["width"], 4);
    assert_eq!(config["model"]["test_time_flip"], true);
    assert_eq!(config["loss"]["class_weighting"], "sqrt_balanced");
    assert_eq!(config["loss"]["focal_gamma"], 1.0);
    assert_eq!(config["sampling"], "balanced");
    assert_eq!(config["schedule"]["kind"], "cosine");
    assert_eq!(config["schedule"]["warmup_epochs"], 0.5);
    assert_eq!(config["optimizer"]["lr"], 0.05);
    assert_eq!(config["model"]["test_time_shift"], 2);
    assert_eq!(config["ema"]["decay"], 0.99);
    assert_eq!(config["mixing"]["cutmix_alpha"], 1.0);
    let mixup = config["mixing"]["mixup_alpha"].as_f64().unwrap();
    assert!((mixup - 0.2).abs() < 1e-6, "{mixup}");
    assert!(run.join("checkpoints/epoch-0002/ema.safetensors").is_file());
    let smoothing = config["loss"]["label_smoothing"].as_f64().unwrap();
    assert!((smoothing - 0.1).abs() < 1e-6, "{smoothing}");

    let eval = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec!["eval", "--model", run_arg, "--data", data, "--json", "-q"];
        args.extend_from_slice(extra);
        let out = fer(&args);
        assert_ok(&out);
        serde_json::from_str(&text(&out.stdout)).unwrap()
    };
    let with_flip = eval(&[]);
    let stored = std::fs::read_to_string(run.join("eval-private-test.json")).unwrap();
    let without_flip = eval(&["--test-time-flip", "off", "--test-time-shift", "0"]);
    // Same images, other scores; the stored figures are still those of the run's own setting.
    assert_eq!(with_flip["n"], without_flip["n"]);
    assert_ne!(with_flip["loss"], without_flip["loss"]);
    assert_eq!(
        stored,
        std::fs::read_to_string(run.join("eval-private-test.json")).unwrap()
    );
    // Degraded images: all black at brightness 0, so every image gets the same class; a blur
    // changes the scores. Neither replaces the run's stored figures.
    let black = eval(&["--corruption", "brightness=0"]);
    let predicted: Vec<u64> = (0..7)
        .map(|p| {
            black["confusion"]
                .as_array()
                .unwrap()
                .iter()
                .map(|row| row[p].as_u64().unwrap())
                .sum()
        })
        .collect();
    assert_eq!(
        predicted.iter().filter(|&&n| n > 0).count(),
        1,
        "{predicted:?}"
    );
    assert_eq!(
        predicted.iter().sum::<u64>(),
        with_flip["n"].as_u64().unwrap()
    );
    let blurred = eval(&["--corruption", "blur=1.5"]);
    assert_eq!(blurred["n"], with_flip["n"]);
    assert_ne!(blurred["loss"], with_flip["loss"]);
    assert_eq!(
        stored,
        std::fs::read_to_string(run.join("eval-private-test.json")).unwrap()
    );
    for (flag, value, says) in [
        (
            "--corruption",
            "blur=-1",
            "the blur level must be in 0.01..=24",
        ),
        ("--test-time-flip", "maybe", "on or off"),
    ] {
        fer_fails(
            &["eval", "--model", run_arg, "--data", data, flag, value],
            2,
            says,
        );
    }
}

/// `fer eval` with several runs evaluates their ensemble: the mean of the members'
/// probabilities, stored with `--out` for `fer report`; HOG-SVM runs and `--out` without an
/// ensemble are refused.
#[test]
fn an_ensemble_averages_its_members_probabilities() {
    let dir = tempfile::tempdir().unwrap();
    let (_, path) = synthetic_csv(dir.path());
    let data = path.to_str().unwrap();
    let runs: Vec<String> = [1, 2]
        .iter()
        .map(|seed| {
            let run = dir.path().join(format!("run{seed}"));
            let seed = seed.to_string();
            let out = fer(&[
                "train",
                "--data",
                data,
                "--out",
                run.to_str().unwrap(),
                "--epochs",
                "1",
                "--seed",
                &seed,
                "--no-augment",
                "-q",
            ]);
            assert_ok(&out);
            run.display().to_string()
        })
        .collect();
    let predictions = |models: &[&str], csv: &Path| -> Vec<Vec<f64>> {
        let mut args = vec![
            "eval",
            "--data",
            data,
            "-q",
            "--predictions",
            csv.to_str().unwrap(),
        ];
        for model in models {
            args.extend(["--model", model]);
        }
        let ensemble_dir = dir.path().join("both");
        if models.len() > 1 {
            args.extend(["--out", ensemble_dir.to_str().unwrap()]);
        }
        let out = fer(&args);
        assert_ok(&out);
        std::fs::read_to_string(csv)
            .unwrap()
            .lines()
            .skip(1)
            .map(|line| {
                line.split(',')
                    .skip(3)
                    .map(|v| v.parse().unwrap())
                    .collect()
            })
            .collect()
    };
    let a = predictions(&[&runs[0]], &dir.path().join("a.csv"));
    let b = predictions(&[&runs[1]], &dir.path().join("b.csv"));
    let both = predictions(&[&runs[0], &runs[1]], &dir.path().join("both.csv"));
    assert_eq!(both.len(), 30);
    assert_ne!(a, b, "two seeds, two models");
    for ((pa, pb), pe) in a.iter().zip(&b).zip(&both) {
        for k in 0..7 {
            assert!((pe[k] - (pa[k] + pb[k]) / 2.0).abs() < 2e-6, "{pe:?}");
        }
    }
    let stored: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("both/eval-private-test.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(stored["n"], 30);
    let config = std::fs::read_to_string(dir.path().join("both/config.json")).unwrap();
    assert!(
        config.contains("run1") && config.contains("run2"),
        "{config}"
    );
    // The report reads the ensemble's directory like a run.
    let report = dir.path().join("report.html");
    let out = fer(&[
        "report",
        &runs[0],
        dir.path().join("both").to_str().unwrap(),
        "--out",
        report.to_str().unwrap(),
    ]);
    assert_ok(&out);
    assert!(std::fs::read_to_string(&report).unwrap().contains("both"));
    let alone = fer(&["eval", "--model", &runs[0], "--data", data, "--out", "x"]);
    assert_fails(&alone, 1, "ensembles");
}

/// Enumerated flags are parsed by clap: a bad value is a usage error listing the good ones.
#[test]
fn enumerated_flags_refuse_unknown_values_listing_the_known_ones() {
    let train = ["train", "--data", "x.csv", "--out", "run"];
    let cases: [(&[&str], &str); 9] = [
        (&["--head", "soft"], "softmax, svm"),
        (&["--optimizer", "adam"], "adadelta, sgd, adamw"),
        (&["--architecture", "vgg"], "seed-cnn, vgg-bn"),
        (
            &["--class-weights", "sqrt"],
            "none, balanced, sqrt-balanced",
        ),
        (
            &["--augment", "strong"],
            "none, seed, modern, robust, everything",
        ),
        (&["--model", "svm"], "cnn, hog-svm"),
        (&["--device", "gpu"], "expected cpu, cuda or cuda:N"),
        (&["--device", "cuda:x"], "expected cpu, cuda or cuda:N"),
        (&["--epochs", "1", "--head", "SVM"], "softmax, svm"),
    ];
    for (flags, listed) in cases {
        let mut args = train.to_vec();
        args.extend_from_slice(flags);
        let out = fer(&args);
        assert_eq!(out.status.code(), Some(2), "{flags:?}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains(&format!("invalid value '{}'", flags[flags.len() - 1]))
                && stderr.contains(listed),
            "{flags:?}: {stderr}"
        );
    }
    for (args, listed) in [
        (
            &[
                "augment-preview",
                "--data",
                "x.csv",
                "--out",
                "g.png",
                "--profile",
                "wild",
            ][..],
            "none, seed, modern, robust, everything",
        ),
        (
            &["predict", "--model", "run", "--format", "xml", "face.png"][..],
            "text, json, csv",
        ),
        (
            &[
                "predict", "--model", "run", "--format", "csv", "--json", "face.png",
            ][..],
            "cannot be used with",
        ),
        (
            &[
                "eval", "--model", "run", "--data", "x.csv", "--device", "tpu",
            ][..],
            "expected cpu, cuda or cuda:N",
        ),
    ] {
        fer_fails(args, 2, listed);
    }
}

/// A batch size of 0 is a usage error (exit 2) wherever a command takes one, never a silent 1.
#[test]
fn batch_size_0_is_refused_by_every_command_that_takes_one() {
    for command in [
        &[
            "train",
            "--data",
            "x.csv",
            "--out",
            "run",
            "--batch-size",
            "0",
        ][..],
        &["predict", "--model", "run", "--batch-size", "0", "face.png"][..],
    ] {
        let out = fer(command);
        assert_eq!(out.status.code(), Some(2), "{command:?}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("invalid value '0' for '--batch-size") && stderr.contains("at least 1"),
            "{command:?}: {stderr}"
        );
    }
    // A training config file cannot sneak one in either.
    let dir = tempfile::tempdir().unwrap();
    let (_, path) = synthetic_csv(dir.path());
    let config = dir.path().join("config.json");
    let mut defaults: serde_json::Value =
        serde_json::to_value(fer_model::TrainConfig::default()).unwrap();
    defaults["batch_size"] = 0.into();
    std::fs::write(&config, defaults.to_string()).unwrap();
    let out = fer(&[
        "train",
        "--data",
        path.to_str().unwrap(),
        "--out",
        dir.path().join("run").to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_fails(&out, 1, "config.json: batch_size must be at least 1");
}

/// A plain --resume of a finished run leaves it at its own length (not the default 100
/// epochs); --resume with a larger --epochs lengthens it and the run directory records that.
#[test]
fn resume_keeps_a_runs_length_unless_epochs_lengthens_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_, data, run) = tiny_run(dir.path());
    let json = |name: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(run.join(name)).unwrap()).unwrap()
    };
    let resume = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--data",
            data.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
            "--resume",
        ];
        args.extend_from_slice(extra);
        let out = fer(&args);
        assert_ok(&out);
        text(&out.stderr)
    };
    let stderr = resume(&[]);
    assert!(!stderr.contains("extending"), "{stderr}");
    // Its config is the run's own, so nothing given on the command line is reported ignored.
    assert!(!stderr.contains("ignored"), "{stderr}");
    assert_eq!(json("state.json")["epoch"], 1);
    assert_eq!(json("config.json")["epochs"], 1);
    assert!(json("state.json").get("extensions").is_none());

    let stderr = resume(&["--epochs", "2"]);
    assert!(
        stderr.contains("extending the run from 1 to 2 epochs after epoch 1"),
        "{stderr}"
    );
    assert_eq!(json("state.json")["epoch"], 2);
    assert_eq!(json("config.json")["epochs"], 2);
    assert_eq!(
        json("state.json")["extensions"],
        serde_json::json!([{"after_epoch": 1, "from_epochs": 1, "to_epochs": 2}])
    );
    assert_eq!(json("history.json").as_array().unwrap().len(), 2);
}

#[test]
fn eval_on_other_data_never_replaces_the_runs_own_figures() {
    let dir = tempfile::tempdir().unwrap();
    let (_, own, run) = tiny_run(dir.path());
    assert!(run.join("data.json").is_file());
    let eval = |data: &Path| {
        let out = fer(&[
            "eval",
            "--model",
            run.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
        ]);
        assert_ok(&out);
        text(&out.stderr)
    };
    eval(&own);
    let stored = run.join("eval-private-test.json");
    let before = std::fs::read_to_string(&stored).unwrap();

    let other = dir.path().join("other.csv");
    let mut config = SyntheticConfig::small(99);
    config.per_split = [16, 16, 24];
    fer_data::write_csv(&generate(&config), &other).unwrap();
    let stderr = eval(&other);
    assert!(
        stderr.contains("not the data the run was trained on"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&stored).unwrap(), before);
    let keyed: Vec<String> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("eval-private-test-data-"))
        .collect();
    assert_eq!(keyed.len(), 1, "{keyed:?}");

    // Nor can the run be resumed on the other data.
    let out = fer(&[
        "train",
        "--data",
        other.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--epochs",
        "2",
        "--resume",
    ]);
    assert_fails(&out, 1, "other data");
}

/// `--teacher` trains against another run's probabilities: the config records the teacher
/// and the loss's settings, the log its pass over the Training images (again on --resume);
/// loss settings without a teacher, a teacher that cannot load, or a bad weight fail with
/// one line naming the cause, before any training.
#[test]
fn train_with_a_teacher_records_it_and_resumes_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_, data, teacher) = tiny_run(dir.path());
    let student = dir.path().join("student");
    let train = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--data",
            data.to_str().unwrap(),
            "--out",
            student.to_str().unwrap(),
            "--batch-size",
            "32",
        ];
        args.extend_from_slice(extra);
        fer(&args)
    };
    let out = train(&["--distill-weight", "0.3"]);
    assert_fails(
        &out,
        1,
        "--distill-weight and --distill-temperature need a teacher",
    );
    let missing = dir.path().join("no-such-run");
    let out = train(&["--teacher", missing.to_str().unwrap()]);
    assert_fails(&out, 1, "distillation.teacher: cannot load");
    let teacher_arg = teacher.to_str().unwrap();
    let out = train(&["--teacher", teacher_arg, "--distill-weight", "1.5"]);
    assert_fails(&out, 1, "distillation.weight must be in [0, 1], got 1.5");
    assert!(!student.join("state.json").exists());

    let out = train(&[
        "--teacher",
        teacher_arg,
        "--distill-temperature",
        "4",
        "--epochs",
        "1",
    ]);
    assert_ok(&out);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("teacher {teacher_arg}: 64 Training images")),
        "{stderr}"
    );
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(student.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(
        config["distillation"],
        serde_json::json!({"teacher": [teacher_arg], "weight": 0.5, "temperature": 4.0})
    );
    // The probabilities are kept in the run: 64 Training images x 7 classes of f32.
    let kept = student.join("teacher.safetensors");
    let kept_bytes = std::fs::read(&kept).unwrap();
    assert!(kept_bytes.len() > 64 * 7 * 4, "{} bytes", kept_bytes.len());

    // The started run without --resume is refused before any teacher pass.
    let out = train(&["--teacher", teacher_arg]);
    assert_fails(&out, 1, "already holds a run: pass --resume");
    assert!(!text(&out.stderr).contains("Training images in"));

    // Resumed, it trains on the kept probabilities: no second teacher pass.
    let resume = |epochs: &str| {
        fer(&[
            "train",
            "--data",
            data.to_str().unwrap(),
            "--out",
            student.to_str().unwrap(),
            "--resume",
            "--epochs",
            epochs,
        ])
    };
    let out = resume("2");
    assert_ok(&out);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("the probabilities kept since the run started")
            && !stderr.contains("Training images in"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&kept).unwrap(), kept_bytes);
    let history: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(student.join("history.json")).unwrap())
            .unwrap();
    assert_eq!(history.as_array().unwrap().len(), 2);

    // A damaged file stops the resumed run in one line naming it, and nothing is trained.
    std::fs::write(&kept, &kept_bytes[..kept_bytes.len() / 2]).unwrap();
    let out = resume("3");
    assert_fails(&out, 1, "teacher.safetensors: not a valid checkpoint");
    let history: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(student.join("history.json")).unwrap())
            .unwrap();
    assert_eq!(history.as_array().unwrap().len(), 2);

    // A run started before the file existed evaluates its teacher again and keeps it.
    std::fs::remove_file(&kept).unwrap();
    let out = resume("3");
    assert_ok(&out);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("teacher {teacher_arg}: 64 Training images")),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&kept).unwrap(), kept_bytes);
}
