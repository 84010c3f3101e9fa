//! Detection on a real public-domain photo (the NASA portrait of Eileen Collins that
//! scikit-image ships, see `tests/data/README.md`), on copies of it at known places, and on
//! images without faces.

use std::path::PathBuf;

use fer_data::face_image::load_image;
use fer_detect::{
    Annotation, DEFAULT_MARGIN, DetectorOptions, FER_SIZE, FaceBox, FaceDetector, PALETTE,
    annotate, crop_face,
};
use image::imageops::{self, FilterType};
use image::{GrayImage, Luma, Rgb, RgbImage};

/// The face in `astronaut.png` (512x512), measured by eye: cheek to cheek, hairline to chin.
const ASTRONAUT_FACE: FaceBox = FaceBox {
    x: 176,
    y: 70,
    width: 96,
    height: 100,
    score: 0.0,
};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn astronaut() -> RgbImage {
    load_image(&data("astronaut.png")).unwrap().to_rgb8()
}

fn grey(image: &RgbImage) -> GrayImage {
    image::DynamicImage::ImageRgb8(image.clone()).to_luma8()
}

fn detector() -> FaceDetector {
    FaceDetector::new(DetectorOptions::default()).unwrap()
}

/// A seeded xorshift, so that noise images need no extra dependency.
fn noise(width: u32, height: u32, seed: u64) -> GrayImage {
    let mut state = seed | 1;
    GrayImage::from_fn(width, height, |_, _| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        Luma([(state >> 56) as u8])
    })
}

#[test]
fn the_astronaut_face_is_found_where_it_is() {
    let faces = detector().detect(&grey(&astronaut()));
    assert_eq!(faces.len(), 1, "{faces:?}");
    let face = faces[0];
    let iou = face.iou(&ASTRONAUT_FACE);
    assert!(iou >= 0.7, "IoU {iou} of {face:?} with {ASTRONAUT_FACE:?}");
    assert!(face.score > 5.0, "{face:?}");
}

/// The portrait fitted into 1920x1080 (grey bars left and right): still one face, where it
/// should be; at score threshold 2.0 the name badge on the suit would be a second one.
#[test]
fn the_astronaut_in_full_hd_is_one_face() {
    let fitted = imageops::resize(&astronaut(), 1080, 1080, FilterType::Triangle);
    let mut canvas = RgbImage::from_pixel(1920, 1080, Rgb([128, 128, 128]));
    imageops::overlay(&mut canvas, &fitted, 420, 0);
    let faces = detector().detect(&grey(&canvas));
    let k = 1080.0 / 512.0;
    let want = FaceBox {
        x: 420 + (ASTRONAUT_FACE.x as f32 * k) as u32,
        y: (ASTRONAUT_FACE.y as f32 * k) as u32,
        width: (ASTRONAUT_FACE.width as f32 * k) as u32,
        height: (ASTRONAUT_FACE.height as f32 * k) as u32,
        score: 0.0,
    };
    assert_eq!(faces.len(), 1, "{faces:?}");
    assert!(faces[0].iou(&want) >= 0.7, "{faces:?} vs {want:?}");
}

