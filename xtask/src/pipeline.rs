//! `cargo xtask pipeline`: the seed experiment end to end, resumable, with a run manifest.
//!
//! A pipeline is a list of `fer` commands (the same ones a person would type), each a step
//! with a name. The profile (`xtask/profiles/NAME.json`) says what to train; the steps are:
//! the data (verified by its SHA-256), statistics and plots, every CNN run of the profile
//! (the seed recipe with augmentation, without augmentation, with the L2-SVM head, ...), the
//! HOG + linear SVM baseline, a PrivateTest evaluation of every model (its checkpoint chosen
//! on PublicTest while training), of every ensemble of CNN runs the profile lists, and the
//! HTML report.
//!
//! `OUT/manifest.json` records the git commit, the data's checksum, the full profile, the seed,
//! the machine and each step's command line and wall time; it is rewritten atomically as each
//! step starts, every minute while it runs (its wall time so far) and when it ends. Run the
//! same command again after an interruption and finished steps are skipped while training
//! resumes from its last epoch checkpoint; the wall times add up over the starts.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::download;

/// Where built-in profiles live, relative to the workspace root.
const PROFILES_DIR: &str = "xtask/profiles";
const MANIFEST: &str = "manifest.json";

// No doc comment here: the `Pipeline` variant in main.rs provides the subcommand's help.
#[derive(clap::Args, Debug, Clone)]
pub struct PipelineArgs {
    /// FER2013 CSV (.csv or .csv.gz). Default: $FER2013_CSV, else data/fer2013.csv[.gz]
    /// (fetched by `cargo xtask download` when missing).
    #[arg(long, env = "FER2013_CSV", value_name = "PATH")]
    pub data: Option<PathBuf>,
    /// A built-in profile (quick, seed, ...: the files in xtask/profiles/) or a profile file.
    #[arg(long, default_value = "quick")]
    pub profile: String,
    /// Output directory [default: runs/PROFILE].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Seed of every run, overriding the profile's.
    #[arg(long)]
    pub seed: Option<u64>,
    /// cpu, cuda or cuda:N (cuda builds `fer` with --features cuda).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Print the steps and whether each is done, without running anything.
    #[arg(long)]
    pub dry_run: bool,
}

/// A pipeline profile: what to train and how. Saved whole in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub description: String,
    /// Train every CNN on a seeded random subset of this many Training images.
    #[serde(default)]
    pub train_subset: Option<usize>,
    /// The base CNN training config (a `fer train --config` file, as in a run's config.json).
    pub cnn: Value,
    /// The CNN runs: each is the base config with `changes` merged in (RFC 7386).
    pub runs: Vec<RunSpec>,
    /// The HOG + linear SVM baseline's config (`{}` for its defaults); absent: no baseline.
    #[serde(default)]
    pub hog_svm: Option<Value>,
    /// Ensembles of CNN runs, each evaluated as one more model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ensembles: Vec<EnsembleSpec>,
    /// Also score every kept epoch checkpoint of each CNN run on PrivateTest (`fer eval
    /// --every-epoch`), for comparison with protocols that pick the epoch on the test set;
    /// the runs' `keep_last` decides which epochs are kept.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub eval_every_epoch: bool,
}

/// An ensemble of a profile's CNN runs: the mean of their class probabilities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnsembleSpec {
    /// Directory name under the output directory.
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Names of the profile's runs (two or more).
    pub members: Vec<String>,
}

/// One CNN run of a profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    /// Directory name under the output directory, e.g. `cnn-augmented`.
    pub name: String,
    /// What the run shows, for the report.
    #[serde(default)]
    pub description: String,
    /// A JSON merge patch applied to the profile's `cnn` config.
    #[serde(default)]
    pub changes: Value,
}

