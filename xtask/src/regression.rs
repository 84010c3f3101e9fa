//! `cargo xtask regression`: a short deterministic pipeline on synthetic data, checked against a
//! committed baseline (the CI job that catches accuracy regressions and nondeterminism).
//!
//! It generates a seeded FER-format CSV (noisy gratings with FER2013's class balance, black
//! images and duplicates), runs the `smoke` pipeline profile on it twice, and checks that
//!
//! 1. both runs give bit-identical PrivateTest metrics (same seed, same machine, same numbers),
//! 2. no model's accuracy or macro-F1 is below the baseline's by more than its tolerance.
//!
//! Better figures pass with a note to refresh the baseline (`--update`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use fer_data::synthetic::{SyntheticConfig, generate};
use serde::{Deserialize, Serialize};

use crate::pipeline::{self, PipelineArgs};

// No doc comment here: the `Regression` variant in main.rs provides the subcommand's help.
#[derive(clap::Args, Debug, Clone)]
pub struct RegressionArgs {
    /// The committed baseline.
    #[arg(long, default_value = "xtask/baselines/regression.json")]
    pub baseline: PathBuf,
    /// Write the measured metrics as the new baseline instead of checking them.
    #[arg(long)]
    pub update: bool,
    /// Working directory (removed and recreated).
    #[arg(long, default_value = "target/regression")]
    pub work: PathBuf,
}

/// The committed expectations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// How the figures were made.
    pub note: String,
    /// The synthetic data.
    pub data: SyntheticConfig,
    /// Largest allowed drop of accuracy or macro-F1 (absolute, in 0..1): float sums differ
    /// across CPUs (SIMD widths), which can flip a few of the PrivateTest predictions.
    pub tolerance: f64,
    /// Model name -> PrivateTest figures.
    pub models: BTreeMap<String, Figures>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    pub accuracy: f64,
    pub macro_f1: f64,
}

/// The data every regression run uses, unless the baseline names another.
pub fn default_data() -> SyntheticConfig {
    let mut config = SyntheticConfig::fer_like(2013, [1400, 350, 350]);
    config.noise_std = 90.0;
    config
}

pub fn run(args: RegressionArgs) -> Result<()> {
    let root = crate::workspace_root();
    let baseline_path = root.join(&args.baseline);
    let baseline: Option<Baseline> =
        if args.update {
            None
        } else {
            let text = std::fs::read_to_string(&baseline_path)
                .with_context(|| format!("cannot read baseline {}", baseline_path.display()))?;
            Some(serde_json::from_str(&text).with_context(|| {
                format!("{}: not a regression baseline", baseline_path.display())
            })?)
        };
    let data_config = baseline
        .as_ref()
        .map_or_else(default_data, |b| b.data.clone());
    let work = root.join(&args.work);
    if work.exists() {
        std::fs::remove_dir_all(&work)
            .with_context(|| format!("cannot remove {}", work.display()))?;
    }
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let csv = work.join("synthetic.csv.gz");
    fer_data::write_csv(&generate(&data_config), &csv)?;

    let mut results = Vec::new();
    for attempt in ["a", "b"] {
        let out = work.join(format!("run-{attempt}"));
        pipeline::run(PipelineArgs {
            data: Some(csv.clone()),
            profile: "smoke".into(),
            out: Some(out.clone()),
            seed: None,
            device: "cpu".into(),
            dry_run: false,
        })?;
        results.push(read_figures(&out)?);
    }
    ensure!(
        results[0] == results[1],
        "two runs with the same seed gave different metrics:\n{:#?}\n{:#?}",
        results[0],
        results[1]
    );
    let measured = results.remove(0);
    println!("runs a and b gave identical metrics");

    let Some(baseline) = baseline else {
        let baseline = Baseline {
            note: "PrivateTest figures of `cargo xtask regression` (profile smoke on synthetic \
                   data); refresh with `cargo xtask regression --update`"
                .into(),
            data: data_config,
            tolerance: 0.03,
            models: measured,
        };
        let text = serde_json::to_string_pretty(&baseline)? + "\n";
        std::fs::write(&baseline_path, text)
            .with_context(|| format!("cannot write {}", baseline_path.display()))?;
        println!("wrote {}", baseline_path.display());
        return Ok(());
    };
    let failures = compare(&baseline, &measured);
    for line in &failures {
        eprintln!("regression: {line}");
    }
    ensure!(
        failures.is_empty(),
        "{} figure(s) fell below the baseline {} (tolerance {})",
        failures.len(),
        baseline_path.display(),
        baseline.tolerance
    );
    println!("no regression against {}", baseline_path.display());
    Ok(())
}

