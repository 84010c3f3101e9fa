//! Detection, landmark and crop time per photo at 640x480 and 1920x1080, and what a detector
//! costs to build.
//!
//! ```text
//! cargo run --release --example timing -- [photo] [runs] [out_dir]
//! ```
//!
//! With `out_dir`, each size's annotated image is written there as `timing-<w>x<h>-<min>.png`.
//!
//! The photo (default: the committed astronaut portrait) is resized to fit each size and
//! centred on a grey canvas, so the face grows with the image. rustface is single-threaded here:
//! one detection uses one core.

use std::time::Instant;

use fer_detect::{
    Annotation, DEFAULT_MARGIN, DetectorOptions, FaceDetector, LandmarkNet, SEETA_MODEL, annotate,
    crop_face, crop_face_upright,
};
use image::imageops::FilterType;

fn ms(start: Instant, runs: u32) -> f64 {
    start.elapsed().as_secs_f64() * 1e3 / f64::from(runs)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let photo = args.next().unwrap_or_else(|| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/astronaut.png").to_owned()
    });
    let runs: u32 = args.next().map(|r| r.parse()).transpose()?.unwrap_or(5);
    let out_dir = args.next().map(std::path::PathBuf::from);
    let photo = fer_data::face_image::load_image(std::path::Path::new(&photo))?;

    let start = Instant::now();
    for _ in 0..runs {
        rustface::read_model(SEETA_MODEL)?;
    }
    println!("parse embedded model:      {:8.2} ms", ms(start, runs));
    let model = rustface::read_model(SEETA_MODEL)?;
    let start = Instant::now();
    for _ in 0..runs * 10 {
        std::hint::black_box(model.clone());
    }
    println!("clone model (per detect):  {:8.2} ms", ms(start, runs * 10));

    let landmarks = LandmarkNet::new()?;
    for min_face_size in [40, 20] {
        let detector = FaceDetector::new(DetectorOptions {
            min_face_size,
            ..DetectorOptions::default()
        })?;
        for (w, h) in [(640, 480), (1920, 1080)] {
            let fitted = photo.resize(w, h, FilterType::Triangle).to_rgb8();
            let mut rgb = image::RgbImage::from_pixel(w, h, image::Rgb([128, 128, 128]));
            image::imageops::overlay(
                &mut rgb,
                &fitted,
                i64::from((w - fitted.width()) / 2),
                i64::from((h - fitted.height()) / 2),
            );
            let grey = image::DynamicImage::ImageRgb8(rgb.clone()).to_luma8();
            let mut faces = detector.detect(&grey);
            let start = Instant::now();
            for _ in 0..runs {
                faces = detector.detect(std::hint::black_box(&grey));
            }
            let detect = ms(start, runs);
            let start = Instant::now();
            for _ in 0..runs {
                let crops: Vec<_> = faces
                    .iter()
                    .map(|f| crop_face(&grey, f, DEFAULT_MARGIN))
                    .collect();
                std::hint::black_box(crops);
            }
            let crop = ms(start, runs);
            let start = Instant::now();
            for _ in 0..runs {
                std::hint::black_box(landmarks.locate(&grey, &faces)?);
            }
            let locate = ms(start, runs);
            let marks = landmarks.locate(&grey, &faces)?;
            let start = Instant::now();
            for _ in 0..runs {
                let crops: Vec<_> = faces
                    .iter()
                    .zip(&marks)
                    .map(|(f, m)| crop_face_upright(&grey, f, DEFAULT_MARGIN, m.roll_degrees()))
                    .collect();
                std::hint::black_box(crops);
            }
            let upright = ms(start, runs);
            let annotations: Vec<_> = faces
                .iter()
                .map(|f| Annotation::new(*f, "face", f.score))
                .collect();
            let start = Instant::now();
            for _ in 0..runs {
                std::hint::black_box(annotate(&rgb, &annotations));
            }
            let draw = ms(start, runs);
            if let Some(dir) = &out_dir {
                annotate(&rgb, &annotations)
                    .save(dir.join(format!("timing-{w}x{h}-{min_face_size}.png")))?;
            }
            println!(
                "{w}x{h} min_face_size {min_face_size}: detect {detect:8.1} ms, crop {crop:.2} ms, \
                 landmarks {locate:.2} ms, upright crop {upright:.2} ms, annotate {draw:.1} ms, \
                 {} face(s) {:?}",
                faces.len(),
                faces
                    .iter()
                    .map(|f| (f.x, f.y, f.width, f.height, f.score))
                    .collect::<Vec<_>>()
            );
        }
    }
    Ok(())
}