impl Profile {
    /// Loads a built-in profile by name or a profile file by path.
    pub fn load(name_or_path: &str) -> Result<(String, Profile)> {
        let path = if name_or_path.ends_with(".json") || name_or_path.contains('/') {
            PathBuf::from(name_or_path)
        } else {
            crate::workspace_root()
                .join(PROFILES_DIR)
                .join(format!("{name_or_path}.json"))
        };
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read profile {} (built-in profiles: {})",
                path.display(),
                builtin_profiles().join(", ")
            )
        })?;
        let profile: Profile = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a pipeline profile", path.display()))?;
        profile
            .validate()
            .with_context(|| path.display().to_string())?;
        let name = path
            .file_stem()
            .map_or_else(|| name_or_path.to_string(), |s| s.to_string_lossy().into());
        Ok((name, profile))
    }

    fn validate(&self) -> Result<()> {
        ensure!(
            self.cnn.is_object(),
            "`cnn` must be a training config object"
        );
        ensure!(!self.runs.is_empty(), "`runs` lists no CNN run");
        let mut names: Vec<&str> = self.runs.iter().map(|r| r.name.as_str()).collect();
        for ensemble in &self.ensembles {
            ensure!(
                ensemble.members.len() >= 2,
                "ensemble `{}` needs two or more members",
                ensemble.name
            );
            for member in &ensemble.members {
                ensure!(
                    names.contains(&member.as_str()),
                    "ensemble `{}`: `{member}` is not a CNN run of this profile",
                    ensemble.name
                );
            }
        }
        names.extend(self.ensembles.iter().map(|e| e.name.as_str()));
        names.push("hog-svm");
        for name in &names {
            ensure!(
                !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                "run name `{name}`: use letters, digits, - and _"
            );
        }
        names.sort_unstable();
        ensure!(
            names.windows(2).all(|w| w[0] != w[1]),
            "run and ensemble names must be distinct (hog-svm is taken by the baseline)"
        );
        Ok(())
    }

    /// The full training config of one run, with the seed override applied.
    pub fn run_config(&self, run: &RunSpec, seed: Option<u64>) -> Value {
        let mut config = self.cnn.clone();
        json_patch::merge(&mut config, &run.changes);
        if let Some(seed) = seed {
            config["seed"] = json!(seed);
        }
        config
    }
}

fn builtin_profiles() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(crate::workspace_root().join(PROFILES_DIR))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let path = e.path();
                    (path.extension()? == "json")
                        .then(|| path.file_stem().map(|s| s.to_string_lossy().into_owned()))?
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// One `fer` invocation of the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub name: String,
    /// Arguments after `fer`.
    pub args: Vec<String>,
    /// Where the step's stdout goes (written atomically when the step succeeds).
    pub stdout_to: Option<PathBuf>,
}

impl Step {
    fn new(name: impl Into<String>, args: &[&str]) -> Self {
        Step {
            name: name.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            stdout_to: None,
        }
    }

    fn stdout_to(mut self, path: PathBuf) -> Self {
        self.stdout_to = Some(path);
        self
    }

    /// The command line, for the manifest and for people to rerun by hand.
    pub fn command_line(&self) -> String {
        let mut line = String::from("fer");
        for arg in &self.args {
            line.push(' ');
            if arg.contains(|c: char| c.is_whitespace() || c == '\'' || c == '"') {
                line.push_str(&format!("'{}'", arg.replace('\'', r"'\''")));
            } else {
                line.push_str(arg);
            }
        }
        if let Some(path) = &self.stdout_to {
            line.push_str(&format!(" > {}", path.display()));
        }
        line
    }
}

/// The steps of a pipeline over `data` into `out`, in order.
pub fn plan(
    profile: &Profile,
    data: &Path,
    out: &Path,
    seed: Option<u64>,
    device: &str,
) -> Vec<Step> {
    let data = data.display().to_string();
    let path = |p: &str| out.join(p).display().to_string();
    let mut steps = vec![
        Step::new("statistics", &["stats", "--data", &data, "--json"])
            .stdout_to(out.join("stats.json")),
        Step::new(
            "plot-distribution",
            &[
                "plot",
                "distribution",
                "--data",
                &data,
                "--out",
                &path("plots/class-distribution.png"),
            ],
        ),
        Step::new(
            "plot-samples",
            &[
                "plot",
                "samples",
                "--data",
                &data,
                "--out",
                &path("plots/sample-faces.png"),
            ],
        ),
    ];
    let mut model_dirs = Vec::new();
    for run in &profile.runs {
        let dir = path(&run.name);
        let config = path(&format!("configs/{}.json", run.name));
        let mut args = vec![
            "train", "--data", &data, "--config", &config, "--out", &dir, "--resume", "--device",
            device,
        ];
        let subset = profile.train_subset.map(|n| n.to_string());
        if let Some(n) = &subset {
            args.extend(["--train-subset", n.as_str()]);
        }
        steps.push(Step::new(format!("train-{}", run.name), &args));
        model_dirs.push(dir);
    }
    if profile.hog_svm.is_some() {
        let dir = path("hog-svm");
        let config = path("configs/hog-svm.json");
        let mut args = vec![
            "train", "--model", "hog-svm", "--data", &data, "--config", &config, "--out", &dir,
        ];
        let seed_text = seed.map(|s| s.to_string());
        if let Some(seed) = &seed_text {
            args.extend(["--seed", seed.as_str()]);
        }
        let subset = profile.train_subset.map(|n| n.to_string());
        if let Some(n) = &subset {
            args.extend(["--train-subset", n.as_str()]);
        }
        steps.push(Step::new("train-hog-svm", &args));
        model_dirs.push(dir);
    }
    // The PrivateTest evaluation of `models` (several: their ensemble, stored in `out`).
    let eval_step = |name: &str, models: &[String], out: &str| {
        let mut args = vec!["eval"];
        for model in models {
            args.extend(["--model", model.as_str()]);
        }
        args.extend(["--data", data.as_str(), "--split", "private-test", "--json"]);
        args.extend(["--device", device]);
        if models.len() > 1 {
            args.extend(["--out", out]);
        }
        Step::new(format!("eval-{name}"), &args)
            .stdout_to(Path::new(out).join("eval-private-test.json"))
    };
    for (k, dir) in model_dirs.iter().enumerate() {
        let name = Path::new(dir)
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        steps.push(eval_step(&name, std::slice::from_ref(dir), dir));
        if profile.eval_every_epoch && k < profile.runs.len() {
            let args = [
                "eval",
                "--model",
                dir,
                "--data",
                &data,
                "--split",
                "private-test",
                "--every-epoch",
                "--device",
                device,
            ];
            steps.push(Step::new(format!("eval-epochs-{name}"), &args));
        }
    }
    for ensemble in &profile.ensembles {
        let dir = path(&ensemble.name);
        let members: Vec<String> = ensemble.members.iter().map(|m| path(m)).collect();
        steps.push(eval_step(&ensemble.name, &members, &dir));
        model_dirs.push(dir);
    }
    let mut report = vec!["report"];
    report.extend(model_dirs.iter().map(String::as_str));
    let report_path = path("report.html");
    let manifest_path = path(MANIFEST);
    report.extend([
        "--data",
        &data,
        "--manifest",
        &manifest_path,
        "--out",
        &report_path,
    ]);
    steps.push(Step::new("report", &report));
    steps
}

