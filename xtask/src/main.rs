//! Project automation behind `cargo xtask`: fetching the data, running the whole experiment,
//! measuring the code.

mod bench;
mod download;
mod pipeline;
mod regression;

use clap::{Parser, Subcommand};

/// glibc maps and unmaps the large tensors of every step; mimalloc keeps them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Download(args) => download::run(args),
        Command::Bench(bench) => bench::run(bench),
        Command::Pipeline(args) => pipeline::run(args),
        Command::Regression(args) => regression::run(args),
    }
}
