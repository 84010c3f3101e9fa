//! `fer export-images`: write splits as PNG folders (`<out>/<Split>/<label>/<row>.png`).

use std::path::PathBuf;

use fer_data::Split;

/// Export images as 48x48 grey PNGs in the layout the seed evaluates from.
///
/// Example: fer export-images --data data/fer2013.csv.gz --out images --split private-test
#[derive(clap::Args)]
pub struct ExportArgs {
    /// FER2013 CSV (.csv or .csv.gz, any Kaggle layout).
    #[arg(long, env = "FER2013_CSV")]
    pub data: PathBuf,
    /// Folder to write into; created if missing.
    #[arg(long)]
    pub out: PathBuf,
    /// Split(s) to export (training, public-test, private-test); all when absent.
    #[arg(long = "split", value_name = "NAME")]
    pub splits: Vec<Split>,
    /// Leave out malformed rows instead of stopping at the first.
    #[arg(long)]
    pub skip_bad_rows: bool,
}

pub fn run(args: &ExportArgs) -> anyhow::Result<()> {
    let dataset = super::open_dataset(&args.data, args.skip_bad_rows)?;
    let written = fer_data::folder::export_images(&dataset, &args.out, &args.splits)?;
    println!("wrote {written} images under {}", args.out.display());
    Ok(())
}
