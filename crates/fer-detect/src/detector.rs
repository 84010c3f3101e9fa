//! The SeetaFace frontal face detector (rustface) with its model embedded in the binary.

use std::sync::Arc;

use image::GrayImage;
use image::imageops::{self, FilterType};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The SeetaFace Detection frontal model (`seeta_fd_frontal_v1.0.bin`, BSD-2-Clause, copied from
/// the rustface 0.1.7 package; see `model/LICENSE-SeetaFace`).
pub static SEETA_MODEL: &[u8] = include_bytes!("../model/seeta_fd_frontal_v1.0.bin");

/// The detector's window: at scale 1 rustface finds faces of this many pixels or more.
const BASE_WINDOW: u32 = 40;
/// Upscaling before detection never exceeds this factor (memory and time grow with its square).
const MAX_UPSCALE: f32 = 8.0;

/// A detected face: an axis-aligned box in the pixel coordinates of the image given to
/// [`FaceDetector::detect`], always inside that image and never empty.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FaceBox {
    /// Left edge (inclusive).
    pub x: u32,
    /// Top edge (inclusive).
    pub y: u32,
    /// Width in pixels (at least 1).
    pub width: u32,
    /// Height in pixels (at least 1).
    pub height: u32,
    /// The detector's confidence (SeetaFace's cascade score: not a probability; typical faces
    /// score 5 to 50, and nothing below [`DetectorOptions::score_threshold`] is returned).
    pub score: f32,
}

impl FaceBox {
    /// Right edge (exclusive).
    pub fn right(&self) -> u32 {
        self.x.saturating_add(self.width)
    }

    /// Bottom edge (exclusive).
    pub fn bottom(&self) -> u32 {
        self.y.saturating_add(self.height)
    }

    /// Area in pixels.
    pub fn area(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }

    /// The box's centre.
    pub fn center(&self) -> (f32, f32) {
        (
            self.x as f32 + self.width as f32 / 2.0,
            self.y as f32 + self.height as f32 / 2.0,
        )
    }

    /// Intersection over union with `other`, in `[0, 1]` (0 when either box is empty).
    pub fn iou(&self, other: &FaceBox) -> f32 {
        let w = self
            .right()
            .min(other.right())
            .saturating_sub(self.x.max(other.x));
        let h = self
            .bottom()
            .min(other.bottom())
            .saturating_sub(self.y.max(other.y));
        let inter = u64::from(w) * u64::from(h);
        let union = self.area() + other.area() - inter;
        if union == 0 {
            0.0
        } else {
            (inter as f64 / union as f64) as f32
        }
    }
}

/// How the detector searches. [`Default`] suits photos; see each field for its range, which
/// [`FaceDetector::new`] checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectorOptions {
    /// Smallest face to find, in pixels of the input image, at least 20. rustface 0.1.7 itself
    /// only finds faces of 40 px or more (its minimum-size setting is not wired in), so below 40
    /// the image is upscaled by `40 / min_face_size` before detection, which costs time growing
    /// with the square of that factor. Default 40.
    pub min_face_size: u32,
    /// Largest face to find, in pixels of the input image; `None` means no limit. Smaller values
    /// make detection faster on large photos. At least `min_face_size`.
    pub max_face_size: Option<u32>,
    /// Detections scoring below this are dropped; positive. Default 3.85, SeetaFace's own: at
    /// 2.0 (rustface's demo) 4 more of 60 FER2013 faces pasted into noise are found, but the
    /// name badge of the astronaut portrait at 1920x1080 is taken for a face (score 2.8).
    pub score_threshold: f64,
    /// Ratio between adjacent image-pyramid scales, in `[0.1, 0.99]`: larger is slower and
    /// finds more faces between scales. Default 0.8.
    pub pyramid_scale_factor: f32,
    /// Sliding-window step in pixels (both directions), 1 to 40. Default 4.
    pub slide_window_step: u32,
    /// Images whose shorter side is below this are upscaled so that it reaches this (at most
    /// 8x) before detection, so that a face filling a small image, such as a 48x48 FER2013 crop,
    /// is big enough for the detector's window; 0 turns this off. Default 160.
    pub min_image_side: u32,
    /// Images whose longer side is above this are searched on a copy scaled down to it, and
    /// the boxes scaled back: on a 12-megapixel photo, detection at 640 px takes about 1/40 of
    /// the time at full size. The cost is small faces: below about `40 * longer side /
    /// max_image_side` pixels (250 px in a 4000 px photo) a face is not found, whatever
    /// `min_face_size` says. `None` (the default) searches every image at full size; at least 80.
    pub max_image_side: Option<u32>,
}

