//! The individual transforms: each maps one 48x48 grey image to another with a given RNG.

use image::{GrayImage, Luma};
use imageproc::geometric_transformations::{Border, Interpolation, Projection, warp_into};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use crate::Error;

/// What shows where a geometric transform uncovers the outside of the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fill {
    /// A constant grey level (torchvision's `fill`; 0 is black).
    Constant { value: u8 },
    /// The nearest edge pixel.
    Replicate,
}

impl Fill {
    fn border(self) -> Border<Luma<u8>> {
        match self {
            Fill::Constant { value } => Border::Constant(Luma([value])),
            Fill::Replicate => Border::Replicate,
        }
    }
}

impl Default for Fill {
    fn default() -> Self {
        Fill::Constant { value: 0 }
    }
}

/// What random erasing paints into its rectangle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Erase {
    /// Uniform random grey levels (torchvision's `value='random'`).
    Random,
    /// One grey level.
    Constant { value: u8 },
}

/// One augmentation step. Probabilities are in 0..=1, angles in degrees, sizes in pixels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Transform {
    /// Mirror left-right with probability `p` (torchvision `RandomHorizontalFlip(p)`).
    HorizontalFlip { p: f32 },
    /// Rotate about the centre by a uniform angle in `[-degrees, degrees]`, bilinear
    /// (torchvision `RandomRotation(degrees)`; positive angles turn counter-clockwise).
    Rotation {
        degrees: f32,
        #[serde(default)]
        fill: Fill,
    },
    /// Brightness and contrast factors drawn uniformly from `[max(0, 1 - x), 1 + x]`, applied
    /// in random order (torchvision `ColorJitter(brightness, contrast)`). Factors 0 do nothing.
    ColorJitter { brightness: f32, contrast: f32 },
    /// Pad by `padding` on every side, then cut a 48x48 window at a random offset.
    RandomCrop {
        padding: u32,
        #[serde(default)]
        fill: Fill,
    },
    /// Cut a window of a random area share in `scale` and aspect ratio in `ratio`
    /// (log-uniform) and resize it to 48x48, bilinear (torchvision `RandomResizedCrop`).
    RandomResizedCrop { scale: [f32; 2], ratio: [f32; 2] },
    /// Rotation by up to `degrees`, zoom in `scale`, shift by up to `translate` of the side.
    Affine {
        degrees: f32,
        translate: f32,
        scale: [f32; 2],
        #[serde(default)]
        fill: Fill,
    },
    /// With probability `p`, paint a rectangle of area share in `scale` and aspect ratio in
    /// `ratio` (torchvision `RandomErasing`).
    RandomErasing {
        p: f32,
        scale: [f32; 2],
        ratio: [f32; 2],
        value: Erase,
    },
    /// With probability `p`, add Gaussian noise of standard deviation `std` grey levels.
    GaussianNoise { p: f32, std: f32 },
    /// With probability `p`, a Gaussian blur of standard deviation drawn uniformly from
    /// `sigma` pixels (an out-of-focus or moving face).
    GaussianBlur { p: f32, sigma: [f32; 2] },
    /// With probability `p`, down to a side drawn uniformly from `side` pixels (area
    /// average) and back up to 48 (bilinear): a face that filled few pixels of its photo.
    Downscale { p: f32, side: [u32; 2] },
}

/// Side of the images the transforms work on.
pub(crate) const SIDE: u32 = fer_data::IMAGE_SIDE as u32;
const CENTRE: f32 = (SIDE as f32 - 1.0) / 2.0;

