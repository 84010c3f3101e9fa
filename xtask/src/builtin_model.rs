//! `builtin-model`: turns trained runs into one of the models compiled into the `fer` crate:
//! each run's network (`crates/fer/models/networks/NETWORK/`: its config and normalizer, its
//! best weights stored as f16), and the model's figures (`crates/fer/models/NAME/`): `fer
//! eval` of those f16 weights on PublicTest and PrivateTest, one network or the ensemble of
//! several, checked against the same evaluation of the runs' f32 weights.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use candle_core::{DType, Device};

/// Where the `fer` crate keeps its built-in models, relative to the workspace root.
const MODELS_DIR: &str = "crates/fer/models";
/// The largest accuracy change (in points) that storing the weights as f16 may cause.
const MAX_ACCURACY_CHANGE_POINTS: f64 = 0.1;

#[derive(clap::Args)]
pub struct BuiltinModelArgs {
    /// A run directory to ship (its best.safetensors, config.json and normalizer.json); give
    /// several for an ensemble (their class probabilities averaged).
    #[arg(long, required = true)]
    pub run: Vec<PathBuf>,
    /// The name of each run's network, in --run's order: its directory under
    /// crates/fer/models/networks/ (the run's results/ folder name).
    #[arg(long, required = true)]
    pub network: Vec<String>,
    /// The built-in model's name (`builtin:NAME`).
    #[arg(long)]
    pub name: String,
    /// FER2013 CSV to evaluate the f16 weights on [default: $FER2013_CSV].
    #[arg(long, env = "FER2013_CSV")]
    pub data: PathBuf,
}

/// A name that is a safe directory name: lower-case letters, digits and '-'.
fn check_name(option: &str, name: &str) -> Result<()> {
    ensure!(
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
        "{option} `{name}`: use lower-case letters, digits and '-'"
    );
    Ok(())
}

pub fn run(args: BuiltinModelArgs) -> Result<()> {
    check_name("--name", &args.name)?;
    ensure!(
        args.run.len() == args.network.len(),
        "{} --run but {} --network: name each run's network",
        args.run.len(),
        args.network.len()
    );
    for network in &args.network {
        check_name("--network", network)?;
    }
    let root = crate::workspace_root();
    let models = root.join(MODELS_DIR);
    let mut shipped = Vec::with_capacity(args.run.len());
    let mut originals = Vec::with_capacity(args.run.len());
    for (run, network) in args.run.iter().zip(&args.network) {
        let dir = models.join("networks").join(network);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        for file in ["config.json", "normalizer.json"] {
            std::fs::copy(run.join(file), dir.join(file))
                .with_context(|| format!("cannot copy {}", run.join(file).display()))?;
        }
        let weights = dir.join("model.safetensors");
        to_f16(&run.join("best.safetensors"), &weights)?;
        eprintln!(
            "{}: {} bytes (f16)",
            weights.display(),
            std::fs::metadata(&weights)?.len()
        );
        shipped.push(weights);
        originals.push(run.join("best.safetensors"));
    }

    let out = models.join(&args.name);
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let fer = crate::pipeline::build_fer(&root, "cpu")?;
    for split in ["public-test", "private-test"] {
        let figures = evaluate(&fer, &shipped, &args.data, split)?;
        let path = out.join(format!("eval-{split}.json"));
        fer_data::write_atomically(&path, &figures)?;
        let f16_accuracy = accuracy(&path, &figures)?;
        let f32_accuracy = accuracy(
            Path::new("the runs' f32 weights"),
            &evaluate(&fer, &originals, &args.data, split)?,
        )?;
        let change = 100.0 * (f16_accuracy - f32_accuracy);
        eprintln!(
            "{split}: f32 {:.2}%, f16 {:.2}% ({change:+.3} points)",
            100.0 * f32_accuracy,
            100.0 * f16_accuracy
        );
        ensure!(
            change.abs() < MAX_ACCURACY_CHANGE_POINTS,
            "f16 weights move {split} accuracy by {change:+.3} points (limit {MAX_ACCURACY_CHANGE_POINTS})"
        );
    }
    eprintln!("wrote {}", out.display());
    Ok(())
}

