//! `cargo xtask gpu-check`: the prepared check for a lent GPU, one command, every figure as
//! JSON under `--out`.
//!
//! Three stages, each written to `OUT/gpu-check.json` as soon as it ends (a run stopped by a
//! time limit keeps what it measured):
//! 1. `compare`: the seed CNN and vgg-bn, same seeded weights on the CPU and on the device,
//!    one fixed batch: inference logits, training-mode logits (same dropout masks) and every
//!    parameter's gradient, each within 1e-4 of the CPU's relative to the tensor's largest
//!    value.
//! 2. `speed`: training-step and inference images/s at each `--batches` size for the seed CNN
//!    and vgg-bn (widths 32 and 64), beside the PyTorch peers (`xtask/bench/*_reference.py
//!    speed --device cuda`) on the same GPU.
//! 3. `train`: the `--profile` (default `best`) trained for the minutes left of `--minutes`,
//!    its epochs planned from the measured speed, PublicTest accuracy per epoch.
//!
//! On a machine without the toolkit or cargo (the lent GPU machine), `--bundle DIR` packs what
//! the check needs (this binary built with `--features cuda` by `cargo xtask check-cuda`, and
//! FER2013's Training and PublicTest rows) into parts that fit the machine's transfer limit;
//! `xtask/gpu-check.sh` unpacks them there and runs the check. `--device cpu --tiny` runs
//! every stage at toy sizes on synthetic data, as the tests do, so the check cannot rot.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use candle_core::{Device, Tensor};
use fer_model::{DeviceName, EpochRecord, Loss, ModelConfig, Observer, TrainConfig};
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::bench::{Figures, PEER_SEED_CNN, PEER_VGG_BN, PYTHON_ENV, StepSpec};

/// The largest difference allowed between CPU and device values, relative to the largest
/// magnitude of the CPU tensor.
pub const TOLERANCE: f64 = 1e-4;

/// The file every figure goes to.
pub const REPORT: &str = "gpu-check.json";

/// The data file inside the bundle.
pub const BUNDLED_DATA: &str = "fer2013-train-public.csv";

/// The most bytes one bundle part may hold: the GPU machine takes 64 MiB per call, the
/// repository's tracked files (about 19 MB) included.
const PART_BYTES: u64 = 40 << 20;

#[derive(clap::Args)]
pub struct GpuCheckArgs {
    /// Folder for gpu-check.json.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The device checked against the CPU: cuda, cuda:N, or cpu (a dry run).
    #[arg(long, default_value = "cuda")]
    device: DeviceName,
    /// FER2013 file (.csv or .csv.gz; Training and PublicTest are read); default:
    /// $FER2013_CSV, data/, or ../shared/data/ beside the checkout.
    #[arg(long, env = "FER2013_CSV")]
    data: Option<PathBuf>,
    /// The profile trained in the last stage (its first run): a name or a profile file.
    #[arg(long, default_value = "best")]
    profile: String,
    /// Minutes the whole check may take; training gets what the first two stages leave.
    #[arg(long, default_value_t = 6.0)]
    minutes: f64,
    /// Batch sizes timed in the speed stage.
    #[arg(long, value_delimiter = ',', default_value = "128,256")]
    batches: Vec<usize>,
    /// Seconds of timed steps per speed figure.
    #[arg(long, default_value_t = 3.0)]
    secs: f64,
    /// Python with torch (CUDA) for the peers; required unless --no-peer.
    #[arg(long, env = PYTHON_ENV)]
    python: Option<PathBuf>,
    /// Skip the PyTorch peers.
    #[arg(long)]
    no_peer: bool,
    /// Toy sizes on synthetic data (a dry run of every stage in seconds).
    #[arg(long)]
    tiny: bool,
    /// Instead of checking: pack target/cuda/release/xtask and the --data's Training and
    /// PublicTest rows into DIR/part-N/ for the GPU machine (see xtask/gpu-check.sh).
    #[arg(long, conflicts_with = "out")]
    bundle: Option<PathBuf>,
}