impl Default for DetectorOptions {
    fn default() -> Self {
        Self {
            min_face_size: BASE_WINDOW,
            max_face_size: None,
            score_threshold: 3.85,
            pyramid_scale_factor: 0.8,
            slide_window_step: 4,
            min_image_side: 160,
            max_image_side: None,
        }
    }
}

impl DetectorOptions {
    /// Checks every field against the range the detector accepts (rustface panics outside it).
    pub fn validate(&self) -> Result<()> {
        fn invalid(name: &'static str, value: impl ToString, expected: &'static str) -> Error {
            Error::InvalidOption {
                name,
                value: value.to_string(),
                expected,
            }
        }
        if !(20..=100_000).contains(&self.min_face_size) {
            return Err(invalid(
                "min_face_size",
                self.min_face_size,
                "20 to 100000 pixels",
            ));
        }
        if let Some(max) = self.max_face_size
            && max < self.min_face_size
        {
            return Err(invalid(
                "max_face_size",
                max,
                "at least min_face_size pixels",
            ));
        }
        if !(self.score_threshold.is_finite() && self.score_threshold > 0.0) {
            return Err(invalid(
                "score_threshold",
                self.score_threshold,
                "a positive number",
            ));
        }
        if !(0.1..=0.99).contains(&self.pyramid_scale_factor) {
            return Err(invalid(
                "pyramid_scale_factor",
                self.pyramid_scale_factor,
                "0.1 to 0.99",
            ));
        }
        if !(1..=BASE_WINDOW).contains(&self.slide_window_step) {
            return Err(invalid(
                "slide_window_step",
                self.slide_window_step,
                "1 to 40 pixels",
            ));
        }
        if self.min_image_side > 4096 {
            return Err(invalid(
                "min_image_side",
                self.min_image_side,
                "0 (off) to 4096 pixels",
            ));
        }
        if let Some(side) = self.max_image_side
            && side < 80
        {
            return Err(invalid(
                "max_image_side",
                side,
                "at least 80 pixels, or none",
            ));
        }
        Ok(())
    }

    /// The factor the image is scaled by before detection: below 1 for an image larger than
    /// `max_image_side`, else [`DetectorOptions::upscale_factor`].
    pub fn scale_factor(&self, width: u32, height: u32) -> f32 {
        let long = width.max(height);
        match self.max_image_side {
            Some(side) if long > side => side as f32 / long as f32,
            _ => self.upscale_factor(width, height),
        }
    }

    /// The factor the image is upscaled by before detection (1 when it is not).
    pub fn upscale_factor(&self, width: u32, height: u32) -> f32 {
        let short = width.min(height).max(1) as f32;
        let for_faces = BASE_WINDOW as f32 / self.min_face_size.max(1) as f32;
        let for_image = self.min_image_side as f32 / short;
        for_faces.max(for_image).clamp(1.0, MAX_UPSCALE)
    }
}

/// A face detector: the parsed SeetaFace model and the search options.
///
/// Cheap to clone (the model is shared) and `Send + Sync`: [`detect`](Self::detect) takes
/// `&self`, so one detector serves many threads. rustface's own detector keeps scratch buffers
/// and is neither `Send` nor `Sync`, so each thread keeps one (built around a copy of the
/// model on its first call) and reuses it and its buffers for every later photo. A single
/// detection is single-threaded; parallelise over photos.
#[derive(Clone)]
pub struct FaceDetector {
    model: Arc<rustface::Model>,
    options: DetectorOptions,
}

