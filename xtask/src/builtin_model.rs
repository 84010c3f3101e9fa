//! `builtin-model`: turns a trained run into one of the models compiled into the `fer` crate
//! (`crates/fer/models/NAME/`): its config and normalizer, its best weights stored as f16, and
//! `fer eval` of those f16 weights on PublicTest and PrivateTest, checked against the run's own
//! f32 figures.

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
    /// The run directory to ship (its best.safetensors, config.json, normalizer.json, and its
    /// eval-public-test.json / eval-private-test.json for the f32 comparison).
    #[arg(long)]
    pub run: PathBuf,
    /// The built-in model's name (`builtin:NAME`).
    #[arg(long)]
    pub name: String,
    /// FER2013 CSV to evaluate the f16 weights on [default: $FER2013_CSV].
    #[arg(long, env = "FER2013_CSV")]
    pub data: PathBuf,
}

pub fn run(args: BuiltinModelArgs) -> Result<()> {
    ensure!(
        !args.name.is_empty()
            && args
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
        "--name `{}`: use lower-case letters, digits and '-'",
        args.name
    );
    let root = crate::workspace_root();
    let out = root.join(MODELS_DIR).join(&args.name);
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    for file in ["config.json", "normalizer.json"] {
        std::fs::copy(args.run.join(file), out.join(file))
            .with_context(|| format!("cannot copy {}", args.run.join(file).display()))?;
    }
    let weights = out.join("model.safetensors");
    to_f16(&args.run.join("best.safetensors"), &weights)?;
    eprintln!(
        "{}: {} bytes (f16)",
        weights.display(),
        std::fs::metadata(&weights)?.len()
    );

    let fer = crate::pipeline::build_fer(&root, "cpu")?;
    for split in ["public-test", "private-test"] {
        let output = Command::new(&fer)
            .args(["eval", "--model"])
            .arg(&weights)
            .arg("--data")
            .arg(&args.data)
            .args(["--split", split, "--json", "--quiet"])
            .output()
            .context("cannot run fer eval")?;
        if !output.status.success() {
            bail!(
                "fer eval failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let path = out.join(format!("eval-{split}.json"));
        fer_data::write_atomically(&path, &output.stdout)?;
        let shipped = accuracy(&path)?;
        let original = args.run.join(format!("eval-{split}.json"));
        if original.is_file() {
            let f32_accuracy = accuracy(&original)?;
            let change = 100.0 * (shipped - f32_accuracy);
            eprintln!(
                "{split}: f32 {:.2}%, f16 {:.2}% ({change:+.3} points)",
                100.0 * f32_accuracy,
                100.0 * shipped
            );
            ensure!(
                change.abs() < MAX_ACCURACY_CHANGE_POINTS,
                "f16 weights move {split} accuracy by {change:+.3} points (limit {MAX_ACCURACY_CHANGE_POINTS})"
            );
        } else {
            eprintln!(
                "{split}: f16 {:.2}% (no {} to compare with)",
                100.0 * shipped,
                original.display()
            );
        }
    }
    eprintln!("wrote {}", out.display());
    Ok(())
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

/// The `accuracy` of an eval JSON file.
fn accuracy(path: &Path) -> Result<f64> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    value["accuracy"]
        .as_f64()
        .with_context(|| format!("{}: no accuracy", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Tensor;

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