/// The sizes of one check: the real ones or the dry run's.
struct Sizes {
    compare_batch: usize,
    /// (architecture, width) timed in the speed stage.
    nets: Vec<(&'static str, usize)>,
    batches: Vec<usize>,
    secs: f64,
}

pub fn run(args: &GpuCheckArgs) -> anyhow::Result<()> {
    if let Some(dir) = &args.bundle {
        return bundle(args, dir);
    }
    let out = args
        .out
        .as_deref()
        .context("--out DIR is required (or --bundle DIR)")?;
    let started = Instant::now();
    let deadline = args.minutes * 60.0;
    let python = crate::bench::peer_python(args.python.as_deref(), args.no_peer)?;
    let device = args.device.open().with_context(|| {
        format!(
            "cannot open {} (is xtask built with --features cuda, and is there a GPU?)",
            args.device
        )
    })?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let sizes = if args.tiny {
        Sizes {
            compare_batch: 4,
            nets: vec![("seed-cnn", 0), ("vgg-bn", 8)],
            batches: vec![4],
            secs: 0.01,
        }
    } else {
        Sizes {
            compare_batch: 32,
            nets: vec![("seed-cnn", 0), ("vgg-bn", 32), ("vgg-bn", 64)],
            batches: args.batches.clone(),
            secs: args.secs,
        }
    };
    let mut report = json!({
        "device": args.device.to_string(),
        "gpu": gpu_name(),
        "tolerance": TOLERANCE,
        "tiny": args.tiny,
        "minutes": args.minutes,
    });
    let save = |report: &Value| -> anyhow::Result<()> {
        let path = out.join(REPORT);
        std::fs::write(&path, serde_json::to_vec_pretty(report)?)
            .with_context(|| format!("cannot write {}", path.display()))
    };
    println!(
        "gpu-check on {} ({}), {} minutes in all",
        args.device,
        report["gpu"].as_str().unwrap_or("no GPU name"),
        args.minutes
    );

    // 1. CPU against the device.
    let mut failures = Vec::new();
    let mut compared = Vec::new();
    for &(architecture, width) in &sizes.nets {
        if compared
            .iter()
            .any(|c: &Value| c["architecture"] == architecture)
        {
            continue;
        }
        let result = compare(architecture, width, &device, sizes.compare_batch)?;
        let worst = result["worst_relative"].as_f64().unwrap_or(f64::INFINITY);
        println!(
            "compare {architecture}: worst relative difference {worst:.2e} (tolerance {TOLERANCE:.0e}) over logits and {} gradients",
            result["gradients"].as_array().map_or(0, Vec::len)
        );
        if worst > TOLERANCE {
            failures.push(format!(
                "{architecture}: CPU and {} differ by {worst:.2e}",
                args.device
            ));
        }
        compared.push(result);
    }
    report["compare"] = Value::Array(compared);
    save(&report)?;

    // 2. Speed beside PyTorch on the same device.
    let mut speed = Vec::new();
    for &(architecture, width) in &sizes.nets {
        println!("speed {architecture} (width {width}):");
        let spec = StepSpec {
            device: &device,
            architecture,
            width,
            secs: sizes.secs,
            recipe: crate::bench::Recipe::Adadelta,
        };
        let (figures, latency) = crate::bench::our_train_step(&spec, &sizes.batches)?;
        let peer = match &python {
            Some(python) => Some(peer_speed(
                python,
                architecture,
                width,
                &sizes.batches,
                sizes.secs,
                &args.device,
            )),
            None => None,
        };
        speed.push(speed_entry(architecture, width, &figures, latency, peer));
    }
    report["speed"] = Value::Array(speed);
    save(&report)?;

    // 3. The profile trained for the minutes left.
    let (dataset, data_name) = if args.tiny {
        let config = fer_data::synthetic::SyntheticConfig::small(0);
        (
            fer_data::synthetic::generate(&config),
            "synthetic".to_string(),
        )
    } else {
        let data = match &args.data {
            Some(path) => path.clone(),
            None => crate::default_data().context(
                "no FER2013 file found: pass --data, set FER2013_CSV, or run `cargo xtask download`",
            )?,
        };
        let loaded = fer_data::load(&data, &fer_data::LoadOptions::default())
            .with_context(|| format!("cannot load {}", data.display()))?;
        (loaded.dataset, data.display().to_string())
    };
    let mut config = profile_config(&args.profile)?;
    if args.tiny {
        config.model.width = 8;
        config.batch_size = 16;
        config.ema = None;
    }
    let train_images = dataset.view(fer_data::Split::Training).len();
    let public_images = dataset.view(fer_data::Split::PublicTest).len();
    let (train_rate, infer_rate) = report["speed"]
        .as_array()
        .and_then(|s| {
            s.iter()
                .find(|e| e["architecture"] == "vgg-bn" && e["width"] == config.model.width)
                .or_else(|| s.last())
        })
        .and_then(|e| e["ours"].as_array()?.first().cloned())
        .map(|f| {
            (
                f["train_img_s"].as_f64().unwrap_or(1.0),
                f["infer_img_s"].as_f64().unwrap_or(1.0),
            )
        })
        .unwrap_or((1.0, 1.0));
    let epochs = plan_epochs(
        deadline - started.elapsed().as_secs_f64(),
        train_images,
        public_images,
        train_rate,
        infer_rate,
        config.epochs,
    );
    if args.tiny {
        config.epochs = 1;
    } else {
        config.epochs = epochs;
    }
    println!(
        "train {} for {} epochs ({:.1} minutes left; {train_images} Training, {public_images} PublicTest images)",
        args.profile,
        config.epochs,
        (deadline - started.elapsed().as_secs_f64()) / 60.0
    );
    report["train"] = json!({
        "profile": args.profile,
        "data": data_name,
        "planned_epochs": config.epochs,
        "width": config.model.width,
        "batch_size": config.batch_size,
        "epochs": [],
    });
    save(&report)?;
    let run_dir = std::env::temp_dir().join(format!("fer-gpu-check-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&run_dir);
    let mut observer = EpochWriter {
        report: &mut report,
        save: &save,
        started: Instant::now(),
    };
    let outcome = fer_model::train(&dataset, &config, &run_dir, &device, false, &mut observer);
    let _ = std::fs::remove_dir_all(&run_dir);
    let outcome = outcome.context("training failed")?;
    let best = &outcome.history[outcome
        .best_epoch
        .saturating_sub(1)
        .min(outcome.history.len() - 1)];
    report["train"]["best_epoch"] = json!(outcome.best_epoch);
    report["train"]["best_public_test_accuracy"] = json!(best.val_accuracy);
    report["seconds"] = json!(started.elapsed().as_secs_f64());
    report["failures"] = json!(failures);
    save(&report)?;
    println!(
        "best epoch {} of {}: PublicTest {:.2}%; {:.0} s in all; {}",
        outcome.best_epoch,
        outcome.history.len(),
        best.val_accuracy * 100.0,
        started.elapsed().as_secs_f64(),
        out.join(REPORT).display()
    );
    ensure!(failures.is_empty(), "{}", failures.join("; "));
    Ok(())
}

/// Writes each finished epoch into the report at once.
struct EpochWriter<'a, F: Fn(&Value) -> anyhow::Result<()>> {
    report: &'a mut Value,
    save: &'a F,
    started: Instant,
}

impl<F: Fn(&Value) -> anyhow::Result<()>> Observer for EpochWriter<'_, F> {
    fn epoch(&mut self, record: &EpochRecord) {
        println!(
            "  epoch {:3}: PublicTest {:.2}% (macro-F1 {:.3}), {:.0} img/s, {:.0} s so far",
            record.epoch,
            record.val_accuracy * 100.0,
            record.val_macro_f1,
            record.train_images_per_second,
            self.started.elapsed().as_secs_f64()
        );
        if let Some(epochs) = self.report["train"]["epochs"].as_array_mut() {
            epochs.push(json!(record));
        }
        if let Err(e) = (self.save)(self.report) {
            eprintln!("gpu-check: {e:#}");
        }
    }

    fn message(&mut self, text: &str) {
        println!("  {text}");
    }
}

/// How many epochs fit in `seconds`: each trains `train_images` at `train_rate` (plus a
/// quarter for augmentation and bookkeeping) and evaluates PublicTest twice (the weights and
/// their average, each with a mirrored copy) at `infer_rate`; at least 1, at most `most`.
fn plan_epochs(
    seconds: f64,
    train_images: usize,
    public_images: usize,
    train_rate: f64,
    infer_rate: f64,
    most: usize,
) -> usize {
    let epoch = 1.25 * train_images as f64 / train_rate + 4.0 * public_images as f64 / infer_rate;
    let fit = (seconds.max(0.0) / epoch.max(1e-9)).floor();
    (fit as usize).clamp(1, most.max(1))
}

/// The first run's training config of a pipeline profile.
fn profile_config(profile: &str) -> anyhow::Result<TrainConfig> {
    let (_, profile) = crate::pipeline::Profile::load(profile)?;
    let run = profile.runs.first().context("the profile has no runs")?;
    serde_json::from_value(profile.run_config(run, None))
        .context("the profile's run is not a training config")
}

/// Logits and gradients of one network on the CPU and on `device`, same weights and batch.
fn compare(
    architecture: &str,
    width: usize,
    device: &Device,
    batch: usize,
) -> anyhow::Result<Value> {
    let config = ModelConfig {
        architecture: serde_json::from_value(Value::String(architecture.into()))?,
        width: if width == 0 {
            ModelConfig::default().width
        } else {
            width
        },
        ..ModelConfig::default()
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let pixels: Vec<f32> = (0..batch * 2304)
        .map(|_| rng.random::<f32>() * 2.0 - 1.0)
        .collect();
    let labels: Vec<u32> = (0..batch).map(|_| rng.random_range(0..7u32)).collect();
    let run = |device: &Device| -> anyhow::Result<Outputs> {
        let (vars, model) = config.init(device, 0)?;
        let x = Tensor::from_vec(pixels.clone(), (batch, 1, 48, 48), device)?;
        let y = Tensor::from_vec(labels.clone(), batch, device)?;
        let predicted = to_host(&model.predict(&x)?)?;
        let dropout = || rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let trained = to_host(&model.forward(&x, Some(&mut dropout()))?)?;
        let (loss, grads) = model.loss_and_grads(&x, &y, &Loss::default(), Some(&mut dropout()))?;
        let mut gradients = Vec::new();
        let vars = vars
            .data()
            .lock()
            .map_err(|_| anyhow::anyhow!("var map lock poisoned"))?
            .iter()
            .map(|(name, var)| (name.clone(), var.clone()))
            .collect::<Vec<_>>();
        for (name, var) in vars {
            if let Some(grad) = grads.get(var.as_tensor()) {
                gradients.push((name, to_host(grad)?));
            }
        }
        gradients.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Outputs {
            predicted,
            trained,
            loss,
            gradients,
        })
    };
    let (cpu, other) = (run(&Device::Cpu)?, run(device)?);
    ensure!(
        cpu.gradients.len() == other.gradients.len() && !cpu.gradients.is_empty(),
        "{architecture}: {} gradients on the CPU, {} on the device",
        cpu.gradients.len(),
        other.gradients.len()
    );
    let inference = relative_difference(&cpu.predicted, &other.predicted);
    let training = relative_difference(&cpu.trained, &other.trained);
    let mut worst = inference.max(training);
    let gradients: Vec<Value> = cpu
        .gradients
        .iter()
        .zip(&other.gradients)
        .map(|((name, a), (other_name, b))| {
            let difference = if name == other_name {
                relative_difference(a, b)
            } else {
                f64::INFINITY
            };
            worst = worst.max(difference);
            json!({"name": name, "relative": difference})
        })
        .collect();
    Ok(json!({
        "architecture": architecture,
        "width": config.width,
        "batch": batch,
        "inference_relative": inference,
        "training_relative": training,
        "loss": [cpu.loss, other.loss],
        "gradients": gradients,
        "worst_relative": worst,
    }))
}

struct Outputs {
    predicted: Vec<f32>,
    trained: Vec<f32>,
    loss: f32,
    gradients: Vec<(String, Vec<f32>)>,
}

fn to_host(tensor: &Tensor) -> anyhow::Result<Vec<f32>> {
    Ok(tensor
        .flatten_all()?
        .to_device(&Device::Cpu)?
        .to_vec1::<f32>()?)
}

/// The largest difference between `a` and `b` over the largest magnitude in `a` (infinite
/// when their lengths differ or a value is not finite).
fn relative_difference(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    let scale = a.iter().fold(0f64, |m, &v| m.max(f64::from(v.abs())));
    let largest = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| f64::from((x - y).abs()))
        .fold(
            0f64,
            |m, d| if d.is_nan() { f64::INFINITY } else { m.max(d) },
        );
    if !largest.is_finite() {
        return f64::INFINITY;
    }
    largest / scale.max(f64::MIN_POSITIVE)
}