/// `fer eval --json` of `weights` (one model file, or several as an ensemble) on `split`.
fn evaluate(fer: &Path, weights: &[PathBuf], data: &Path, split: &str) -> Result<Vec<u8>> {
    let mut command = Command::new(fer);
    command.arg("eval");
    for file in weights {
        command.arg("--model").arg(file);
    }
    let output = command
        .arg("--data")
        .arg(data)
        .args(["--split", split, "--json", "--quiet"])
        .output()
        .context("cannot run fer eval")?;
    if !output.status.success() {
        bail!(
            "fer eval failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(output.stdout)
}

/// Rewrites a safetensors file with every float tensor as f16.
fn to_f16(from: &Path, to: &Path) -> Result<()> {
    let tensors = fer_model::checkpoint::load_tensors(from, &Device::Cpu)?;
    let mut converted = HashMap::with_capacity(tensors.len());
    for (name, tensor) in tensors {
        let tensor = if tensor.dtype().is_float() {
            tensor.to_dtype(DType::F16)?
        } else {
            tensor
        };
        converted.insert(name, tensor);
    }
    fer_model::checkpoint::save_tensors(to, &converted)?;
    Ok(())
}

/// The `accuracy` of eval JSON `bytes` (from `path`, which errors name).
fn accuracy(path: &Path, bytes: &[u8]) -> Result<f64> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).with_context(|| format!("{}: not JSON", path.display()))?;
    value["accuracy"]
        .as_f64()
        .with_context(|| format!("{}: no accuracy", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Tensor;

    fn args(runs: &[&str], networks: &[&str]) -> BuiltinModelArgs {
        BuiltinModelArgs {
            run: runs.iter().map(PathBuf::from).collect(),
            network: networks.iter().map(|n| n.to_string()).collect(),
            name: "accurate".into(),
            data: PathBuf::from("fer2013.csv.gz"),
        }
    }

    #[test]
    fn each_run_needs_a_network_name_that_is_a_plain_directory_name() {
        let error = run(args(&["a", "b"], &["x"])).unwrap_err().to_string();
        assert!(error.contains("2 --run but 1 --network"), "{error}");
        let error = run(args(&["a"], &["../up"])).unwrap_err().to_string();
        assert!(error.contains("--network `../up`"), "{error}");
    }

    #[test]
    fn weights_are_stored_as_f16_and_read_back_close() {
        let dir = tempfile::tempdir().unwrap();
        let values = vec![0.1f32, -2.5, 3.0e-3, 1234.5];
        let tensors: HashMap<String, Tensor> = [
            (
                "a.weight".to_string(),
                Tensor::new(values.as_slice(), &Device::Cpu).unwrap(),
            ),
            (
                "steps".to_string(),
                Tensor::new(&[7u32], &Device::Cpu).unwrap(),
            ),
        ]
        .into_iter()
        .collect();
        let from = dir.path().join("f32.safetensors");
        candle_core::safetensors::save(&tensors, &from).unwrap();
        let to = dir.path().join("f16.safetensors");
        to_f16(&from, &to).unwrap();
        let back = candle_core::safetensors::load(&to, &Device::Cpu).unwrap();
        assert_eq!(back["a.weight"].dtype(), DType::F16);
        assert_eq!(back["steps"].dtype(), DType::U32);
        let read: Vec<f32> = back["a.weight"]
            .to_dtype(DType::F32)
            .unwrap()
            .to_vec1()
            .unwrap();
        for (r, v) in read.iter().zip(&values) {
            assert!((r - v).abs() <= v.abs() * 1e-3, "{r} vs {v}");
        }
        assert!(std::fs::metadata(&to).unwrap().len() < std::fs::metadata(&from).unwrap().len());
    }
}