impl Transform {
    /// The transform's name in configs (`horizontal_flip`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Transform::HorizontalFlip { .. } => "horizontal_flip",
            Transform::Rotation { .. } => "rotation",
            Transform::ColorJitter { .. } => "color_jitter",
            Transform::RandomCrop { .. } => "random_crop",
            Transform::RandomResizedCrop { .. } => "random_resized_crop",
            Transform::Affine { .. } => "affine",
            Transform::RandomErasing { .. } => "random_erasing",
            Transform::GaussianNoise { .. } => "gaussian_noise",
            Transform::GaussianBlur { .. } => "gaussian_blur",
            Transform::Downscale { .. } => "downscale",
        }
    }

    /// Checks the parameters, so a bad config fails when it is loaded, not mid-training.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |message: String| Error::Invalid {
            transform: self.name(),
            message,
        };
        let probability = |p: f32| {
            if (0.0..=1.0).contains(&p) {
                Ok(())
            } else {
                Err(invalid(format!("p must be in 0..1, found {p}")))
            }
        };
        let range = |what: &str, [lo, hi]: [f32; 2], min: f32| {
            if lo.is_finite() && hi.is_finite() && min <= lo && lo <= hi {
                Ok(())
            } else {
                Err(invalid(format!(
                    "{what} must be [lo, hi] with {min} <= lo <= hi, found [{lo}, {hi}]"
                )))
            }
        };
        let non_negative = |what: &str, x: f32| {
            if x.is_finite() && x >= 0.0 {
                Ok(())
            } else {
                Err(invalid(format!(
                    "{what} must be finite and >= 0, found {x}"
                )))
            }
        };
        match *self {
            Transform::HorizontalFlip { p } => probability(p),
            Transform::Rotation { degrees, .. } => non_negative("degrees", degrees),
            Transform::ColorJitter {
                brightness,
                contrast,
            } => non_negative("brightness", brightness).and(non_negative("contrast", contrast)),
            Transform::RandomCrop { padding, .. } => {
                if padding <= SIDE {
                    Ok(())
                } else {
                    Err(invalid(format!(
                        "padding must be <= {SIDE}, found {padding}"
                    )))
                }
            }
            Transform::RandomResizedCrop { scale, ratio } => {
                range("scale", scale, f32::MIN_POSITIVE)?;
                range("ratio", ratio, f32::MIN_POSITIVE)?;
                if scale[1] <= 1.0 {
                    Ok(())
                } else {
                    Err(invalid("scale must not exceed 1".into()))
                }
            }
            Transform::Affine {
                degrees,
                translate,
                scale,
                ..
            } => {
                non_negative("degrees", degrees)?;
                non_negative("translate", translate)?;
                range("scale", scale, f32::MIN_POSITIVE)
            }
            Transform::RandomErasing {
                p, scale, ratio, ..
            } => {
                probability(p)?;
                range("scale", scale, 0.0)?;
                range("ratio", ratio, f32::MIN_POSITIVE)
            }
            Transform::GaussianNoise { p, std } => probability(p).and(non_negative("std", std)),
            Transform::GaussianBlur { p, sigma } => {
                probability(p)?;
                range("sigma", sigma, 0.01)
            }
            Transform::Downscale { p, side } => {
                probability(p)?;
                let [lo, hi] = side;
                if 2 <= lo && lo <= hi && hi <= SIDE {
                    Ok(())
                } else {
                    Err(invalid(format!(
                        "side must be [lo, hi] with 2 <= lo <= hi <= {SIDE}, found [{lo}, {hi}]"
                    )))
                }
            }
        }
    }

    /// Applies the transform to `image` in place; `scratch` is a 48x48 work buffer.
    pub(crate) fn apply(
        &self,
        image: &mut GrayImage,
        scratch: &mut GrayImage,
        rng: &mut ChaCha8Rng,
    ) {
        match *self {
            Transform::HorizontalFlip { p } => {
                if rng.random::<f32>() < p {
                    image::imageops::flip_horizontal_in_place(image);
                }
            }
            Transform::Rotation { degrees, fill } => {
                let angle = uniform(rng, -degrees, degrees);
                if angle != 0.0 {
                    warp_in_place(image, scratch, about_centre(rotation(angle)), fill);
                }
            }
            Transform::ColorJitter {
                brightness,
                contrast,
            } => color_jitter(image, rng, brightness, contrast),
            Transform::RandomCrop { padding, fill } => {
                let pad = padding as i32;
                let dx = rng.random_range(-pad..=pad);
                let dy = rng.random_range(-pad..=pad);
                if (dx, dy) != (0, 0) {
                    let shift = Projection::translate(-dx as f32, -dy as f32);
                    warp_in_place(image, scratch, shift, fill);
                }
            }
            Transform::RandomResizedCrop { scale, ratio } => {
                let (w, h) = erase_or_crop_size(rng, scale, ratio, 10).unwrap_or((SIDE, SIDE));
                let x = rng.random_range(0..=SIDE - w) as f32;
                let y = rng.random_range(0..=SIDE - h) as f32;
                // Map the window [x, x + w) x [y, y + h) onto the whole 48x48 output.
                let sx = SIDE as f32 / w as f32;
                let sy = SIDE as f32 / h as f32;
                let projection = Projection::translate(0.5 * (sx - 1.0), 0.5 * (sy - 1.0))
                    * Projection::scale(sx, sy)
                    * Projection::translate(-x, -y);
                warp_in_place(image, scratch, projection, Fill::Replicate);
            }
            Transform::Affine {
                degrees,
                translate,
                scale,
                fill,
            } => {
                let angle = uniform(rng, -degrees, degrees);
                let zoom = uniform(rng, scale[0], scale[1]);
                let max_shift = translate * SIDE as f32;
                let tx = uniform(rng, -max_shift, max_shift).round();
                let ty = uniform(rng, -max_shift, max_shift).round();
                let projection = Projection::translate(tx, ty)
                    * about_centre(rotation(angle) * Projection::scale(zoom, zoom));
                warp_in_place(image, scratch, projection, fill);
            }
            Transform::RandomErasing {
                p,
                scale,
                ratio,
                value,
            } => {
                if rng.random::<f32>() < p {
                    random_erasing(image, rng, scale, ratio, value);
                }
            }
            Transform::GaussianNoise { p, std } => {
                if rng.random::<f32>() < p && std > 0.0 {
                    let noise = Normal::new(0.0f32, std).expect("std validated");
                    add_noise(image, &noise, rng);
                }
            }
            Transform::GaussianBlur { p, sigma } => {
                if rng.random::<f32>() < p {
                    let sigma = uniform(rng, sigma[0], sigma[1]);
                    *image = imageproc::filter::gaussian_blur_f32(image, sigma);
                }
            }
            Transform::Downscale { p, side } => {
                if rng.random::<f32>() < p {
                    let side = rng.random_range(side[0]..=side[1]);
                    if side < SIDE {
                        *image = downscale(image, side);
                    }
                }
            }
        }
    }
}

