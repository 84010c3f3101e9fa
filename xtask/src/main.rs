//! Project automation behind `cargo xtask`: fetching the data and measuring the code.

mod bench;
mod download;

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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Download(args) => download::run(args),
        Command::Bench(bench) => bench::run(bench),
    }
}
