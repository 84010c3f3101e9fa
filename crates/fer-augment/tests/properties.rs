//! Properties of the transforms and the pipeline that a wrong implementation would break.

use fer_augment::{
    Fill, Pipeline, PipelineConfig, Transform, adjust_brightness, adjust_contrast, rotate,
};
use fer_data::synthetic::{SyntheticConfig, generate};
use fer_data::{IMAGE_PIXELS, IMAGE_SIDE};
use image::GrayImage;

fn face(seed: u64) -> Vec<u8> {
    let data = generate(&SyntheticConfig::small(seed));
    data.image(0).to_vec()
}

/// Side of a FER2013 image, and its last row or column.
const SIDE: usize = IMAGE_SIDE;
const LAST: usize = SIDE - 1;

fn gray(pixels: &[u8]) -> GrayImage {
    GrayImage::from_raw(SIDE as u32, SIDE as u32, pixels.to_vec()).unwrap()
}

fn only(transform: Transform) -> Pipeline {
    Pipeline::new(
        PipelineConfig {
            transforms: vec![transform],
        },
        1,
    )
    .unwrap()
}

#[test]
fn flipping_twice_is_the_identity_and_once_mirrors() {
    let image = face(1);
    let flip = only(Transform::HorizontalFlip { p: 1.0 });
    let once = flip.apply(&image, 0, 0).unwrap();
    assert_ne!(once, image);
    assert_eq!(once[0], image[LAST]);
    assert_eq!(once[SIDE + 5], image[SIDE + LAST - 5]);
    assert_eq!(flip.apply(&once, 0, 0).unwrap(), image);
    assert_eq!(
        only(Transform::HorizontalFlip { p: 0.0 })
            .apply(&image, 0, 0)
            .unwrap(),
        image
    );
}

#[test]
fn rotation_by_zero_is_the_identity() {
    let image = face(2);
    assert_eq!(rotate(&gray(&image), 0.0, Fill::default()).as_raw(), &image);
    let zero = only(Transform::Rotation {
        degrees: 0.0,
        fill: Fill::default(),
    });
    assert_eq!(zero.apply(&image, 3, 4).unwrap(), image);
}

#[test]
fn rotation_by_90_is_a_transpose_and_mirror() {
    let image = face(3);
    let rotated = rotate(&gray(&image), 90.0, Fill::default());
    // Counter-clockwise on screen: output (x, y) shows input (LAST - y, x).
    for y in 0..SIDE {
        for x in 0..SIDE {
            let expected = image[x * SIDE + (LAST - y)];
            let (px, py) = (x as u32, y as u32);
            assert_eq!(rotated.get_pixel(px, py)[0], expected, "at ({x}, {y})");
        }
    }
    let back = rotate(&rotated, -90.0, Fill::default());
    assert_eq!(back.as_raw(), &image);
}

#[test]
fn every_profile_keeps_48x48_and_varies_with_seed_epoch_and_sample() {
    let data = generate(&SyntheticConfig::small(4));
    let indices: Vec<usize> = (0..32).collect();
    for name in ["none", "seed", "modern", "robust", "everything"] {
        let config = PipelineConfig::named(name).unwrap();
        let a = Pipeline::new(config.clone(), 7).unwrap();
        let b = Pipeline::new(config.clone(), 7).unwrap();
        let c = Pipeline::new(config, 8).unwrap();
        let out = a.augment_from(&data, &indices, 0);
        assert_eq!(out.len(), indices.len() * IMAGE_PIXELS, "{name}");
        assert_eq!(
            out,
            b.augment_from(&data, &indices, 0),
            "{name}: same seed, same output"
        );
        if name == "none" {
            assert_eq!(&out[..], &data.pixels()[..out.len()]);
        } else {
            assert_ne!(
                out,
                c.augment_from(&data, &indices, 0),
                "{name}: other seed"
            );
            assert_ne!(
                out,
                a.augment_from(&data, &indices, 1),
                "{name}: other epoch"
            );
        }
    }
}

#[test]
fn batches_do_not_depend_on_thread_count_or_batch_order() {
    let data = generate(&SyntheticConfig::small(5));
    let pipeline = Pipeline::new(PipelineConfig::everything(), 11).unwrap();
    let indices: Vec<usize> = (0..64).collect();
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| pipeline.augment_from(&data, &indices, 2))
    };
    let one = run(1);
    assert_eq!(one, run(2));
    assert_eq!(one, run(4));
    // Image 10 gets the same draws alone as inside the batch.
    let alone = pipeline.augment_from(&data, &[10], 2);
    assert_eq!(&alone[..], &one[10 * IMAGE_PIXELS..11 * IMAGE_PIXELS]);
}

#[test]
fn flip_rate_matches_p_within_a_binomial_bound() {
    let image = face(6);
    let p = 0.3f64;
    let flip = only(Transform::HorizontalFlip { p: p as f32 });
    let n = 4000;
    let flipped = (0..n)
        .filter(|&i| flip.apply(&image, 0, i).unwrap() != image)
        .count() as f64;
    let sigma = (n as f64 * p * (1.0 - p)).sqrt();
    assert!(
        (flipped - n as f64 * p).abs() < 4.0 * sigma,
        "{flipped} of {n} flipped"
    );
}

#[test]
fn jitter_with_factor_one_or_range_zero_changes_nothing() {
    let image = face(7);
    let mut g = gray(&image);
    adjust_brightness(&mut g, 1.0);
    adjust_contrast(&mut g, 1.0);
    assert_eq!(g.as_raw(), &image);
    let seed_jitter = only(Transform::ColorJitter {
        brightness: 0.0,
        contrast: 0.0,
    });
    for sample in 0..20 {
        assert_eq!(seed_jitter.apply(&image, 0, sample).unwrap(), image);
    }
    let real_jitter = only(Transform::ColorJitter {
        brightness: 0.5,
        contrast: 0.5,
    });
    assert!((0..20).any(|s| real_jitter.apply(&image, 0, s).unwrap() != image));
    let mut dark = gray(&image);
    adjust_brightness(&mut dark, 0.5);
    assert_eq!(dark.as_raw()[0], (f32::from(image[0]) * 0.5).round() as u8);
}