/// `noise` drawn from `rng` added to every grey level, rounded and clamped to 0..=255.
pub(crate) fn add_noise(image: &mut GrayImage, noise: &Normal<f32>, rng: &mut ChaCha8Rng) {
    for pixel in image.iter_mut() {
        *pixel = (f32::from(*pixel) + noise.sample(rng))
            .round()
            .clamp(0.0, 255.0) as u8;
    }
}

/// `image` down to `side` x `side` (area average) and back up to 48 x 48 (bilinear).
pub(crate) fn downscale(image: &GrayImage, side: u32) -> GrayImage {
    use image::imageops::{FilterType, resize};
    let small = resize(image, side, side, FilterType::Triangle);
    resize(&small, SIDE, SIDE, FilterType::Triangle)
}

/// A uniform draw in `[lo, hi]` (just `lo` when the range is empty).
fn uniform(rng: &mut ChaCha8Rng, lo: f32, hi: f32) -> f32 {
    if hi > lo {
        rng.random_range(lo..=hi)
    } else {
        lo
    }
}

/// A rotation by `degrees` counter-clockwise on screen (y points down), like torchvision.
///
/// Sine and cosine are computed in f64 and snapped at multiples of 90 degrees, so quarter
/// turns move pixels exactly instead of blending them with the border by a rounding error.
fn rotation(degrees: f32) -> Projection {
    let snap = |v: f64| {
        if (v - v.round()).abs() < 1e-9 {
            v.round()
        } else {
            v
        }
    };
    let (sin, cos) = (-f64::from(degrees)).to_radians().sin_cos();
    let (s, c) = (snap(sin) as f32, snap(cos) as f32);
    Projection::from_matrix([c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0])
        .expect("rotations are invertible")
}

/// `projection` applied about the image centre (23.5, 23.5), so pixel centres map exactly.
fn about_centre(projection: Projection) -> Projection {
    Projection::translate(CENTRE, CENTRE) * projection * Projection::translate(-CENTRE, -CENTRE)
}

fn warp_in_place(
    image: &mut GrayImage,
    scratch: &mut GrayImage,
    projection: Projection,
    fill: Fill,
) {
    warp_into(
        image,
        projection,
        Interpolation::Bilinear,
        fill.border(),
        scratch,
    );
    std::mem::swap(image, scratch);
}