impl std::fmt::Debug for FaceDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaceDetector")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl FaceDetector {
    /// Parses the embedded model (a few milliseconds) and checks `options`.
    pub fn new(options: DetectorOptions) -> Result<Self> {
        options.validate()?;
        let model = rustface::read_model(SEETA_MODEL).map_err(Error::Model)?;
        Ok(Self {
            model: Arc::new(model),
            options,
        })
    }

    /// The options this detector searches with.
    pub fn options(&self) -> &DetectorOptions {
        &self.options
    }

    /// The same model with other options (no re-parsing).
    pub fn with_options(&self, options: DetectorOptions) -> Result<Self> {
        options.validate()?;
        Ok(Self {
            model: Arc::clone(&self.model),
            options,
        })
    }

    /// Every face found in `image`, sorted left to right (then top to bottom, then by
    /// descending score). Boxes are in `image`'s pixel coordinates, clipped to it. An empty
    /// image, or one too small to hold a face, gives an empty list.
    pub fn detect(&self, image: &GrayImage) -> Vec<FaceBox> {
        let (width, height) = image.dimensions();
        if width == 0 || height == 0 {
            return Vec::new();
        }
        let factor = self.options.scale_factor(width, height);
        let scaled;
        let (work, scale) = if factor != 1.0 {
            let w = (width as f32 * factor).round().max(1.0) as u32;
            let h = (height as f32 * factor).round().max(1.0) as u32;
            scaled = if factor > 1.0 {
                imageops::resize(image, w, h, FilterType::Triangle)
            } else {
                // Area averaging in integers: several times faster than a filtered resize.
                imageops::thumbnail(image, w, h)
            };
            // The exact per-axis factors, so boxes map back without drift.
            (&scaled, (w as f32 / width as f32, h as f32 / height as f32))
        } else {
            (image, (1.0, 1.0))
        };
        let (ww, wh) = work.dimensions();
        if ww.min(wh) < BASE_WINDOW {
            // rustface finds nothing below its window size; say so without running it.
            return Vec::new();
        }

        let faces = with_thread_detector(&self.model, |detector| {
            detector.set_min_face_size(20);
            // 0 turns rustface's limit off (a detector is reused across calls).
            let max_work = self.options.max_face_size.map_or(0, |max| {
                ((max as f32 * scale.0.max(scale.1)).round() as u32).max(BASE_WINDOW)
            });
            detector.set_max_face_size(max_work);
            detector.set_score_thresh(self.options.score_threshold);
            detector.set_pyramid_scale_factor(self.options.pyramid_scale_factor);
            detector.set_slide_window_step(
                self.options.slide_window_step,
                self.options.slide_window_step,
            );
            detector.detect(&rustface::ImageData::new(work.as_raw(), ww, wh))
        });

        let mut boxes: Vec<FaceBox> = faces
            .iter()
            .filter_map(|face| {
                let b = face.bbox();
                to_image_box(
                    b.x() as f32 / scale.0,
                    b.y() as f32 / scale.1,
                    b.width() as f32 / scale.0,
                    b.height() as f32 / scale.1,
                    face.score() as f32,
                    width,
                    height,
                )
            })
            .collect();
        boxes.sort_by(|a, b| {
            (a.x, a.y)
                .cmp(&(b.x, b.y))
                .then(b.score.total_cmp(&a.score))
        });
        boxes
    }
}

/// A rustface detector and the model it was built from.
type BuiltDetector = (Arc<rustface::Model>, Box<dyn rustface::Detector>);