#[test]
fn random_crop_shifts_content_by_at_most_the_padding() {
    let mut image = vec![0u8; IMAGE_PIXELS];
    let middle = (SIDE / 2) as i32;
    image[SIDE / 2 * SIDE + SIDE / 2] = 255; // one bright pixel in the middle
    let crop = only(Transform::RandomCrop {
        padding: 3,
        fill: Fill::default(),
    });
    let mut moved = 0;
    for sample in 0..50 {
        let out = crop.apply(&image, 0, sample).unwrap();
        let at = out
            .iter()
            .position(|&p| p == 255)
            .expect("the pixel stays inside");
        let (x, y) = ((at % SIDE) as i32, (at / SIDE) as i32);
        assert!(
            (x - middle).abs() <= 3 && (y - middle).abs() <= 3,
            "({x}, {y})"
        );
        moved += usize::from((x, y) != (middle, middle));
    }
    assert!(moved > 25, "{moved}");
}

#[test]
fn random_erasing_paints_a_bounded_rectangle() {
    let image = vec![100u8; IMAGE_PIXELS];
    let erase = only(Transform::RandomErasing {
        p: 1.0,
        scale: [0.1, 0.1],
        ratio: [1.0, 1.0],
        value: fer_augment::Erase::Constant { value: 7 },
    });
    let out = erase.apply(&image, 0, 0).unwrap();
    let painted = out.iter().filter(|&&p| p == 7).count();
    // 10% of 2304 = 230.4 -> a 15x15 square.
    assert_eq!(painted, 225);
    assert_eq!(
        out.iter().filter(|&&p| p == 100).count(),
        IMAGE_PIXELS - 225
    );
}

/// Mean absolute difference between neighbours along rows: the image's fine detail.
fn detail(image: &[u8]) -> f64 {
    let sum: f64 = image
        .chunks(SIDE)
        .flat_map(|row| row.windows(2).map(|w| f64::from(w[0].abs_diff(w[1]))))
        .sum();
    sum / (image.len() - image.len() / SIDE) as f64
}

#[test]
fn blur_and_downscaling_remove_detail_at_rate_p_and_bad_levels_are_refused() {
    let image = face(9);
    let blur = |p: f32, sigma: [f32; 2]| only(Transform::GaussianBlur { p, sigma });
    let down = |p: f32, side: [u32; 2]| only(Transform::Downscale { p, side });
    for (name, pipeline) in [
        ("blur", blur(1.0, [1.0, 2.0])),
        ("downscale", down(1.0, [12, 16])),
    ] {
        let out = pipeline.apply(&image, 0, 0).unwrap();
        assert!(
            detail(&out) < 0.6 * detail(&image),
            "{name}: {} vs {}",
            detail(&out),
            detail(&image)
        );
        // The mean grey level stays (within rounding and the edges).
        let mean = |v: &[u8]| v.iter().map(|&p| f64::from(p)).sum::<f64>() / v.len() as f64;
        assert!((mean(&out) - mean(&image)).abs() < 3.0, "{name}");
    }
    // p = 0 and a 48-pixel side change nothing.
    assert_eq!(blur(0.0, [1.0, 2.0]).apply(&image, 0, 0).unwrap(), image);
    assert_eq!(down(1.0, [48, 48]).apply(&image, 0, 0).unwrap(), image);
    // p = 0.2: about a fifth of 400 images changed (binomial sd 8).
    let changed = (0..400)
        .filter(|&i| blur(0.2, [1.0, 1.0]).apply(&image, 0, i).unwrap() != image)
        .count();
    assert!((50..=110).contains(&changed), "{changed}");
    for (transform, says) in [
        (
            Transform::GaussianBlur {
                p: 0.5,
                sigma: [0.0, 1.0],
            },
            "0.01 <= lo",
        ),
        (
            Transform::GaussianBlur {
                p: 2.0,
                sigma: [1.0, 1.0],
            },
            "p must be in 0..1",
        ),
        (
            Transform::Downscale {
                p: 0.5,
                side: [1, 8],
            },
            "2 <= lo <= hi <= 48",
        ),
        (
            Transform::Downscale {
                p: 0.5,
                side: [40, 60],
            },
            "2 <= lo <= hi <= 48",
        ),
    ] {
        let error = transform.validate().unwrap_err().to_string();
        assert!(error.contains(says), "{error}");
    }
}

#[test]
fn configs_round_trip_through_json_and_bad_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("augment.json");
    let config = PipelineConfig::everything();
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    assert_eq!(PipelineConfig::from_json_file(&path).unwrap(), config);

    std::fs::write(
        &path,
        r#"{"transforms": [{"type": "horizontal_flip", "p": 1.5}]}"#,
    )
    .unwrap();
    let err = PipelineConfig::from_json_file(&path)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("horizontal_flip") && err.contains("p must be in 0..1"),
        "{err}"
    );
    std::fs::write(&path, r#"{"transforms": [{"type": "sharpen"}]}"#).unwrap();
    let err = PipelineConfig::from_json_file(&path)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("augment.json") && err.contains("sharpen"),
        "{err}"
    );
    assert!(
        only(Transform::HorizontalFlip { p: 1.0 })
            .apply(&[0u8; 10], 0, 0)
            .is_err()
    );
}
