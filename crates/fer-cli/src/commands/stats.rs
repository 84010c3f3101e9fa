//! `fer stats`: class balance per split and the dataset's quirks, as a table or JSON.

use std::fmt::Write;

use fer_data::{Dataset, Emotion, SplitStats, Statistics};

use crate::shared::data::DataArgs;

/// Class counts per split (the seed's three bar charts as numbers) and the data's quirks.
///
/// Example: fer stats --data data/fer2013.csv.gz --json
#[derive(clap::Args)]
pub struct StatsArgs {
    #[command(flatten)]
    pub input: DataArgs,
    /// Print one JSON object on stdout instead of tables.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &StatsArgs) -> anyhow::Result<()> {
    let dataset = args.input.open()?;
    let stats = Statistics::compute(&dataset);
    if args.json {
        outln!("{}", stats.summary_json(&dataset))?;
    } else {
        print!(
            "{}",
            render(&args.input.data.display().to_string(), &dataset, &stats)
        );
    }
    Ok(())
}

fn render(source: &str, dataset: &Dataset, stats: &Statistics) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{source}: {} images\n", dataset.len());
    let _ = write!(out, "{:<12} {:>7}", "split", "total");
    for emotion in Emotion::ALL {
        let _ = write!(out, " {:>8}", emotion.name());
    }
    let _ = writeln!(out, " {:>10}", "max/min");
    let mut row = |name: &str, s: &SplitStats| {
        let _ = write!(out, "{name:<12} {:>7}", s.total);
        for count in s.per_class {
            let _ = write!(out, " {count:>8}");
        }
        let ratio = s.imbalance_ratio.map_or("-".into(), |r| format!("{r:.1}x"));
        let _ = writeln!(out, " {ratio:>10}");
        let _ = write!(out, "{:<12} {:>7}", "", "");
        for share in s.shares {
            let _ = write!(out, " {:>7.1}%", share * 100.0);
        }
        let _ = writeln!(out);
    };
    for s in &stats.splits {
        row(s.split.name(), s);
    }
    if stats.splits.len() > 1 {
        row("all", &stats.all);
    }
    let d = &stats.duplicates;
    let rows = |indices: &[usize]| -> String {
        indices
            .iter()
            .map(|&i| dataset.rows()[i].to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(out, "\nquirks:");
    let _ = writeln!(
        out,
        "  all-black images:         {} (rows {})",
        stats.black_images.len(),
        rows(&stats.black_images)
    );
    let _ = writeln!(
        out,
        "  exact duplicates:         {} groups holding {} images ({} extra copies); {} unique images",
        d.groups.len(),
        d.rows_in_groups(),
        d.extra_copies(),
        d.unique_images
    );
    let _ = writeln!(
        out,
        "  groups spanning splits:   {} (PublicTest images with a copy in Training: {}, PrivateTest: {})",
        d.cross_split_groups(),
        d.with_copy_in_training(fer_data::Split::PublicTest),
        d.with_copy_in_training(fer_data::Split::PrivateTest)
    );
    let _ = writeln!(
        out,
        "  groups with conflicting labels: {}",
        d.conflicting_label_groups()
    );
    out
}