thread_local! {
    /// This thread's rustface detector and the model it was built from (kept alive here, so
    /// that the pointer comparison in [`with_thread_detector`] cannot match a new model at a
    /// freed one's address).
    static THREAD_DETECTOR: std::cell::RefCell<Option<BuiltDetector>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` with this thread's rustface detector for `model`, building it on first use (or
/// when `model` is another one). Options are set by `f` on every call.
fn with_thread_detector<T>(
    model: &Arc<rustface::Model>,
    f: impl FnOnce(&mut dyn rustface::Detector) -> T,
) -> T {
    THREAD_DETECTOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let reusable = slot
            .as_ref()
            .is_some_and(|(built_from, _)| Arc::ptr_eq(built_from, model));
        if !reusable {
            let detector = rustface::create_detector_with_model((**model).clone());
            *slot = Some((Arc::clone(model), detector));
        }
        let (_, detector) = slot.as_mut().expect("filled above");
        f(detector.as_mut())
    })
}

/// Rounds a box to whole pixels and clips it to the image; `None` if nothing is left.
fn to_image_box(
    x: f32,
    y: f32,
    w: f32,
    h: f32,
    score: f32,
    width: u32,
    height: u32,
) -> Option<FaceBox> {
    let x0 = x.round().clamp(0.0, width as f32) as u32;
    let y0 = y.round().clamp(0.0, height as f32) as u32;
    let x1 = (x + w).round().clamp(0.0, width as f32) as u32;
    let y1 = (y + h).round().clamp(0.0, height as f32) as u32;
    (x1 > x0 && y1 > y0).then_some(FaceBox {
        x: x0,
        y: y0,
        width: x1 - x0,
        height: y1 - y0,
        score,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FER_SIZE;

    fn b(x: u32, y: u32, width: u32, height: u32) -> FaceBox {
        FaceBox {
            x,
            y,
            width,
            height,
            score: 1.0,
        }
    }

    #[test]
    fn iou_of_known_boxes() {
        assert_eq!(b(0, 0, 10, 10).iou(&b(0, 0, 10, 10)), 1.0);
        assert_eq!(b(0, 0, 10, 10).iou(&b(10, 0, 10, 10)), 0.0);
        // 5x10 overlap of two 100-pixel boxes: 50 / 150.
        assert!((b(0, 0, 10, 10).iou(&b(5, 0, 10, 10)) - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(b(0, 0, 0, 0).iou(&b(0, 0, 0, 0)), 0.0);
    }

    #[test]
    fn boxes_are_clipped_to_the_image_and_empty_ones_dropped() {
        assert_eq!(
            to_image_box(-5.0, -3.0, 20.0, 20.0, 1.0, 10, 12),
            Some(FaceBox {
                x: 0,
                y: 0,
                width: 10,
                height: 12,
                score: 1.0
            })
        );
        assert_eq!(to_image_box(15.0, 0.0, 5.0, 5.0, 1.0, 10, 10), None);
        assert_eq!(to_image_box(2.0, 2.0, 0.2, 5.0, 1.0, 10, 10), None);
    }

    #[test]
    fn options_out_of_range_are_errors_naming_the_field() {
        let bad = [
            DetectorOptions {
                min_face_size: 19,
                ..Default::default()
            },
            DetectorOptions {
                max_face_size: Some(30),
                ..Default::default()
            },
            DetectorOptions {
                score_threshold: 0.0,
                ..Default::default()
            },
            DetectorOptions {
                score_threshold: f64::NAN,
                ..Default::default()
            },
            DetectorOptions {
                pyramid_scale_factor: 1.0,
                ..Default::default()
            },
            DetectorOptions {
                slide_window_step: 0,
                ..Default::default()
            },
            DetectorOptions {
                min_image_side: 5000,
                ..Default::default()
            },
        ];
        let names = [
            "min_face_size",
            "max_face_size",
            "score_threshold",
            "score_threshold",
            "pyramid_scale_factor",
            "slide_window_step",
            "min_image_side",
        ];
        for (options, name) in bad.iter().zip(names) {
            let err = options.validate().unwrap_err();
            assert!(matches!(err, Error::InvalidOption { name: n, .. } if n == name));
            assert!(err.to_string().contains(name), "{err}");
        }
        DetectorOptions::default().validate().unwrap();
    }

    #[test]
    fn boxes_and_options_as_json() {
        let face = FaceBox {
            x: 1,
            y: 2,
            width: 3,
            height: 4,
            score: 0.5,
        };
        let json = serde_json::to_string(&face).unwrap();
        assert_eq!(json, r#"{"x":1,"y":2,"width":3,"height":4,"score":0.5}"#);
        assert_eq!(serde_json::from_str::<FaceBox>(&json).unwrap(), face);
        let options: DetectorOptions = serde_json::from_str(r#"{"min_face_size": 20}"#).unwrap();
        assert_eq!(
            options,
            DetectorOptions {
                min_face_size: 20,
                ..Default::default()
            }
        );
        assert!(serde_json::from_str::<DetectorOptions>(r#"{"min_face": 20}"#).is_err());
    }

    #[test]
    fn upscale_factor_follows_min_face_size_and_small_images() {
        let o = DetectorOptions::default();
        assert_eq!(o.upscale_factor(640, 480), 1.0);
        assert_eq!(
            o.upscale_factor(FER_SIZE, FER_SIZE),
            160.0 / FER_SIZE as f32
        );
        assert_eq!(o.upscale_factor(10, 10), MAX_UPSCALE);
        let small = DetectorOptions {
            min_face_size: 20,
            ..o
        };
        assert_eq!(small.upscale_factor(640, 480), 2.0);
    }

    #[test]
    fn large_images_are_searched_scaled_down_to_max_image_side() {
        let o = DetectorOptions {
            max_image_side: Some(640),
            ..DetectorOptions::default()
        };
        assert_eq!(o.scale_factor(4000, 3000), 640.0 / 4000.0);
        assert_eq!(o.scale_factor(480, 1280), 0.5);
        assert_eq!(o.scale_factor(640, 480), 1.0);
        assert_eq!(o.scale_factor(FER_SIZE, FER_SIZE), 160.0 / FER_SIZE as f32);
        assert_eq!(DetectorOptions::default().scale_factor(4000, 3000), 1.0);
        let tiny = DetectorOptions {
            max_image_side: Some(79),
            ..o
        };
        let error = tiny.validate().unwrap_err().to_string();
        assert!(error.contains("max_image_side"), "{error}");
    }
}