fn color_jitter(image: &mut GrayImage, rng: &mut ChaCha8Rng, brightness: f32, contrast: f32) {
    let factor =
        |rng: &mut ChaCha8Rng, x: f32| (x > 0.0).then(|| uniform(rng, (1.0 - x).max(0.0), 1.0 + x));
    let brightness = factor(rng, brightness);
    let contrast = factor(rng, contrast);
    let brightness_first = rng.random::<bool>();
    let steps = if brightness_first {
        [(brightness, true), (contrast, false)]
    } else {
        [(contrast, false), (brightness, true)]
    };
    for (factor, is_brightness) in steps {
        match (factor, is_brightness) {
            (Some(b), true) => adjust_brightness(image, b),
            (Some(c), false) => adjust_contrast(image, c),
            (None, _) => {}
        }
    }
}

/// Multiplies every grey level by `factor` (torchvision `adjust_brightness`); 1 changes nothing.
pub fn adjust_brightness(image: &mut GrayImage, factor: f32) {
    for p in image.iter_mut() {
        *p = (f32::from(*p) * factor).round().clamp(0.0, 255.0) as u8;
    }
}

/// Scales the distance of every grey level from the image mean by `factor`
/// (torchvision `adjust_contrast`); 1 changes nothing.
pub fn adjust_contrast(image: &mut GrayImage, factor: f32) {
    let mean = image.iter().map(|&p| f32::from(p)).sum::<f32>() / image.len().max(1) as f32;
    for p in image.iter_mut() {
        *p = ((f32::from(*p) - mean) * factor + mean)
            .round()
            .clamp(0.0, 255.0) as u8;
    }
}

/// Rotates a 48x48 image about its centre by `degrees` counter-clockwise, bilinear.
pub fn rotate(image: &GrayImage, degrees: f32, fill: Fill) -> GrayImage {
    warp_about_centre(image, rotation(degrees), fill)
}

/// Scales a 48x48 image about its centre by `factor`, bilinear: above 1 the face fills more
/// of the frame (a tighter crop), below 1 less (a looser crop, its new border from `fill`).
pub fn zoom(image: &GrayImage, factor: f32, fill: Fill) -> GrayImage {
    warp_about_centre(image, Projection::scale(factor, factor), fill)
}

/// `image` warped by `projection` about its centre into a new image of the same size.
fn warp_about_centre(image: &GrayImage, projection: Projection, fill: Fill) -> GrayImage {
    let mut out = GrayImage::new(image.width(), image.height());
    warp_into(
        image,
        about_centre(projection),
        Interpolation::Bilinear,
        fill.border(),
        &mut out,
    );
    out
}

/// Width and height of a rectangle with area share in `scale` and log-uniform aspect ratio in
/// `ratio` that fits in the image, after at most `attempts` draws (torchvision's recipe).
fn erase_or_crop_size(
    rng: &mut ChaCha8Rng,
    scale: [f32; 2],
    ratio: [f32; 2],
    attempts: usize,
) -> Option<(u32, u32)> {
    let area = (SIDE * SIDE) as f32;
    for _ in 0..attempts {
        let target = area * uniform(rng, scale[0], scale[1]);
        let aspect = uniform(rng, ratio[0].ln(), ratio[1].ln()).exp();
        let w = (target * aspect).sqrt().round() as u32;
        let h = (target / aspect).sqrt().round() as u32;
        if (1..=SIDE).contains(&w) && (1..=SIDE).contains(&h) {
            return Some((w, h));
        }
    }
    None
}

fn random_erasing(
    image: &mut GrayImage,
    rng: &mut ChaCha8Rng,
    scale: [f32; 2],
    ratio: [f32; 2],
    value: Erase,
) {
    let Some((w, h)) = erase_or_crop_size(rng, scale, ratio, 10) else {
        return;
    };
    let x0 = rng.random_range(0..=SIDE - w);
    let y0 = rng.random_range(0..=SIDE - h);
    for y in y0..y0 + h {
        for x in x0..x0 + w {
            let v = match value {
                Erase::Random => rng.random::<u8>(),
                Erase::Constant { value } => value,
            };
            image.put_pixel(x, y, Luma([v]));
        }
    }
}