/// What `manifest.json` records about a pipeline run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub profile_name: String,
    pub profile: Profile,
    pub seed: Option<u64>,
    pub device: String,
    pub data: DataRecord,
    pub git: GitRecord,
    pub machine: Machine,
    /// The `cargo xtask pipeline` command line of the latest start.
    pub command: String,
    /// How many times the pipeline was started on this directory.
    pub starts: usize,
    pub steps: Vec<StepRecord>,
    /// Sum of the steps' wall seconds (over all starts).
    pub total_wall_seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataRecord {
    pub path: PathBuf,
    /// SHA-256 of the uncompressed CSV.
    pub sha256: String,
    pub bytes: u64,
    /// Whether the content is the original Kaggle fer2013.csv.
    pub original_fer2013: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GitRecord {
    pub commit: Option<String>,
    /// Uncommitted changes to tracked files when the pipeline (last) started.
    pub dirty: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub cpu: String,
    pub logical_cpus: usize,
    /// RAYON_NUM_THREADS when set, else the logical CPUs.
    pub threads: usize,
    pub memory_gib: Option<f64>,
    pub os: String,
    pub arch: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub name: String,
    pub command: String,
    /// `pending`, `running` (also: a start stopped while the step ran), `done` or `failed`.
    pub status: String,
    /// Wall seconds over every attempt, written every minute while the step runs.
    pub wall_seconds: f64,
    pub attempts: usize,
}

impl Machine {
    fn detect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "unknown".to_string(), |(_, v)| v.trim().to_string());
        let logical_cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = std::env::var("RAYON_NUM_THREADS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n| n > 0)
            .unwrap_or(logical_cpus);
        let memory_gib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            })
            .map(|kib| (kib / (1024.0 * 1024.0) * 10.0).round() / 10.0);
        Machine {
            cpu,
            logical_cpus,
            threads,
            memory_gib,
            os: std::env::consts::OS.into(),
            arch: std::env::consts::ARCH.into(),
        }
    }
}

impl GitRecord {
    fn detect(root: &Path) -> Self {
        let git = |args: &[&str]| {
            Command::new("git")
                .args(args)
                .current_dir(root)
                .stderr(Stdio::null())
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        };
        GitRecord {
            commit: git(&["rev-parse", "HEAD"]),
            dirty: git(&["status", "--porcelain", "--untracked-files=no"]).map(|s| !s.is_empty()),
        }
    }
}

