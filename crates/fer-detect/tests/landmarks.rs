//! O-Net's landmarks: the same numbers as the PyTorch network it comes from, eyes where they
//! are on a real photo, and the tilt of a turned photo measured back.

use std::path::PathBuf;

use candle_core::{Device, Tensor};
use fer_data::face_image::load_image;
use fer_detect::{DetectorOptions, FaceDetector, LandmarkNet};
use image::GrayImage;
use imageproc::geometric_transformations::{Border, Interpolation, rotate_about_center};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// `tests/data/onet_reference.py`'s inputs, pixel for pixel.
fn pattern(n: usize, y: usize, x: usize) -> u8 {
    let (xf, yf) = (x as f64, y as f64);
    match n {
        0 => ((x * 7 + y * 13) % 256) as u8,
        1 => (127.5 + 127.5 * (xf / 5.0).sin() * (yf / 7.0).cos()) as u8,
        _ => {
            let eye = |cx: f64, cy: f64| (xf - cx).powi(2) + (yf - cy).powi(2) < 9.0;
            if eye(17.0, 19.0) || eye(31.0, 19.0) {
                20
            } else if (18..30).contains(&x) && (32..35).contains(&y) {
                230
            } else {
                (70 + 3 * x) as u8
            }
        }
    }
}

#[test]
fn onet_matches_the_pytorch_network_it_was_converted_from() {
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data("onet_reference.json")).unwrap())
            .unwrap();
    let pixels: Vec<f32> = (0..3)
        .flat_map(|n| (0..48).flat_map(move |y| (0..48).map(move |x| pattern(n, y, x))))
        .map(|p| (f32::from(p) - 127.5) * 0.0078125)
        .collect();
    let input = Tensor::from_vec(pixels, (3, 1, 48, 48), &Device::Cpu).unwrap();
    let (probability, points) = LandmarkNet::new().unwrap().forward(&input).unwrap();
    let ours = [
        ("probability", probability.to_vec2::<f32>().unwrap()),
        ("points", points.to_vec2::<f32>().unwrap()),
    ];
    let mut worst = 0.0f64;
    for (name, rows) in ours {
        for (row, expected) in rows.iter().zip(reference[name].as_array().unwrap()) {
            for (a, b) in row.iter().zip(expected.as_array().unwrap()) {
                worst = worst.max((f64::from(*a) - b.as_f64().unwrap()).abs());
            }
        }
    }
    eprintln!("O-Net against PyTorch: largest difference {worst:.2e}");
    assert!(worst < 1e-5, "largest difference {worst}");
}

#[test]
fn the_astronaut_eyes_are_level_and_a_turned_photo_gives_its_turn_back() {
    let photo = load_image(&data("astronaut.png")).unwrap().to_luma8();
    let detector = FaceDetector::new(DetectorOptions::default()).unwrap();
    let net = LandmarkNet::new().unwrap();
    let locate = |image: &GrayImage| {
        let faces = detector.detect(image);
        assert_eq!(faces.len(), 1, "{faces:?}");
        let marks = net.locate(image, &faces).unwrap()[0];
        (faces[0], marks)
    };
    let (face, upright) = locate(&photo);
    eprintln!("astronaut: {face:?} {upright:?}");
    assert!(upright.face_probability > 0.9, "{upright:?}");
    // Eyes in the upper half of the box, left before right, about 40% of the box apart;
    // the mouth below the nose below the eyes.
    let (top, middle) = (face.y as f32, face.y as f32 + face.height as f32 / 2.0);
    for eye in [upright.left_eye, upright.right_eye] {
        assert!(eye.y > top && eye.y < middle, "{eye:?} in {face:?}");
    }
    let spacing = (upright.right_eye.x - upright.left_eye.x) / face.width as f32;
    assert!(
        (0.25..0.6).contains(&spacing),
        "eyes {spacing} of the box apart"
    );
    assert!(upright.nose.y > upright.left_eye.y && upright.mouth_left.y > upright.nose.y);
    let base = upright.roll_degrees();
    assert!(base.abs() < 10.0, "the portrait's roll {base}");

    for turn in [-15.0f32, 12.0] {
        let turned = rotate_about_center(
            &photo,
            turn.to_radians(),
            Interpolation::Bilinear,
            Border::Replicate,
        );
        let (_, marks) = locate(&turned);
        let measured = marks.roll_degrees() - base;
        eprintln!("turned {turn} degrees: measured {measured:.2}");
        assert!(
            (measured - turn).abs() < 4.0,
            "turned {turn}, measured {measured}"
        );
    }
}
