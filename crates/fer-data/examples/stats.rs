//! Prints class counts per split and the quirks of a FER2013 file: `stats PATH`.

use fer_data::{Emotion, LoadOptions, Statistics, load};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: stats PATH/TO/fer2013.csv[.gz]")?;
    let data = load(&path, &LoadOptions::default())?.dataset;
    let stats = Statistics::compute(&data);
    for split in &stats.splits {
        let counts: Vec<String> = Emotion::ALL
            .iter()
            .map(|e| format!("{} {}", e.name(), split.per_class[e.index()]))
            .collect();
        println!(
            "{:<12} {:>6}  {}",
            split.split,
            split.total,
            counts.join(", ")
        );
    }
    println!(
        "black images: {}, duplicate groups: {} ({} spanning splits, {} with conflicting labels)",
        stats.black_images.len(),
        stats.duplicates.groups.len(),
        stats.duplicates.cross_split_groups(),
        stats.duplicates.conflicting_label_groups()
    );
    Ok(())
}
