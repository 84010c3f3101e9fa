//! The real FER2013 file: exact class counts, the 12 black images and the duplicate figures
//! of the workspace README's Data section (every black row is listed below).
//!
//! The file is read from `$FER2013_CSV`, else from `../shared/data/fer2013.csv.gz` beside the
//! workspace. Without it the test fails and says how to supply it; set
//! `FER_SKIP_REAL_DATA=1` to skip it where the data cannot be had (e.g. a public CI runner).

use std::path::PathBuf;

use fer_data::{LoadOptions, Split, Statistics, load};

fn real_data() -> Option<PathBuf> {
    if std::env::var_os("FER_SKIP_REAL_DATA").is_some_and(|v| v == "1") {
        eprintln!("FER_SKIP_REAL_DATA=1: skipping the real-data checks");
        return None;
    }
    let path = std::env::var_os("FER2013_CSV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/fer2013.csv.gz")
        });
    assert!(
        path.is_file(),
        "FER2013 not found at {}: set FER2013_CSV to fer2013.csv(.gz), or FER_SKIP_REAL_DATA=1",
        path.display()
    );
    Some(path)
}

#[test]
fn real_fer2013_matches_its_documented_counts_and_quirks() {
    let Some(path) = real_data() else { return };
    let loaded = load(&path, &LoadOptions::default()).unwrap();
    assert!(loaded.skipped.is_empty());
    let data = &loaded.dataset;
    assert_eq!(data.len(), 35_887);
    let stats = Statistics::compute(data);
    let expected = [
        (
            Split::Training,
            28_709,
            [3995, 436, 4097, 7215, 4830, 3171, 4965],
        ),
        (Split::PublicTest, 3_589, [467, 56, 496, 895, 653, 415, 607]),
        (
            Split::PrivateTest,
            3_589,
            [491, 55, 528, 879, 594, 416, 626],
        ),
    ];
    for (split, total, per_class) in expected {
        let s = stats.split(split).unwrap();
        assert_eq!((s.total, s.per_class), (total, per_class), "{split}");
    }
    assert_eq!(
        stats.all.per_class,
        [4953, 547, 5121, 8989, 6077, 4002, 6198]
    );
    // Splits are contiguous in the original order.
    assert_eq!(data.indices_of(Split::PublicTest).first(), Some(&28_709));
    assert_eq!(data.indices_of(Split::PrivateTest).first(), Some(&32_298));

    let black_rows: Vec<u32> = stats.black_images.iter().map(|&i| data.rows()[i]).collect();
    assert_eq!(
        black_rows,
        [
            6458, 7629, 10423, 11286, 13148, 13402, 13988, 15894, 22198, 22927, 28601, 30002
        ]
    );

    let d = &stats.duplicates;
    assert_eq!(d.unique_images, 34_034);
    assert_eq!(d.groups.len(), 1_516);
    assert_eq!(d.rows_in_groups(), 3_369);
    assert_eq!(d.extra_copies(), 1_853);
    assert_eq!(d.cross_split_groups(), 557);
    assert_eq!(d.with_copy_in_training(Split::PublicTest), 280);
    assert_eq!(d.with_copy_in_training(Split::PrivateTest), 288);
    assert_eq!(d.conflicting_label_groups(), 57);
    // The rows evaluations leave out for their second set of figures: within each test split,
    // and each one's pixels equal to some Training image's.
    for (split, count) in [(Split::PublicTest, 280), (Split::PrivateTest, 288)] {
        let rows = d.rows_with_copy_in_training(split);
        assert_eq!(rows.len(), count, "{split}");
        let training: std::collections::HashSet<&[u8]> = data
            .indices_of(Split::Training)
            .into_iter()
            .map(|i| data.image(i))
            .collect();
        for i in data.indices_of(split) {
            let leaked = training.contains(data.image(i));
            assert_eq!(
                rows.contains(&data.rows()[i]),
                leaked,
                "row {}",
                data.rows()[i]
            );
        }
    }
}