pub fn run(args: PipelineArgs) -> Result<()> {
    let root = crate::workspace_root();
    let (profile_name, profile) = Profile::load(&args.profile)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| root.join("runs").join(&profile_name));
    let data = resolve_data(args.data.as_deref(), &root)?;
    let steps = plan(&profile, &data, &out, args.seed, &args.device);
    let manifest_path = out.join(MANIFEST);
    let previous: Option<Manifest> = match std::fs::read(&manifest_path) {
        Ok(bytes) => Some(
            serde_json::from_slice(&bytes)
                .with_context(|| format!("{}: not a pipeline manifest", manifest_path.display()))?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).context(format!("cannot read {}", manifest_path.display())),
    };
    if args.dry_run {
        for step in &steps {
            let done = previous
                .as_ref()
                .and_then(|m| m.steps.iter().find(|s| s.name == step.name))
                .is_some_and(|s| s.status == "done");
            println!(
                "{:<5} {:<28} {}",
                if done { "done" } else { "todo" },
                step.name,
                step.command_line()
            );
        }
        return Ok(());
    }

    eprintln!("pipeline `{profile_name}` -> {}", out.display());
    eprintln!("verifying {}", data.display());
    let digests = download::digest_local(&data)?;
    let data_record = DataRecord {
        path: data.clone(),
        sha256: digests.sha256.clone(),
        bytes: digests.bytes,
        original_fer2013: digests.sha256 == download::FER2013_SHA256,
    };
    if !data_record.original_fer2013 {
        eprintln!(
            "note: {} is not the original fer2013.csv (SHA-256 {}); figures will not compare \
             with published ones",
            data.display(),
            digests.sha256
        );
    }
    let mut manifest = match previous {
        Some(previous) => {
            ensure!(
                previous.profile == profile
                    && previous.seed == args.seed
                    && previous.data.sha256 == data_record.sha256,
                "{} holds a pipeline run with another profile, seed or data; choose another \
                 --out or remove it",
                out.display()
            );
            let mut manifest = previous;
            manifest.starts += 1;
            manifest.data = data_record;
            manifest
        }
        None => Manifest {
            profile_name: profile_name.clone(),
            profile: profile.clone(),
            seed: args.seed,
            device: args.device.clone(),
            data: data_record,
            git: GitRecord::detect(&root),
            machine: Machine::detect(),
            command: String::new(),
            starts: 1,
            steps: Vec::new(),
            total_wall_seconds: 0.0,
        },
    };
    manifest.git = GitRecord::detect(&root);
    manifest.machine = Machine::detect();
    manifest.command = std::env::args().collect::<Vec<_>>().join(" ");
    for step in &steps {
        if !manifest.steps.iter().any(|s| s.name == step.name) {
            manifest.steps.push(StepRecord {
                name: step.name.clone(),
                command: step.command_line(),
                status: "pending".into(),
                wall_seconds: 0.0,
                attempts: 0,
            });
        }
    }

    std::fs::create_dir_all(out.join("configs"))
        .with_context(|| format!("cannot create {}", out.display()))?;
    std::fs::create_dir_all(out.join("plots"))
        .with_context(|| format!("cannot create {}", out.display()))?;
    for run in &profile.runs {
        let config = serde_json::to_vec_pretty(&profile.run_config(run, args.seed))?;
        write_atomically(&out.join(format!("configs/{}.json", run.name)), &config)?;
    }
    if let Some(hog) = &profile.hog_svm {
        write_atomically(
            &out.join("configs/hog-svm.json"),
            &serde_json::to_vec_pretty(hog)?,
        )?;
    }
    save_manifest(&manifest_path, &manifest)?;

    let fer = build_fer(&root, &args.device)?;
    let total = steps.len();
    for (k, step) in steps.iter().enumerate() {
        let index = manifest
            .steps
            .iter()
            .position(|s| s.name == step.name)
            .expect("every step has a record");
        let record = &mut manifest.steps[index];
        if record.status == "done" {
            eprintln!("[{}/{total}] {}: done before, skipped", k + 1, step.name);
            continue;
        }
        eprintln!("[{}/{total}] {}: {}", k + 1, step.name, step.command_line());
        record.attempts += 1;
        record.command = step.command_line();
        record.status = "running".into();
        save_manifest(&manifest_path, &manifest)?;
        // The step's wall time goes into the manifest as it runs, so a start that is stopped
        // (the end of a session, a kill) still counts all but its last interval.
        let mut counted = Instant::now();
        let mut count_time = |manifest: &mut Manifest, status: Option<&str>| -> Result<()> {
            let record = &mut manifest.steps[index];
            record.wall_seconds += counted.elapsed().as_secs_f64();
            counted = Instant::now();
            if let Some(status) = status {
                record.status = status.into();
            }
            manifest.total_wall_seconds = manifest.steps.iter().map(|s| s.wall_seconds).sum();
            save_manifest(&manifest_path, manifest)
        };
        let result = run_step(&fer, step, WALL_TIME_INTERVAL, &mut || {
            count_time(&mut manifest, None)
        });
        count_time(
            &mut manifest,
            Some(if result.is_ok() { "done" } else { "failed" }),
        )?;
        result.with_context(|| {
            format!(
                "step {} failed; fix the cause and run the same command again to continue",
                step.name
            )
        })?;
    }
    eprintln!(
        "pipeline done in {:.0} s (all starts): report {}",
        manifest.total_wall_seconds,
        out.join("report.html").display()
    );
    print_comparison(&out, &manifest);
    Ok(())
}

