//! The real FER2013 file: exact class counts, the 12 black images and the duplicate figures
//! of the workspace README's Data section (every black row is listed below).
//!
//! The file is read from `$FER2013_CSV`, else from `../shared/data/fer2013.csv.gz` beside the
//! workspace. `FER_SKIP_REAL_DATA=1`, or a missing file, skips the test with a `SKIPPED` line
//! on stderr; on CI (`CI` set) a missing file fails it instead (see `support/real_fer2013.rs`).

use std::ffi::OsStr;
use std::path::Path;

use fer_data::{LoadOptions, Split, Statistics, load};

#[path = "support/real_fer2013.rs"]
mod real_fer2013;

use real_fer2013::{RealData, decide, real_fer2013};

#[test]
fn real_fer2013_matches_its_documented_counts_and_quirks() {
    let Some(path) = real_fer2013("real_fer2013_matches_its_documented_counts_and_quirks") else {
        return;
    };
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

/// Where the real data cannot be had, tests skip saying why; CI never skips silently.
#[test]
fn real_data_tests_skip_with_a_reason_and_fail_on_ci_without_the_file() {
    let path = Path::new("/nowhere/fer2013.csv.gz");
    let (one, zero) = (Some(OsStr::new("1")), Some(OsStr::new("0")));
    let ci = Some(OsStr::new("true"));
    let skip = RealData::Skip("FER_SKIP_REAL_DATA=1".to_string());
    assert_eq!(decide(one, None, path, true), skip);
    assert_eq!(decide(one, ci, path, false), skip);
    assert_eq!(decide(None, None, path, true), RealData::Run(path.into()));
    assert_eq!(decide(None, ci, path, true), RealData::Run(path.into()));
    let missing = format!("no FER2013 file at {}", path.display());
    for local in [None, Some(OsStr::new("")), Some(OsStr::new("false"))] {
        match decide(None, local, path, false) {
            RealData::Skip(reason) => assert!(reason.starts_with(&missing), "{reason}"),
            other => panic!("{local:?}: {other:?}"),
        }
    }
    for skip_value in [None, zero] {
        match decide(skip_value, ci, path, false) {
            RealData::Fail(message) => assert!(message.starts_with(&missing), "{message}"),
            other => panic!("{skip_value:?}: {other:?}"),
        }
    }
}
