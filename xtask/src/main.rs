//! Project automation behind `cargo xtask`: fetching the data, running the whole experiment,
//! measuring the code.

mod bench;
mod builtin_model;
mod check_cuda;
mod download;
mod gpu_check;
mod imports;
mod links;
mod notebook_eval;
mod photos;
mod pipeline;
mod regression;
mod results;
mod serve_bench;
#[cfg(test)]
mod test_tree;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

/// glibc maps and unmaps the large tensors of every step; mimalloc keeps them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (index 15 of `mi_option_e` in mimalloc 2 and 3).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed memory mapped. By default mimalloc hands freed pages back to the OS after
/// 10 ms and the next training step faults them in again, zeroed by the kernel: 10% of a CNN
/// step's time went to that. The footprint stays at the peak (a few hundred MB).
fn keep_freed_memory() {
    // SAFETY: sets a global allocator option; mimalloc documents it as callable at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

/// Project automation for the fer workspace (run as `cargo xtask ...`).
#[derive(Parser)]
#[command(name = "cargo xtask", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fetch FER2013 (from a mirror, a URL or a local file), verify its checksum, store it.
    Download(download::DownloadArgs),
    /// Measure the project beside its peers and print figures (ours / theirs).
    #[command(subcommand)]
    Bench(bench::Bench),
    /// Run the seed experiment end to end (data, statistics, CNN runs with and without
    /// augmentation and with the SVM head, HOG + linear SVM, PrivateTest evaluations, HTML
    /// report) per a profile; run it again after an interruption to continue.
    Pipeline(pipeline::PipelineArgs),
    /// Run the `smoke` pipeline twice on synthetic data: fail if the two runs differ or any
    /// model falls below the committed baseline (the CI regression job).
    Regression(regression::RegressionArgs),
    /// Keep the small artefacts of the runs the README quotes under results/, and regenerate
    /// the README's result tables from them (`render --check` fails on a stale table).
    #[command(subcommand)]
    Results(results::Results),
    /// Check that no two files of a crate import each other in a circle.
    CheckImports(imports::ImportsArgs),
    /// Check that every relative link in the repository's Markdown files resolves (files,
    /// folders, and headings' anchors).
    CheckLinks(links::LinksArgs),
    /// Build and lint the `cuda` feature without a GPU (a CUDA toolkit from PyPI's NVIDIA
    /// packages, pinned, under target/cuda-venv), and check the binary links and runs.
    CheckCuda(check_cuda::CheckCudaArgs),
    /// The prepared GPU check: CPU against CUDA logits and gradients of both networks,
    /// training and inference images/s beside PyTorch on the same GPU, then the `best`
    /// profile trained for the remaining minutes; every figure as JSON under --out.
    GpuCheck(gpu_check::GpuCheckArgs),
    /// Ship a trained run as a model built into the `fer` crate (crates/fer/models/NAME/):
    /// weights as f16, evaluated on PublicTest and PrivateTest against the run's f32 figures.
    BuiltinModel(builtin_model::BuiltinModelArgs),
    /// Score a run's epoch checkpoints on PrivateTest as `fer eval` does and as the seed
    /// notebook did (the Training mean subtracted from Training only).
    NotebookEval(notebook_eval::NotebookEvalArgs),
}

/// The workspace root: the parent of this crate's directory, or, for a binary carried to
/// another machine (a GPU machine for `gpu-check`) where that folder does not exist, the
/// current directory.
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .filter(|root| root.join("xtask").is_dir())
        .map_or_else(
            || std::path::PathBuf::from("."),
            std::path::Path::to_path_buf,
        )
}

/// The default FER2013 location: data/ in the workspace, then ../shared/data beside it (where
/// the project's development and CI machines keep a copy).
pub fn default_data() -> Option<std::path::PathBuf> {
    let root = crate::workspace_root();
    [
        root.join("data/fer2013.csv.gz"),
        root.join("data/fer2013.csv"),
        root.join("../shared/data/fer2013.csv.gz"),
    ]
    .into_iter()
    .find(|p| p.is_file())
    .map(|p| p.canonicalize().unwrap_or(p))
}

/// The files under `root` whose names end in `.extension`, relative to it and sorted,
/// descending only into the folders whose names `enter` accepts.
pub fn files_under(
    root: &std::path::Path,
    extension: &str,
    enter: impl Fn(&str) -> bool,
) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut files = Vec::new();
    let walk = walkdir::WalkDir::new(root)
        .into_iter()
        .filter_entry(|entry| {
            entry.depth() == 0
                || !entry.file_type().is_dir()
                || enter(&entry.file_name().to_string_lossy())
        });
    for entry in walk {
        let entry = entry.with_context(|| format!("cannot list {}", root.display()))?;
        let path = entry.path();
        if entry.file_type().is_file() && path.extension().is_some_and(|e| e == extension) {
            files.push(path.strip_prefix(root)?.to_path_buf());
        }
    }
    files.sort();
    Ok(files)
}

/// The JSON object on the last line of a command's output (how every peer reports).
pub fn last_json_line(stdout: &[u8]) -> anyhow::Result<serde_json::Value> {
    let text = String::from_utf8_lossy(stdout);
    let line = text.lines().last().context("no output")?;
    serde_json::from_str(line).with_context(|| format!("not JSON: {line}"))
}

fn main() -> anyhow::Result<()> {
    keep_freed_memory();
    let cli = Cli::parse();
    match cli.command {
        Command::Download(args) => download::run(args),
        Command::Bench(bench) => bench::run(bench),
        Command::Pipeline(args) => pipeline::run(args),
        Command::Regression(args) => regression::run(args),
        Command::Results(command) => results::run(command),
        Command::CheckImports(args) => imports::run(args),
        Command::CheckLinks(args) => links::run(args),
        Command::CheckCuda(args) => check_cuda::run(args),
        Command::GpuCheck(args) => gpu_check::run(&args),
        Command::BuiltinModel(args) => builtin_model::run(args),
        Command::NotebookEval(args) => notebook_eval::run(args),
    }
}

/// A memory `field` of process `pid` (a number, or `self`) from /proc, in MiB; NaN where
/// /proc is unavailable.
pub(crate) fn proc_status_mib(pid: &str, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}