#[test]
fn detection_is_deterministic_and_shared_across_threads() {
    fn send_sync<T: Send + Sync + Clone>() {}
    send_sync::<FaceDetector>();

    let image = grey(&astronaut());
    let detector = detector();
    let here = detector.detect(&image);
    let there: Vec<Vec<FaceBox>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| s.spawn(|| detector.detect(&image)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(there, vec![here.clone(), here]);
}

#[test]
fn a_mirrored_photo_gives_the_mirrored_box() {
    let image = grey(&astronaut());
    let detector = detector();
    let face = detector.detect(&image)[0];
    let mirrored = detector.detect(&imageops::flip_horizontal(&image));
    assert_eq!(mirrored.len(), 1, "{mirrored:?}");
    let expected = FaceBox {
        x: image.width() - face.right(),
        ..face
    };
    assert!(
        mirrored[0].iou(&expected) > 0.8,
        "{mirrored:?} vs {expected:?}"
    );
}

/// Three copies of the portrait at different sizes on one wide canvas: three faces, sorted
/// left to right, each where its copy put it.
#[test]
fn several_faces_at_known_places_are_all_found_in_order() {
    let photo = astronaut();
    let mut canvas = RgbImage::from_pixel(1400, 600, Rgb([90, 110, 130]));
    let mut expected = Vec::new();
    // (left, top, side of the pasted portrait), right to left so sorting is tested.
    for (left, top, side) in [(900, 40, 480), (420, 200, 360), (40, 100, 300)] {
        let copy = imageops::resize(&photo, side, side, FilterType::Triangle);
        imageops::overlay(&mut canvas, &copy, left, top);
        let k = side as f32 / 512.0;
        expected.push(FaceBox {
            x: left as u32 + (ASTRONAUT_FACE.x as f32 * k) as u32,
            y: top as u32 + (ASTRONAUT_FACE.y as f32 * k) as u32,
            width: (ASTRONAUT_FACE.width as f32 * k) as u32,
            height: (ASTRONAUT_FACE.height as f32 * k) as u32,
            score: 0.0,
        });
    }
    expected.reverse();
    let faces = detector().detect(&grey(&canvas));
    assert_eq!(faces.len(), 3, "{faces:?}");
    for (face, want) in faces.iter().zip(&expected) {
        assert!(face.iou(want) >= 0.6, "{face:?} vs {want:?}");
    }
}

#[test]
fn images_without_faces_give_an_empty_list() {
    let detector = detector();
    let small_faces = detector
        .with_options(DetectorOptions {
            min_face_size: 20,
            ..DetectorOptions::default()
        })
        .unwrap();
    for image in [
        GrayImage::from_pixel(640, 480, Luma([128])),
        GrayImage::new(320, 240),
        noise(640, 480, 7),
        noise(300, 200, 11),
    ] {
        assert_eq!(detector.detect(&image), vec![]);
        assert_eq!(small_faces.detect(&image), vec![]);
    }
    // The wall of the portrait's background, far from the face.
    let corner = imageops::crop_imm(&grey(&astronaut()), 0, 300, 120, 200).to_image();
    assert_eq!(detector.detect(&corner), vec![]);
}

#[test]
fn degenerate_images_do_not_panic() {
    let detector = detector();
    for (w, h) in [
        (0, 0),
        (0, 10),
        (1, 1),
        (19, 19),
        (39, 400),
        (1, 1000),
        (1000, 1),
    ] {
        assert_eq!(detector.detect(&noise(w, h, 3)), vec![], "{w}x{h}");
    }
}

#[test]
fn crops_and_annotations_of_the_detected_face() {
    let photo = astronaut();
    let image = grey(&photo);
    let face = detector().detect(&image)[0];

    // The 48x48 crop shows the face: its middle (nose, cheeks) is much brighter than the
    // dark collar of the suit at the bottom of a larger crop.
    let crop = crop_face(&image, &face, DEFAULT_MARGIN);
    assert_eq!(crop.dimensions(), (FER_SIZE, FER_SIZE));
    let middle = mean(&imageops::crop_imm(&crop, 16, 16, 16, 16).to_image());
    assert!(middle > 120.0, "face middle {middle}");

    let color = PALETTE[3];
    let out = annotate(
        &photo,
        &[Annotation::new(face, "happy", 0.93).with_color(color)],
    );
    for x in face.x..face.right() {
        assert_eq!(*out.get_pixel(x, face.y), color);
        assert_eq!(*out.get_pixel(x, face.bottom() - 1), color);
    }
    for y in face.y..face.bottom() {
        assert_eq!(*out.get_pixel(face.x, y), color);
        assert_eq!(*out.get_pixel(face.right() - 1, y), color);
    }
    let (cx, cy) = face.center();
    assert_eq!(
        out.get_pixel(cx as u32, cy as u32),
        photo.get_pixel(cx as u32, cy as u32)
    );
}

fn mean(image: &GrayImage) -> f64 {
    image.pixels().map(|p| f64::from(p[0])).sum::<f64>() / image.len() as f64
}

/// A JPEG stored sideways with Exif orientation 6 ("rotate 90 degrees clockwise to display"),
/// as phones write them, opens upright, so the frontal detector finds the face.
#[test]
fn exif_orientation_is_applied_when_opening() {
    use image::ImageEncoder;

    let photo = astronaut();
    let sideways = imageops::rotate270(&photo);
    // A little-endian TIFF header with one IFD entry: Orientation (0x0112), SHORT, 1, value 6.
    let mut exif = b"II*\0".to_vec();
    exif.extend_from_slice(&8u32.to_le_bytes());
    exif.extend_from_slice(&1u16.to_le_bytes());
    for half in [0x0112u16, 3] {
        exif.extend_from_slice(&half.to_le_bytes());
    }
    exif.extend_from_slice(&1u32.to_le_bytes());
    exif.extend_from_slice(&6u16.to_le_bytes());
    exif.extend_from_slice(&[0; 2 + 4]);

    let dir = std::env::temp_dir().join(format!("fer-detect-exif-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sideways.jpg");
    let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(
        std::fs::File::create(&path).unwrap(),
        95,
    );
    encoder.set_exif_metadata(exif).unwrap();
    encoder
        .write_image(
            sideways.as_raw(),
            sideways.width(),
            sideways.height(),
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();

    let upright = load_image(&path).unwrap().to_rgb8();
    std::fs::remove_dir_all(&dir).unwrap();
    let diff: f64 = upright
        .pixels()
        .zip(photo.pixels())
        .map(|(a, b)| f64::from(a[1].abs_diff(b[1])))
        .sum::<f64>()
        / f64::from(photo.width() * photo.height());
    assert!(
        diff < 6.0,
        "mean green difference {diff} from the upright original"
    );
    let faces = detector().detect(&grey(&upright));
    assert_eq!(faces.len(), 1, "{faces:?}");
    assert!(faces[0].iou(&ASTRONAUT_FACE) >= 0.7, "{faces:?}");
    // The sideways pixels themselves hold no frontal face.
    assert_eq!(detector().detect(&grey(&sideways)), vec![]);
}

#[test]
fn unreadable_images_are_errors_naming_the_file() {
    let missing = data("no-such-photo.jpg");
    let err = load_image(&missing).unwrap_err();
    assert!(err.to_string().contains("no-such-photo.jpg"), "{err}");

    let dir = std::env::temp_dir().join(format!("fer-detect-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let corrupt = dir.join("corrupt.png");
    let mut bytes = std::fs::read(data("astronaut.png")).unwrap();
    bytes.truncate(2000);
    std::fs::write(&corrupt, &bytes).unwrap();
    let err = load_image(&corrupt).unwrap_err();
    assert!(err.to_string().contains("corrupt.png"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
