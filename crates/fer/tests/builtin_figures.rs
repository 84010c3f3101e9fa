//! The built-in models' recorded figures are what they score: each is evaluated again on the
//! real FER2013 PrivateTest and PublicTest, and accuracy, macro-F1 and the confusion matrix
//! must equal the `eval-*.json` compiled in beside it (the files `cargo xtask builtin-model`
//! wrote from `fer eval`).
//!
//! The file is read from `$FER2013_CSV`, else from `../shared/data/fer2013.csv.gz` beside the
//! workspace. `FER_SKIP_REAL_DATA=1`, or a missing file, skips the test with a `SKIPPED` line
//! on stderr; on CI (`CI` set) a missing file fails it instead.

use candle_core::Device;
use fer::BUILTIN_MODELS;
use fer_data::{LoadOptions, Split, load};
use fer_model::eval::evaluate;

#[path = "../../fer-data/tests/support/real_fer2013.rs"]
mod real_fer2013;

use real_fer2013::real_fer2013;

#[test]
fn builtin_models_score_what_their_recorded_figures_say() {
    let Some(path) = real_fer2013("builtin_models_score_what_their_recorded_figures_say") else {
        return;
    };
    let data = load(&path, &LoadOptions::default()).unwrap().dataset;
    for model in BUILTIN_MODELS {
        let trained = model.load(&Device::Cpu).unwrap();
        for (split, json) in [
            (Split::PrivateTest, model.eval_private_test_json),
            (Split::PublicTest, model.eval_public_test_json),
        ] {
            let recorded: serde_json::Value = serde_json::from_str(json).unwrap();
            let evaluation = evaluate(
                trained.model.as_ref(),
                &data.view(split),
                &trained.normalizer,
                &Device::Cpu,
                256,
            )
            .unwrap();
            let metrics = &evaluation.metrics;
            eprintln!(
                "builtin:{} on {split}: accuracy {:.2}%, macro-F1 {:.3}",
                model.name,
                100.0 * metrics.accuracy,
                metrics.macro_f1
            );
            assert_eq!(recorded["split"], split.name(), "{}", model.name);
            assert_eq!(recorded["n"], metrics.n, "{}", model.name);
            let confusion: Vec<Vec<usize>> =
                serde_json::from_value(recorded["confusion"].clone()).unwrap();
            let measured: Vec<Vec<usize>> =
                metrics.confusion.iter().map(|row| row.to_vec()).collect();
            assert_eq!(
                confusion, measured,
                "builtin:{} {split} confusion",
                model.name
            );
            assert!(
                (recorded["accuracy"].as_f64().unwrap() - metrics.accuracy).abs() < 1e-12,
                "builtin:{} {split}",
                model.name
            );
            assert!(
                (recorded["macro_f1"].as_f64().unwrap() - metrics.macro_f1).abs() < 1e-9,
                "builtin:{} {split}",
                model.name
            );
        }
    }
}

#[test]
fn builtin_models_fit_the_size_budget() {
    // What the models add to a binary: at most 30 MB in all (four width-32 vgg-bn networks
    // in f16, 7.1 MB each: `fast`'s and `accurate`'s three), each network counted once
    // (models that share a network share its statics).
    let mut networks: Vec<&fer::BuiltinNetwork> = BUILTIN_MODELS
        .iter()
        .flat_map(|m| m.networks.iter().copied())
        .collect();
    networks.sort_by_key(|n| n.name);
    networks.dedup_by_key(|n| n.name);
    let total: usize = networks
        .iter()
        .map(|n| n.weights.len() + n.normalizer_json.len() + n.config_json.len())
        .sum();
    assert!(total <= 30_000_000, "{total} bytes");
}

#[test]
fn the_workspace_readme_shows_this_crates_example() {
    // The top-level README quotes the crate README's example, which is compiled as a doc-test.
    let crate_readme = include_str!("../README.md");
    let start = crate_readme.find("```rust").expect("an example");
    let end = start + crate_readme[start..].find("\n```\n").expect("its end");
    let example = &crate_readme[start + "```rust,no_run\n".len()..end];
    let workspace_readme = include_str!("../../../README.md");
    assert!(
        workspace_readme.contains(example),
        "README.md must quote crates/fer/README.md's example verbatim"
    );
}
