//! The `fer` command: one entry point for every stage of the toolkit.

/// `println!` that returns the write error instead of panicking, so that a closed pipe
/// (`fer models | head`) ends the command quietly (see `is_broken_pipe`).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

mod commands;
mod shared;

use std::process::ExitCode;

use clap::{ArgAction, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// glibc maps and unmaps the large tensors of every training step; mimalloc keeps them.
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

/// Facial expression recognition on FER2013 and your own faces.
#[derive(Parser)]
#[command(name = "fer", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// Print less (errors only).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Print more (-v debug, -vv trace); RUST_LOG overrides both.
    #[arg(short, long, global = true, action = ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Stats(commands::stats::StatsArgs),
    ExportImages(commands::export::ExportArgs),
    AugmentPreview(commands::preview::PreviewArgs),
    Train(Box<commands::train::TrainArgs>),
    Eval(commands::eval::EvalArgs),
    Plot(commands::plot::PlotArgs),
    Report(commands::report::ReportArgs),
    Predict(commands::predict::PredictArgs),
    Models(commands::models::ModelsArgs),
    Serve(Box<commands::serve::ServeArgs>),
}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = Cli::parse();
    init_logging(cli.quiet, cli.verbose);
    let result = match cli.command {
        Command::Stats(args) => commands::stats::run(&args),
        Command::ExportImages(args) => commands::export::run(&args),
        Command::AugmentPreview(args) => commands::preview::run(&args),
        Command::Train(args) => commands::train::run(&args, cli.quiet),
        Command::Eval(args) => commands::eval::run(&args, cli.quiet),
        Command::Predict(args) => commands::predict::run(&args, cli.quiet),
        Command::Models(args) => commands::models::run(&args),
        Command::Serve(args) => commands::serve::run(&args),
        Command::Plot(args) => commands::plot::run(&args),
        Command::Report(args) => commands::report::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`fer predict ... | head`) is the reader's choice, not a failure.
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn init_logging(quiet: bool, verbose: u8) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .without_time()
        .init();
}