/// The PyTorch peer's speed on the same device, or why it was not measured.
fn peer_speed(
    python: &Path,
    architecture: &str,
    width: usize,
    batches: &[usize],
    secs: f64,
    device: &DeviceName,
) -> Result<Value, String> {
    let batches = batches
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let (secs, device, width) = (secs.to_string(), device.to_string(), width.to_string());
    let mut args = vec![
        "speed",
        "--batches",
        &batches,
        "--secs",
        &secs,
        "--device",
        &device,
    ];
    let script = if architecture == "seed-cnn" {
        PEER_SEED_CNN
    } else {
        args.extend(["--width", &width]);
        PEER_VGG_BN
    };
    crate::bench::run_peer(python, script, &args).map_err(|e| format!("{e:#}"))
}

/// One network's speed entry: ours per batch, the peer's, and the ratios.
fn speed_entry(
    architecture: &str,
    width: usize,
    figures: &[Figures],
    latency: f64,
    peer: Option<Result<Value, String>>,
) -> Value {
    let ours: Vec<Value> = figures
        .iter()
        .map(|&(batch, infer, train)| {
            let mut entry = json!({"batch": batch, "infer_img_s": infer, "train_img_s": train});
            if let Some(Ok(peer)) = &peer {
                let theirs = &peer["batches"][batch.to_string()];
                if let (Some(t_infer), Some(t_train)) =
                    (theirs["infer_img_s"].as_f64(), theirs["train_img_s"].as_f64())
                {
                    entry["torch_infer_img_s"] = json!(t_infer);
                    entry["torch_train_img_s"] = json!(t_train);
                    entry["infer_ratio"] = json!(infer / t_infer);
                    entry["train_ratio"] = json!(train / t_train);
                    println!(
                        "  PyTorch batch {batch:4}: inference {t_infer:8.1} img/s | train step {t_train:7.1} img/s  -> ours/PyTorch: inference {:.2}x, train {:.2}x",
                        infer / t_infer,
                        train / t_train
                    );
                }
            }
            entry
        })
        .collect();
    let mut entry = json!({
        "architecture": architecture,
        "width": width,
        "ours": ours,
        "batch1_latency_ms": latency * 1e3,
    });
    match peer {
        Some(Ok(peer)) => {
            entry["torch_batch1_latency_ms"] = peer["batch1_latency_ms"].clone();
            entry["torch"] = peer;
        }
        Some(Err(why)) => {
            println!("  PyTorch: not measured ({why})");
            entry["torch_error"] = json!(why);
        }
        None => {}
    }
    entry
}

