//! `fer export-images`: write splits as PNG folders (`<out>/<Split>/<label>/<row>.png`).

use std::path::PathBuf;

use fer_data::Split;

use crate::shared::data::DataArgs;

/// Export images as 48x48 grey PNGs in the layout the seed evaluates from.
///
/// Example: fer export-images --data data/fer2013.csv.gz --out images --split private-test
#[derive(clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub input: DataArgs,
    /// Folder to write into; created if missing.
    #[arg(long)]
    pub out: PathBuf,
    /// Split(s) to export (training, public-test, private-test); all when absent.
    #[arg(long = "split", value_name = "NAME")]
    pub splits: Vec<Split>,
}

pub fn run(args: &ExportArgs) -> anyhow::Result<()> {
    let dataset = args.input.open()?;
    let written = fer_data::folder::export_images(&dataset, &args.out, &args.splits)?;
    outln!("wrote {written} images under {}", args.out.display())?;
    Ok(())
}