/// The lines that describe each figure below its baseline by more than the tolerance (and
/// models missing from either side); improvements are printed as notes.
pub fn compare(baseline: &Baseline, measured: &BTreeMap<String, Figures>) -> Vec<String> {
    let mut failures = Vec::new();
    for (model, expected) in &baseline.models {
        let Some(got) = measured.get(model) else {
            failures.push(format!("{model}: no figures (the model was not trained)"));
            continue;
        };
        for (name, want, have) in [
            ("accuracy", expected.accuracy, got.accuracy),
            ("macro-F1", expected.macro_f1, got.macro_f1),
        ] {
            println!("{model:<22} {name:<9} baseline {want:.4}  now {have:.4}");
            if have < want - baseline.tolerance {
                failures.push(format!("{model}: {name} {have:.4} < baseline {want:.4}"));
            } else if have > want + baseline.tolerance {
                println!("  better than the baseline: refresh it with --update");
            }
        }
    }
    for model in measured.keys() {
        if !baseline.models.contains_key(model) {
            failures.push(format!(
                "{model}: not in the baseline (refresh it with --update)"
            ));
        }
    }
    failures
}

/// Every model's PrivateTest figures in a pipeline output directory.
fn read_figures(out: &Path) -> Result<BTreeMap<String, Figures>> {
    let mut figures = BTreeMap::new();
    for entry in std::fs::read_dir(out).with_context(|| format!("cannot read {}", out.display()))? {
        let dir = entry?.path();
        let eval = dir.join("eval-private-test.json");
        if !eval.is_file() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_slice(&std::fs::read(&eval)?)
            .with_context(|| format!("{}: not an evaluation", eval.display()))?;
        let number = |key: &str| {
            value[key]
                .as_f64()
                .with_context(|| format!("{}: no `{key}`", eval.display()))
        };
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        figures.insert(
            name,
            Figures {
                accuracy: number("accuracy")?,
                macro_f1: number("macro_f1")?,
            },
        );
    }
    ensure!(
        !figures.is_empty(),
        "{}: no evaluations found",
        out.display()
    );
    Ok(figures)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn baseline() -> Baseline {
        Baseline {
            note: String::new(),
            data: default_data(),
            tolerance: 0.03,
            models: BTreeMap::from([
                (
                    "a".to_string(),
                    Figures {
                        accuracy: 0.60,
                        macro_f1: 0.50,
                    },
                ),
                (
                    "b".to_string(),
                    Figures {
                        accuracy: 0.40,
                        macro_f1: 0.30,
                    },
                ),
            ]),
        }
    }

    #[test]
    fn drops_beyond_the_tolerance_fail_and_small_ones_pass() {
        let mut measured = baseline().models;
        measured.get_mut("a").unwrap().accuracy = 0.58; // within 0.03
        measured.get_mut("b").unwrap().macro_f1 = 0.26; // 0.04 below
        let failures = compare(&baseline(), &measured);
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(
            failures[0].starts_with("b: macro-F1 0.2600"),
            "{failures:?}"
        );
    }

    #[test]
    fn improvements_pass_and_missing_or_new_models_fail() {
        let mut measured = baseline().models;
        measured.get_mut("a").unwrap().accuracy = 0.9;
        assert!(compare(&baseline(), &measured).is_empty());
        measured.remove("b");
        measured.insert(
            "c".into(),
            Figures {
                accuracy: 1.0,
                macro_f1: 1.0,
            },
        );
        let failures = compare(&baseline(), &measured);
        assert_eq!(failures.len(), 2, "{failures:?}");
    }

    #[test]
    fn the_committed_baseline_parses_and_covers_the_smoke_profile() {
        let text = std::fs::read_to_string(
            crate::workspace_root().join("xtask/baselines/regression.json"),
        )
        .unwrap();
        let baseline: Baseline = serde_json::from_str(&text).unwrap();
        let (_, smoke) = pipeline::Profile::load("smoke").unwrap();
        let mut expected: Vec<String> = smoke.runs.iter().map(|r| r.name.clone()).collect();
        if smoke.hog_svm.is_some() {
            expected.push("hog-svm".into());
        }
        expected.sort();
        let names: Vec<String> = baseline.models.keys().cloned().collect();
        assert_eq!(names, expected);
        assert!(baseline.tolerance > 0.0 && baseline.tolerance < 0.1);
    }
}