/// The data path: the argument (or $FER2013_CSV), else data/fer2013.csv[.gz], else downloaded.
fn resolve_data(given: Option<&Path>, root: &Path) -> Result<PathBuf> {
    if let Some(path) = given {
        ensure!(
            path.is_file(),
            "{}: no such data file (pass --data PATH or set FER2013_CSV)",
            path.display()
        );
        return Ok(path.to_path_buf());
    }
    for name in ["fer2013.csv.gz", "fer2013.csv"] {
        let path = root.join("data").join(name);
        if path.is_file() {
            return Ok(path);
        }
    }
    eprintln!("no data given and none in data/: fetching it (cargo xtask download)");
    let request = download::Request::from_args(&download::DownloadArgs::default())?;
    match download::fetch(&request)? {
        download::Outcome::AlreadyPresent { path, .. }
        | download::Outcome::Fetched { path, .. } => Ok(path),
    }
}

/// Builds the `fer` binary (with CUDA for a cuda device) and returns its path.
pub(crate) fn build_fer(root: &Path, device: &str) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(root)
        .args(["build", "--release", "-p", "fer-cli", "--bin", "fer"]);
    if device.starts_with("cuda") {
        command.args(["--features", "fer-cli/cuda"]);
    }
    eprintln!("building fer (cargo build --release -p fer-cli)");
    let status = command.status().context("cannot run cargo")?;
    ensure!(status.success(), "building fer failed");
    let exe = std::env::current_exe().context("cannot locate the xtask binary")?;
    let fer = exe.with_file_name(format!("fer{}", std::env::consts::EXE_SUFFIX));
    ensure!(fer.is_file(), "{} was not built", fer.display());
    Ok(fer)
}

/// How often a running step's wall time is written into the manifest.
const WALL_TIME_INTERVAL: Duration = Duration::from_secs(60);

/// Runs one step's `fer` command to its end, calling `tick` every `interval` while it runs
/// (an error there is printed as a warning and the step goes on); with `stdout_to`, its
/// output is written there (atomically) once it succeeds.
fn run_step(
    fer: &Path,
    step: &Step,
    interval: Duration,
    tick: &mut dyn FnMut() -> Result<()>,
) -> Result<()> {
    let mut command = Command::new(fer);
    command.args(&step.args).stdin(Stdio::null());
    if step.stdout_to.is_some() {
        command.stdout(Stdio::piped());
    }
    let mut child = command.spawn().context("cannot start fer")?;
    // The output is read beside the wait, so that a long one never fills the pipe.
    let reader = child.stdout.take().map(|mut stdout| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            stdout.read_to_end(&mut bytes).map(|_| bytes)
        })
    });
    let mut last_tick = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().context("cannot wait for fer")? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(200));
        if last_tick.elapsed() >= interval {
            last_tick = Instant::now();
            // Only the record of the time so far failed (a full disk?): the step goes on.
            if let Err(e) = tick() {
                eprintln!("warning: {e:#}");
            }
        }
    };
    let stdout = match reader {
        Some(reader) => Some(
            reader
                .join()
                .map_err(|_| anyhow::anyhow!("the thread reading fer's output panicked"))?
                .context("cannot read fer's output")?,
        ),
        None => None,
    };
    ensure!(status.success(), "fer exited with {status}");
    if let (Some(path), Some(stdout)) = (&step.stdout_to, stdout) {
        write_atomically(path, &stdout)?;
    }
    Ok(())
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    fer_data::write_atomically(path, bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}

fn save_manifest(path: &Path, manifest: &Manifest) -> Result<()> {
    write_atomically(path, &serde_json::to_vec_pretty(manifest)?)
}

