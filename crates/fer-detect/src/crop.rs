//! Square face crops with a margin, resized to the 48x48 the FER model takes.

use image::imageops::{self, FilterType};
use image::{GrayImage, Luma};
use imageproc::geometric_transformations::{Border, Interpolation, Projection, warp_into};
use serde::{Deserialize, Serialize};

use crate::FaceBox;

/// Side of a FER2013 image, the classifier's input: the same as `fer_data::IMAGE_SIDE`
/// (this crate knows faces, not the data set, so it does not depend on `fer-data`).
pub const FER_SIZE: u32 = 48;

/// The margin [`crop_face`] callers should use by default: each side of the square grows by
/// this fraction of the box's longer side, so that the crop frames a face like FER2013 does.
/// Measured on FER2013 PublicTest faces pasted into larger images (`tests/real_data.rs`): a
/// FER2013 image's side is about 1.09 times the detector's box around its face, centred on it.
pub const DEFAULT_MARGIN: f32 = 0.05;

/// Margins are clamped to `[0, MAX_MARGIN]` (a non-finite margin counts as 0).
pub const MAX_MARGIN: f32 = 2.0;

/// A square region in image coordinates; it may reach outside the image, where a crop repeats
/// the border pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SquareRegion {
    /// Left edge (inclusive), may be negative.
    pub x: i64,
    /// Top edge (inclusive), may be negative.
    pub y: i64,
    /// Side in pixels (at least 1).
    pub side: u32,
}

impl FaceBox {
    /// The square around this box's centre whose side is the box's longer side times
    /// `1 + 2 * margin` (margin clamped to `[0, MAX_MARGIN]`).
    pub fn square_region(&self, margin: f32) -> SquareRegion {
        let margin = if margin.is_finite() {
            margin.clamp(0.0, MAX_MARGIN)
        } else {
            0.0
        };
        let long = self.width.max(self.height) as f64;
        let side = (long * (1.0 + 2.0 * margin as f64)).round().max(1.0);
        let (cx, cy) = (
            self.x as f64 + self.width as f64 / 2.0,
            self.y as f64 + self.height as f64 / 2.0,
        );
        SquareRegion {
            x: (cx - side / 2.0).round() as i64,
            y: (cy - side / 2.0).round() as i64,
            side: side as u32,
        }
    }
}

/// [`crop_square`] to [`FER_SIZE`]: the 48x48 input of the FER classifier.
pub fn crop_face(image: &GrayImage, face: &FaceBox, margin: f32) -> GrayImage {
    crop_square(image, face, margin, FER_SIZE)
}

/// The [`FaceBox::square_region`] of `face` cut from `image` and resized (bilinear, with
/// antialiasing when shrinking) to `size` x `size`. Parts of the square outside the image
/// repeat the nearest border pixel. Never panics: an empty image or a box outside it gives a
/// black (or border-coloured) crop, and `size` 0 an empty image.
pub fn crop_square(image: &GrayImage, face: &FaceBox, margin: f32, size: u32) -> GrayImage {
    crop_region(image, face.square_region(margin), size)
}

/// [`crop_square_upright`] to [`FER_SIZE`].
pub fn crop_face_upright(
    image: &GrayImage,
    face: &FaceBox,
    margin: f32,
    roll_degrees: f32,
) -> GrayImage {
    crop_square_upright(image, face, margin, roll_degrees, FER_SIZE)
}

/// [`crop_square`] of a face tilted by `roll_degrees` (positive clockwise as the image shows
/// it, as [`FaceLandmarks::roll_degrees`](crate::FaceLandmarks::roll_degrees) measures),
/// turned upright: the same square, centred on the box, rotated with the face, so that the
/// eyes come out level. A zero or non-finite roll gives exactly [`crop_square`].
///
/// The square that encloses the rotated one is cut and resized first (antialiased, as
/// [`crop_square`] does), then rotated bilinearly into the output.
pub fn crop_square_upright(
    image: &GrayImage,
    face: &FaceBox,
    margin: f32,
    roll_degrees: f32,
    size: u32,
) -> GrayImage {
    let region = face.square_region(margin);
    let theta = roll_degrees.to_radians();
    if !theta.is_finite() || theta == 0.0 || size == 0 {
        return crop_region(image, region, size);
    }
    // The enclosing square, in output pixels: a side with the parity of `size` keeps the two
    // centres on the same grid.
    let reach = theta.cos().abs() + theta.sin().abs();
    let mut outer = (size as f32 * reach).ceil() as u32 + 2;
    if (outer - size) % 2 == 1 {
        outer += 1;
    }
    let scale = f64::from(region.side) / f64::from(size);
    let outer_side = (f64::from(outer) * scale).round().max(1.0);
    let (cx, cy) = (
        region.x as f64 + f64::from(region.side) / 2.0,
        region.y as f64 + f64::from(region.side) / 2.0,
    );
    let enclosing = SquareRegion {
        x: (cx - outer_side / 2.0).round() as i64,
        y: (cy - outer_side / 2.0).round() as i64,
        side: outer_side as u32,
    };
    let source = crop_region(image, enclosing, outer);
    let from_centre = (outer as f32 - 1.0) / 2.0;
    let to_centre = (size as f32 - 1.0) / 2.0;
    // Turning the face upright is a counter-clockwise turn by its roll.
    let projection = Projection::translate(to_centre, to_centre)
        * Projection::rotate(-theta)
        * Projection::translate(-from_centre, -from_centre);
    let mut upright = GrayImage::new(size, size);
    warp_into(
        &source,
        projection,
        Interpolation::Bilinear,
        Border::Replicate,
        &mut upright,
    );
    upright
}