/// The GPU's name and driver from `nvidia-smi`, when there is one.
fn gpu_name() -> Option<String> {
    let out = Command::new("nvidia-smi")
        .args(["--query-gpu=name,driver_version", "--format=csv,noheader"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Packs the CUDA build of this tool and the data the check reads into `dir/part-N/`.
fn bundle(args: &GpuCheckArgs, dir: &Path) -> anyhow::Result<()> {
    let root = crate::workspace_root();
    let binary = root.join("target/cuda/release/xtask");
    ensure!(
        binary.is_file(),
        "{} is missing: run `cargo xtask check-cuda` first (it builds xtask with --features cuda)",
        binary.display()
    );
    let data = match &args.data {
        Some(path) => path.clone(),
        None => crate::default_data().context("no FER2013 file found: pass --data")?,
    };
    let _ = std::fs::remove_dir_all(dir);
    let staging = dir.join("staging");
    std::fs::create_dir_all(&staging)?;
    std::fs::copy(&binary, staging.join("xtask"))
        .with_context(|| format!("cannot copy {}", binary.display()))?;
    run_tool(Command::new("strip").arg(staging.join("xtask")))?;
    // Training and PublicTest rows only, as they are in the file: PrivateTest stays here.
    let kept = write_training_and_public(&data, &staging.join(BUNDLED_DATA))?;
    let archive = dir.join("bundle.tar.xz");
    run_tool(
        Command::new("tar")
            .env("XZ_OPT", "-9 -T0")
            .arg("-C")
            .arg(&staging)
            .arg("-cJf")
            .arg(&archive)
            .args(["xtask", BUNDLED_DATA]),
    )?;
    std::fs::remove_dir_all(&staging)?;
    let bytes = std::fs::read(&archive)?;
    std::fs::remove_file(&archive)?;
    let parts = bytes.len().div_ceil(PART_BYTES as usize);
    for (i, chunk) in bytes.chunks(PART_BYTES as usize).enumerate() {
        let part = dir.join(format!("part-{}", i + 1));
        std::fs::create_dir_all(&part)?;
        std::fs::write(
            part.join(format!("bundle.tar.xz.{}-of-{parts}", i + 1)),
            chunk,
        )?;
    }
    println!(
        "{}: {kept} rows and the stripped cuda xtask, {:.1} MB in {parts} part(s) (part-1 .. part-{parts}); carry one part per call, the run in the last (xtask/gpu-check.sh)",
        dir.display(),
        bytes.len() as f64 / 1e6
    );
    Ok(())
}

/// Copies the header and the Training and PublicTest rows of the FER2013 file `data` (.csv
/// or .csv.gz) to the CSV `path`; returns the rows copied.
fn write_training_and_public(data: &Path, path: &Path) -> anyhow::Result<usize> {
    use std::io::{BufRead, BufReader, Read, Write};
    let file =
        std::fs::File::open(data).with_context(|| format!("cannot open {}", data.display()))?;
    let reader: Box<dyn Read> = if data.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let out =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = std::io::BufWriter::new(out);
    let mut rows = 0;
    for (i, line) in BufReader::new(reader).lines().enumerate() {
        let line =
            line.with_context(|| format!("{}: cannot read line {}", data.display(), i + 1))?;
        let usage = line.trim_end().rsplit(',').next().unwrap_or("");
        if i == 0 || usage == "Training" || usage == "PublicTest" {
            writeln!(out, "{line}")?;
            rows += usize::from(i > 0);
        }
    }
    out.flush()?;
    ensure!(
        rows > 0,
        "{}: no Training or PublicTest rows",
        data.display()
    );
    Ok(rows)
}

fn run_tool(command: &mut Command) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("cannot run {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed with {status}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_differences_scale_by_the_largest_value_and_catch_nan() {
        assert_eq!(relative_difference(&[2.0, -4.0], &[2.0, -4.0]), 0.0);
        assert!((relative_difference(&[2.0, -4.0], &[2.0, -4.002]) - 5e-4).abs() < 1e-6);
        assert_eq!(relative_difference(&[1.0], &[f32::NAN]), f64::INFINITY);
        assert_eq!(relative_difference(&[1.0], &[1.0, 2.0]), f64::INFINITY);
    }

    #[test]
    fn epochs_are_planned_from_the_measured_speed() {
        // 1.25 * 1000 / 100 + 4 * 100 / 400 = 13.5 s per epoch: 7 fit in 100 s.
        assert_eq!(plan_epochs(100.0, 1000, 100, 100.0, 400.0, 120), 7);
        assert_eq!(plan_epochs(1e9, 1000, 100, 100.0, 400.0, 120), 120);
        assert_eq!(plan_epochs(-5.0, 1000, 100, 100.0, 400.0, 120), 1);
    }

    /// The whole check at toy sizes on the CPU: every stage runs and writes its figures.
    #[test]
    fn the_dry_run_on_the_cpu_writes_every_stage() {
        let out = tempfile::tempdir().unwrap();
        let args = GpuCheckArgs {
            out: Some(out.path().to_path_buf()),
            device: DeviceName::Cpu,
            data: None,
            profile: "best".into(),
            minutes: 1.0,
            batches: vec![4],
            secs: 0.01,
            python: None,
            no_peer: true,
            tiny: true,
            bundle: None,
        };
        run(&args).unwrap();
        let report: Value =
            serde_json::from_slice(&std::fs::read(out.path().join(REPORT)).unwrap()).unwrap();
        let compare = report["compare"].as_array().unwrap();
        assert_eq!(compare.len(), 2);
        for entry in compare {
            // The CPU against itself: the same weights, batch and masks give the same values.
            assert_eq!(entry["worst_relative"].as_f64(), Some(0.0), "{entry}");
            assert!(entry["gradients"].as_array().unwrap().len() >= 4, "{entry}");
            let loss = entry["loss"].as_array().unwrap();
            assert!(loss[0].as_f64().unwrap() > 0.0);
        }
        let speed = report["speed"].as_array().unwrap();
        assert_eq!(speed.len(), 2);
        for entry in speed {
            let ours = &entry["ours"][0];
            assert_eq!(ours["batch"], 4);
            assert!(ours["train_img_s"].as_f64().unwrap() > 0.0, "{entry}");
            assert!(ours["infer_img_s"].as_f64().unwrap() > 0.0, "{entry}");
        }
        let train = &report["train"];
        assert_eq!(train["planned_epochs"], 1);
        let epochs = train["epochs"].as_array().unwrap();
        assert_eq!(epochs.len(), 1);
        let accuracy = epochs[0]["val_accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&accuracy));
        assert_eq!(train["best_public_test_accuracy"].as_f64(), Some(accuracy));
        assert_eq!(report["failures"].as_array().map(Vec::len), Some(0));
    }
}