/// Prints the comparison table from every model's PrivateTest evaluation.
fn print_comparison(out: &Path, manifest: &Manifest) {
    println!(
        "{:<24} {:>9} {:>9} {:>17} {:>7} {:>9}",
        "model (PrivateTest)", "accuracy", "macro-F1", "w/o Training copies", "epochs", "wall s"
    );
    let mut names: Vec<String> = manifest
        .profile
        .runs
        .iter()
        .map(|r| r.name.clone())
        .collect();
    if manifest.profile.hog_svm.is_some() {
        names.push("hog-svm".into());
    }
    names.extend(manifest.profile.ensembles.iter().map(|e| e.name.clone()));
    for name in names {
        let dir = out.join(&name);
        let eval: Option<Value> = std::fs::read(dir.join("eval-private-test.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let epochs = std::fs::read(dir.join("history.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Vec<Value>>(&b).ok())
            .map_or_else(|| "-".to_string(), |h| h.len().to_string());
        // An ensemble costs its members' training.
        let trained: Vec<String> = match manifest.profile.ensembles.iter().find(|e| e.name == name)
        {
            Some(ensemble) => ensemble.members.clone(),
            None => vec![name.clone()],
        };
        let wall: f64 = manifest
            .steps
            .iter()
            .filter(|s| trained.iter().any(|m| s.name == format!("train-{m}")))
            .map(|s| s.wall_seconds)
            .sum();
        match eval {
            Some(e) => println!(
                "{:<24} {:>8.2}% {:>9.3} {:>19} {:>7} {:>9.0}",
                name,
                100.0 * e["accuracy"].as_f64().unwrap_or(f64::NAN),
                e["macro_f1"].as_f64().unwrap_or(f64::NAN),
                without_training_copies(&e),
                epochs,
                wall
            ),
            None => println!("{name:<24} (no evaluation)"),
        }
    }
}

/// "66.56% / 0.607": accuracy and macro-F1 without the images that have an exact copy in
/// Training, or "-" for an evaluation without them.
fn without_training_copies(eval: &Value) -> String {
    let kept = &eval["without_training_copies"];
    match (kept["accuracy"].as_f64(), kept["macro_f1"].as_f64()) {
        (Some(accuracy), Some(f1)) => format!("{:.2}% / {f1:.3}", 100.0 * accuracy),
        _ => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A step run by `sh -c SCRIPT` in place of `fer`.
    fn shell_step(script: &str, stdout_to: Option<PathBuf>) -> Step {
        Step {
            name: "shell".into(),
            args: vec!["-c".into(), script.into()],
            stdout_to,
        }
    }

    #[test]
    fn a_running_step_ticks_goes_on_past_a_failed_tick_and_writes_its_output_only_on_success() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.json");
        let step = shell_step("sleep 0.9; printf '{\"ok\": 1}'", Some(out.clone()));
        let mut ticks = 0;
        run_step(
            Path::new("/bin/sh"),
            &step,
            Duration::from_millis(100),
            &mut || {
                ticks += 1;
                Ok(())
            },
        )
        .unwrap();
        assert!((3..=9).contains(&ticks), "{ticks} ticks in 0.9 s at 0.1 s");
        std::fs::remove_file(&out).unwrap();
        run_step(
            Path::new("/bin/sh"),
            &step,
            Duration::from_millis(100),
            &mut || anyhow::bail!("cannot write the manifest"),
        )
        .unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "{\"ok\": 1}");

        let failing = shell_step(
            "printf partial; exit 3",
            Some(dir.path().join("failed.json")),
        );
        let err = run_step(
            Path::new("/bin/sh"),
            &failing,
            WALL_TIME_INTERVAL,
            &mut || Ok(()),
        )
        .unwrap_err();
        assert!(err.to_string().contains("exit status: 3"), "{err}");
        assert!(!dir.path().join("failed.json").exists());
    }

    #[test]
    fn the_comparison_shows_figures_without_training_copies_when_there_are_some() {
        let eval = serde_json::json!({
            "accuracy": 0.6776,
            "macro_f1": 0.629,
            "without_training_copies": {"excluded": 288, "n": 3301, "accuracy": 0.66556, "macro_f1": 0.6071}
        });
        assert_eq!(without_training_copies(&eval), "66.56% / 0.607");
        assert_eq!(
            without_training_copies(&serde_json::json!({"accuracy": 0.5})),
            "-"
        );
    }

    #[test]
    fn the_seed_profile_is_the_notebooks_recipe() {
        let (name, seed) = Profile::load("seed").unwrap();
        assert_eq!(name, "seed");
        let cnn = &seed.cnn;
        assert_eq!(cnn["epochs"], 100);
        assert_eq!(cnn["batch_size"], 128);
        assert_eq!(cnn["optimizer"]["kind"], "adadelta");
        assert_eq!(cnn["optimizer"]["lr"], 0.1);
        assert_eq!(cnn["optimizer"]["rho"], 0.95);
        assert_eq!(cnn["optimizer"]["eps"], 1e-8);
        assert_eq!(cnn["model"]["architecture"], "seed-cnn");
        let transforms = cnn["augmentation"]["transforms"].as_array().unwrap();
        assert_eq!(transforms[0]["type"], "horizontal_flip");
        assert_eq!(transforms[1]["type"], "rotation");
        assert_eq!(transforms[1]["degrees"], 6.0);
        assert!(seed.train_subset.is_none());
        assert!(seed.hog_svm.is_some());
    }

    #[test]
    fn every_builtin_profile_gives_valid_training_configs() {
        let names = builtin_profiles();
        for expected in [
            "ablation", "best", "cpu", "cpu-long", "quick", "seed", "smoke",
        ] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} in {names:?}"
            );
        }
        for name in names {
            let (_, profile) = Profile::load(&name).unwrap();
            for run in &profile.runs {
                let value = profile.run_config(run, None);
                let config: fer_model::TrainConfig = serde_json::from_value(value)
                    .unwrap_or_else(|e| panic!("{name}/{}: {e}", run.name));
                config.loss.validate(config.model.head).unwrap();
                assert!(config.schedule.is_none() || config.plateau.is_none());
                config.augmentation.validate().unwrap();
            }
        }
        // The imbalance comparison differs from its first run in the imbalance option only.
        let (_, imbalance) = Profile::load("ablation").unwrap();
        let configs: Vec<fer_model::TrainConfig> = imbalance
            .runs
            .iter()
            .take(4)
            .map(|r| serde_json::from_value(imbalance.run_config(r, None)).unwrap())
            .collect();
        assert!(configs[0].loss.class_weighting == fer_model::ClassWeighting::None);
        assert!(configs[1].loss.class_weighting == fer_model::ClassWeighting::Balanced);
        assert_eq!(configs[2].sampling, fer_model::Sampling::Balanced);
        assert_eq!(configs[3].loss.focal_gamma, 2.0);
        for other in &configs[1..] {
            assert_eq!(other.model, configs[0].model);
            assert_eq!(other.optimizer, configs[0].optimizer);
            assert_eq!(other.epochs, configs[0].epochs);
        }
    }

    #[test]
    fn runs_are_the_base_config_with_their_changes() {
        let (_, profile) = Profile::load("quick").unwrap();
        let by_name = |name: &str| profile.runs.iter().find(|r| r.name == name).unwrap();
        let augmented = profile.run_config(by_name("cnn-augmented"), None);
        assert_eq!(augmented, profile.cnn);
        let plain = profile.run_config(by_name("cnn-no-augmentation"), Some(42));
        assert_eq!(plain["augmentation"]["transforms"], json!([]));
        assert_eq!(plain["seed"], 42);
        assert_eq!(plain["optimizer"], profile.cnn["optimizer"]);
        let svm = profile.run_config(by_name("cnn-svm-head"), None);
        assert_eq!(svm["model"]["head"], "svm");
        assert_eq!(svm["model"]["dropout"], profile.cnn["model"]["dropout"]);
        assert_eq!(svm["seed"], profile.cnn["seed"]);
    }

    #[test]
    fn the_plan_trains_evaluates_every_model_then_reports() {
        let (_, profile) = Profile::load("quick").unwrap();
        let steps = plan(
            &profile,
            Path::new("d/fer.csv"),
            Path::new("out"),
            Some(7),
            "cpu",
        );
        let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "statistics",
                "plot-distribution",
                "plot-samples",
                "train-cnn-augmented",
                "train-cnn-no-augmentation",
                "train-cnn-svm-head",
                "train-hog-svm",
                "eval-cnn-augmented",
                "eval-cnn-no-augmentation",
                "eval-cnn-svm-head",
                "eval-hog-svm",
                "report"
            ]
        );
        let train = &steps[3];
        assert!(train.args.contains(&"--resume".to_string()));
        let subset = train
            .args
            .iter()
            .position(|a| a == "--train-subset")
            .unwrap();
        assert_eq!(train.args[subset + 1], "6000");
        let eval = &steps[7];
        assert_eq!(
            eval.stdout_to.as_deref(),
            Some(Path::new("out/cnn-augmented/eval-private-test.json"))
        );
        assert!(eval.command_line().contains("--split private-test"));
        let report = steps.last().unwrap();
        assert_eq!(
            report.args.iter().filter(|a| a.starts_with("out/")).count(),
            6
        );
    }

    #[test]
    fn the_seed_profile_keeps_and_scores_every_epoch_of_its_cnns() {
        let (_, profile) = Profile::load("seed").unwrap();
        assert!(profile.eval_every_epoch);
        assert_eq!(profile.cnn["keep_last"], 100);
        assert_eq!(profile.cnn["epochs"], 100);
        let steps = plan(&profile, Path::new("d.csv"), Path::new("out"), None, "cpu");
        let every: Vec<&Step> = steps
            .iter()
            .filter(|s| s.name.starts_with("eval-epochs-"))
            .collect();
        assert_eq!(every.len(), 3, "the three CNN runs, not the HOG-SVM");
        assert_eq!(
            every[0].command_line(),
            "fer eval --model out/cnn-augmented --data d.csv --split private-test \
             --every-epoch --device cpu"
        );
        let position = |name: &str| steps.iter().position(|s| s.name == name).unwrap();
        assert_eq!(
            position("eval-epochs-cnn-augmented"),
            position("eval-cnn-augmented") + 1
        );
        // Other profiles do not.
        let (_, quick) = Profile::load("quick").unwrap();
        assert!(!quick.eval_every_epoch);
    }

    #[test]
    fn an_ensemble_is_evaluated_from_its_members_and_reported() {
        let mut profile = Profile::load("quick").unwrap().1;
        profile.ensembles.push(EnsembleSpec {
            name: "both".into(),
            description: String::new(),
            members: vec!["cnn-augmented".into(), "cnn-svm-head".into()],
        });
        profile.validate().unwrap();
        let steps = plan(&profile, Path::new("d.csv"), Path::new("out"), None, "cpu");
        let report_at = steps.len() - 1;
        let ensemble = &steps[report_at - 1];
        assert_eq!(ensemble.name, "eval-both");
        assert_eq!(
            ensemble.command_line(),
            "fer eval --model out/cnn-augmented --model out/cnn-svm-head --data d.csv \
             --split private-test --json --device cpu --out out/both \
             > out/both/eval-private-test.json"
        );
        assert!(steps[report_at].args.contains(&"out/both".to_string()));
    }

    #[test]
    fn bad_profiles_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let write = |text: &str| {
            let path = dir.path().join("p.json");
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        };
        let base = r#""description": "x", "cnn": {"epochs": 1}"#;
        let duplicate = write(&format!(
            r#"{{{base}, "runs": [{{"name": "a"}}, {{"name": "a"}}]}}"#
        ));
        let error = format!("{:#}", Profile::load(&duplicate).unwrap_err());
        assert!(
            error.contains("distinct") && error.contains("p.json"),
            "{error}"
        );
        let taken = write(&format!(
            r#"{{{base}, "runs": [{{"name": "hog-svm"}}], "hog_svm": {{}}}}"#
        ));
        assert!(format!("{:#}", Profile::load(&taken).unwrap_err()).contains("distinct"));
        let slash = write(&format!(r#"{{{base}, "runs": [{{"name": "a/b"}}]}}"#));
        assert!(format!("{:#}", Profile::load(&slash).unwrap_err()).contains("`a/b`"));
        let unknown = write(&format!(
            r#"{{{base}, "runs": [{{"name": "a"}}], "epochs": 3}}"#
        ));
        let error = format!("{:#}", Profile::load(&unknown).unwrap_err());
        assert!(error.contains("unknown field `epochs`"), "{error}");
        let stranger = write(&format!(
            r#"{{{base}, "runs": [{{"name": "a"}}, {{"name": "b"}}],
                "ensembles": [{{"name": "e", "members": ["a", "c"]}}]}}"#
        ));
        let error = format!("{:#}", Profile::load(&stranger).unwrap_err());
        assert!(error.contains("`c` is not a CNN run"), "{error}");
        let alone = write(&format!(
            r#"{{{base}, "runs": [{{"name": "a"}}], "ensembles": [{{"name": "e", "members": ["a"]}}]}}"#
        ));
        assert!(format!("{:#}", Profile::load(&alone).unwrap_err()).contains("two or more"));
        let clash = write(&format!(
            r#"{{{base}, "runs": [{{"name": "a"}}, {{"name": "b"}}],
                "ensembles": [{{"name": "a", "members": ["a", "b"]}}]}}"#
        ));
        assert!(format!("{:#}", Profile::load(&clash).unwrap_err()).contains("distinct"));
        let missing = format!("{:#}", Profile::load("no-such-profile").unwrap_err());
        assert!(
            missing.contains("quick") && missing.contains("seed"),
            "{missing}"
        );
    }

    #[test]
    fn command_lines_quote_what_a_shell_would_split() {
        let step =
            Step::new("s", &["eval", "--model", "my runs/it's"]).stdout_to(PathBuf::from("o.json"));
        assert_eq!(
            step.command_line(),
            r"fer eval --model 'my runs/it'\''s' > o.json"
        );
    }
}