/// `region` cut from `image` and resized to `size` x `size` (see [`crop_square`]).
fn crop_region(image: &GrayImage, region: SquareRegion, size: u32) -> GrayImage {
    let (width, height) = image.dimensions();
    if width == 0 || height == 0 || size == 0 {
        return GrayImage::new(size, size);
    }
    let side = f64::from(region.side);
    let k = f64::from(size) / side;

    // The part of the square inside the image; if none (a box from another image), the
    // nearest image pixel stands in for it.
    let clip = |start: i64, len: u32| -> (u32, u32) {
        let lo = start.clamp(0, i64::from(len) - 1);
        let hi = (start + i64::from(region.side)).clamp(lo + 1, i64::from(len));
        (lo as u32, hi as u32)
    };
    let (ix0, ix1) = clip(region.x, width);
    let (iy0, iy1) = clip(region.y, height);

    // Where that part lands in the output, in whole pixels, at least one.
    let place = |lo: u32, hi: u32, start: i64| -> (i64, u32) {
        let o0 = ((i64::from(lo) - start) as f64 * k).round() as i64;
        let o1 = ((i64::from(hi) - start) as f64 * k).round() as i64;
        (o0, (o1 - o0).max(1) as u32)
    };
    let (ox, ow) = place(ix0, ix1, region.x);
    let (oy, oh) = place(iy0, iy1, region.y);

    let inside = imageops::crop_imm(image, ix0, iy0, ix1 - ix0, iy1 - iy0).to_image();
    let resized = imageops::resize(&inside, ow, oh, FilterType::Triangle);
    GrayImage::from_fn(size, size, |u, v| {
        let su = (i64::from(u) - ox).clamp(0, i64::from(ow) - 1) as u32;
        let sv = (i64::from(v) - oy).clamp(0, i64::from(oh) - 1) as u32;
        Luma([resized.get_pixel(su, sv)[0]])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(x: u32, y: u32, width: u32, height: u32) -> FaceBox {
        FaceBox {
            x,
            y,
            width,
            height,
            score: 10.0,
        }
    }

    #[test]
    fn square_region_is_centred_and_grown_by_the_margin() {
        let r = face(100, 50, 40, 60).square_region(0.25);
        assert_eq!(r.side, 90);
        assert_eq!((r.x, r.y), (120 - 45, 80 - 45));
        assert_eq!(face(0, 0, 10, 10).square_region(f32::NAN).side, 10);
        assert_eq!(face(0, 0, 10, 10).square_region(-1.0).side, 10);
        assert_eq!(face(0, 0, 10, 10).square_region(100.0).side, 50);
    }

    #[test]
    fn crops_have_the_side_of_fer2013_images() {
        assert_eq!(FER_SIZE as usize, fer_data::IMAGE_SIDE);
    }

    #[test]
    fn crop_of_a_box_inside_maps_pixels_to_the_right_places() {
        // Left half 0, right half 200, in a 100x100 image; a 40x40 box centred on the seam.
        let image = GrayImage::from_fn(100, 100, |x, _| Luma([if x < 50 { 0 } else { 200 }]));
        let crop = crop_face(&image, &face(30, 30, 40, 40), 0.0);
        assert_eq!(crop.dimensions(), (FER_SIZE, FER_SIZE));
        assert_eq!(crop.get_pixel(2, FER_SIZE / 2)[0], 0);
        assert_eq!(crop.get_pixel(FER_SIZE - 3, FER_SIZE / 2)[0], 200);
    }

    #[test]
    fn crops_at_borders_repeat_edge_pixels_without_panicking() {
        // A gradient so that repeated border pixels are recognisable.
        let image = GrayImage::from_fn(64, 48, |x, y| Luma([(x * 3 + y) as u8]));
        for b in [
            face(0, 0, 20, 20),
            face(44, 28, 20, 20),
            face(63, 47, 1, 1),
            face(0, 0, 64, 48),
            face(200, 200, 10, 10),
        ] {
            for margin in [0.0, DEFAULT_MARGIN, 1.0, MAX_MARGIN] {
                let crop = crop_face(&image, &b, margin);
                assert_eq!(crop.dimensions(), (FER_SIZE, FER_SIZE), "{b:?} {margin}");
            }
        }
        // Top-left corner box with margin 0.5: the square starts 10 px above and left of the
        // image, i.e. the first 12 output pixels (10 of 40 source pixels) repeat pixel (0, 0).
        let crop = crop_face(&image, &face(0, 0, 20, 20), 0.5);
        assert!(crop.get_pixel(0, 0)[0] <= 2);
        assert_eq!(crop.get_pixel(11, 11)[0], crop.get_pixel(0, 0)[0]);
        assert_eq!(crop.get_pixel(0, 5)[0], crop.get_pixel(5, 5)[0]);
        assert!(crop.get_pixel(FER_SIZE - 1, FER_SIZE - 1)[0] > 40);
    }

    /// A face-like test card: a smooth ramp with two dark "eyes" and a bright bar below.
    fn card(side: u32) -> GrayImage {
        let s = side as f32;
        GrayImage::from_fn(side, side, |x, y| {
            let (x, y) = (x as f32 / s, y as f32 / s);
            let spot = |cx: f32, cy: f32| ((x - cx).powi(2) + (y - cy).powi(2)).sqrt() < 0.06;
            let v = if spot(0.38, 0.42) || spot(0.62, 0.42) {
                10.0
            } else if (0.4..0.6).contains(&x) && (0.62..0.68).contains(&y) {
                250.0
            } else {
                60.0 + 120.0 * x
            };
            Luma([v as u8])
        })
    }

    fn mean_abs_difference(a: &GrayImage, b: &GrayImage) -> f32 {
        let total: u32 = a
            .pixels()
            .zip(b.pixels())
            .map(|(p, q)| u32::from(p[0].abs_diff(q[0])))
            .sum();
        total as f32 / a.pixels().len() as f32
    }

    #[test]
    fn an_upright_crop_undoes_the_tilt() {
        let upright = card(400);
        let boxed = face(120, 120, 160, 160);
        let reference = crop_face(&upright, &boxed, DEFAULT_MARGIN);
        for roll in [-25.0f32, -10.0, 15.0, 30.0] {
            // The card turned clockwise by `roll` about its centre, which is the box's.
            let tilted = imageproc::geometric_transformations::rotate_about_center(
                &upright,
                roll.to_radians(),
                Interpolation::Bilinear,
                Border::Constant(Luma([60])),
            );
            let plain =
                mean_abs_difference(&crop_face(&tilted, &boxed, DEFAULT_MARGIN), &reference);
            let turned = crop_face_upright(&tilted, &boxed, DEFAULT_MARGIN, roll);
            let back = mean_abs_difference(&turned, &reference);
            let wrong_way = mean_abs_difference(
                &crop_face_upright(&tilted, &boxed, DEFAULT_MARGIN, -roll),
                &reference,
            );
            assert!(
                back < 3.0,
                "roll {roll}: {back} grey levels from the upright crop"
            );
            assert!(
                plain > 3.0 * back,
                "roll {roll}: tilted {plain}, turned {back}"
            );
            assert!(
                wrong_way > plain,
                "roll {roll}: wrong way {wrong_way}, tilted {plain}"
            );
        }
    }

    #[test]
    fn an_upright_crop_without_roll_is_the_plain_crop() {
        let image = card(200);
        let boxed = face(30, 40, 100, 90);
        for roll in [0.0, f32::NAN, f32::INFINITY] {
            assert_eq!(
                crop_face_upright(&image, &boxed, 0.1, roll),
                crop_face(&image, &boxed, 0.1)
            );
        }
        // Tiny, empty and outside boxes still give well-formed crops.
        for b in [
            face(0, 0, 1, 1),
            face(199, 199, 1, 1),
            face(500, 500, 10, 10),
        ] {
            assert_eq!(
                crop_face_upright(&image, &b, 0.5, 12.0).dimensions(),
                (FER_SIZE, FER_SIZE)
            );
        }
        assert_eq!(
            crop_face_upright(&GrayImage::new(0, 0), &boxed, 0.1, 12.0).dimensions(),
            (FER_SIZE, FER_SIZE)
        );
        assert_eq!(
            crop_square_upright(&image, &boxed, 0.1, 12.0, 0).dimensions(),
            (0, 0)
        );
    }

    #[test]
    fn degenerate_inputs_give_well_formed_crops() {
        assert_eq!(
            crop_face(&GrayImage::new(0, 0), &face(0, 0, 10, 10), 0.2).dimensions(),
            (FER_SIZE, FER_SIZE)
        );
        let image = GrayImage::from_pixel(5, 5, Luma([77]));
        let crop = crop_face(&image, &face(2, 2, 0, 0), 0.2);
        assert!(crop.pixels().all(|p| p[0] == 77));
        assert_eq!(
            crop_square(&image, &face(0, 0, 5, 5), 0.2, 0).dimensions(),
            (0, 0)
        );
    }
}
