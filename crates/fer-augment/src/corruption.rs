//! Fixed degradations of face images (darker, blurred, noisy, low-resolution, rotated,
//! JPEG-compressed, cropped tighter or looser), for measuring how a model's accuracy holds
//! on faces unlike FER2013's: `fer eval --corruption blur=1.5`. Unlike a [`Transform`](crate::Transform), a corruption
//! has one level and no randomness but its noise, seeded by the image's index, so an
//! evaluation under it is repeatable.

use std::fmt;
use std::io::Cursor;
use std::str::FromStr;

use fer_data::{Dataset, IMAGE_PIXELS, Split};
use image::codecs::jpeg::JpegEncoder;
use image::{GrayImage, ImageFormat};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::Normal;
use rayon::prelude::*;

use crate::Error;
use crate::transform::{
    Fill, SIDE, add_noise, adjust_brightness, adjust_contrast, downscale, rotate, zoom,
};

/// One degradation at one level. The text form is `KIND=LEVEL` ([`Corruption::KINDS`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Corruption {
    /// Every grey level times this factor (0.5: half as bright).
    Brightness(f32),
    /// Distances from the image mean times this factor (0.5: half the contrast).
    Contrast(f32),
    /// Gaussian blur of this standard deviation in pixels.
    Blur(f32),
    /// Gaussian noise of this standard deviation in grey levels.
    Noise(f32),
    /// Down to this side in pixels (area average) and back up to 48 (bilinear): a face
    /// that filled this many pixels of the photo.
    LowResolution(u32),
    /// Rotation about the centre by this many degrees (counter-clockwise), edges replicated.
    Rotation(f32),
    /// JPEG compression at this quality (1-100).
    Jpeg(u8),
    /// Scaled about the centre by this factor, edges replicated: another dataset's crop
    /// convention (1.25: the face fills a crop 20% tighter than FER2013's; 0.8: a crop 25%
    /// looser, its new border smeared from the edge rather than showing hair and background).
    Zoom(f32),
}

impl Corruption {
    /// The kinds and what their level means, as the text form spells them.
    pub const KINDS: &'static str = "brightness=FACTOR, contrast=FACTOR, blur=SIGMA_PIXELS, \
         noise=STD_GREY_LEVELS, low-res=SIDE_PIXELS, rotation=DEGREES, jpeg=QUALITY, \
         zoom=FACTOR";

    /// The degraded copy of one 48x48 image; `index` seeds the noise.
    pub fn apply(&self, image: &[u8], index: u64) -> Result<Vec<u8>, Error> {
        if image.len() != IMAGE_PIXELS {
            return Err(Error::ImageSize {
                expected: IMAGE_PIXELS,
                found: image.len(),
            });
        }
        let mut face = GrayImage::from_raw(SIDE, SIDE, image.to_vec())
            .expect("the length was checked against 48x48");
        let face = match *self {
            Corruption::Brightness(factor) => {
                adjust_brightness(&mut face, factor);
                face
            }
            Corruption::Contrast(factor) => {
                adjust_contrast(&mut face, factor);
                face
            }
            Corruption::Blur(sigma) => imageproc::filter::gaussian_blur_f32(&face, sigma),
            Corruption::Noise(std) => {
                let mut rng = ChaCha8Rng::seed_from_u64(index);
                let noise = Normal::new(0.0f32, std).map_err(|e| self.invalid(e.to_string()))?;
                add_noise(&mut face, &noise, &mut rng);
                face
            }
            Corruption::LowResolution(side) => downscale(&face, side),
            Corruption::Rotation(degrees) => rotate(&face, degrees, Fill::Replicate),
            Corruption::Zoom(factor) => zoom(&face, factor, Fill::Replicate),
            Corruption::Jpeg(quality) => {
                let mut bytes = Vec::new();
                JpegEncoder::new_with_quality(&mut bytes, quality)
                    .encode_image(&face)
                    .map_err(|e| self.invalid(e.to_string()))?;
                image::load(Cursor::new(bytes), ImageFormat::Jpeg)
                    .map_err(|e| self.invalid(e.to_string()))?
                    .into_luma8()
            }
        };
        Ok(face.into_raw())
    }

    /// A copy of `dataset` with the images of `split` degraded (in parallel; image i's noise
    /// seeded by its position i in `dataset`) and every other image, label, split and row
    /// as they were.
    pub fn apply_to_split(&self, dataset: &Dataset, split: Split) -> Result<Dataset, Error> {
        let mut pixels = dataset.pixels().to_vec();
        pixels
            .par_chunks_mut(IMAGE_PIXELS)
            .zip(dataset.splits())
            .enumerate()
            .filter(|(_, (_, s))| **s == split)
            .try_for_each(|(i, (image, _))| {
                let degraded = self.apply(image, i as u64)?;
                image.copy_from_slice(&degraded);
                Ok(())
            })?;
        Dataset::from_parts(
            pixels,
            dataset.labels().to_vec(),
            dataset.splits().to_vec(),
            dataset.rows().to_vec(),
        )
        .map_err(|e| self.invalid(e.to_string()))
    }

    fn kind(&self) -> &'static str {
        match self {
            Corruption::Brightness(_) => "brightness",
            Corruption::Contrast(_) => "contrast",
            Corruption::Blur(_) => "blur",
            Corruption::Noise(_) => "noise",
            Corruption::LowResolution(_) => "low-res",
            Corruption::Rotation(_) => "rotation",
            Corruption::Jpeg(_) => "jpeg",
            Corruption::Zoom(_) => "zoom",
        }
    }

    fn invalid(&self, message: String) -> Error {
        Error::Invalid {
            transform: self.kind(),
            message,
        }
    }
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Corruption::Brightness(x)
            | Corruption::Contrast(x)
            | Corruption::Blur(x)
            | Corruption::Noise(x)
            | Corruption::Rotation(x)
            | Corruption::Zoom(x) => write!(f, "{}={x}", self.kind()),
            Corruption::LowResolution(side) => write!(f, "{}={side}", self.kind()),
            Corruption::Jpeg(quality) => write!(f, "{}={quality}", self.kind()),
        }
    }
}

impl FromStr for Corruption {
    type Err = String;

    /// `KIND=LEVEL`, e.g. `blur=1.5`; a level outside its kind's range is refused.
    fn from_str(text: &str) -> Result<Self, String> {
        let (kind, level) = text
            .split_once('=')
            .ok_or_else(|| format!("{text:?}: expected KIND=LEVEL, one of {}", Self::KINDS))?;
        let number = |low: f32, high: f32| -> Result<f32, String> {
            let value: f32 = level
                .trim()
                .parse()
                .map_err(|_| format!("{text:?}: {level:?} is not a number"))?;
            if value.is_finite() && (low..=high).contains(&value) {
                Ok(value)
            } else {
                Err(format!(
                    "{text:?}: the {kind} level must be in {low}..={high}"
                ))
            }
        };
        let whole = |low: f32, high: f32| -> Result<f32, String> {
            let value = number(low, high)?;
            if value.fract() == 0.0 {
                Ok(value)
            } else {
                Err(format!("{text:?}: the {kind} level must be a whole number"))
            }
        };
        Ok(match kind.trim() {
            "brightness" => Corruption::Brightness(number(0.0, 10.0)?),
            "contrast" => Corruption::Contrast(number(0.0, 10.0)?),
            "blur" => Corruption::Blur(number(0.01, 24.0)?),
            "noise" => Corruption::Noise(number(0.0, 255.0)?),
            "low-res" => Corruption::LowResolution(whole(2.0, 48.0)? as u32),
            "rotation" => Corruption::Rotation(number(-180.0, 180.0)?),
            "jpeg" => Corruption::Jpeg(whole(1.0, 100.0)? as u8),
            "zoom" => Corruption::Zoom(number(0.5, 2.0)?),
            other => {
                return Err(format!(
                    "{text:?}: unknown corruption {other:?}, expected one of {}",
                    Self::KINDS
                ));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 48x48 face-like test pattern: a gradient with a bright disc.
    fn pattern() -> Vec<u8> {
        (0..IMAGE_PIXELS)
            .map(|i| {
                let (x, y) = ((i % 48) as f32, (i / 48) as f32);
                let disc = if (x - 24.0).powi(2) + (y - 20.0).powi(2) < 100.0 {
                    80.0
                } else {
                    0.0
                };
                (60.0 + 2.0 * x + disc) as u8
            })
            .collect()
    }

    fn mean(image: &[u8]) -> f32 {
        image.iter().map(|&p| f32::from(p)).sum::<f32>() / image.len() as f32
    }

    /// Mean absolute difference between neighbouring pixels along rows: detail.
    fn detail(image: &[u8]) -> f32 {
        let diffs: Vec<f32> = image
            .chunks(48)
            .flat_map(|row| {
                row.windows(2)
                    .map(|w| (f32::from(w[0]) - f32::from(w[1])).abs())
            })
            .collect();
        diffs.iter().sum::<f32>() / diffs.len() as f32
    }

    fn parse(text: &str) -> Corruption {
        text.parse().unwrap()
    }

    #[test]
    fn the_text_form_round_trips_and_bad_levels_are_refused_by_name() {
        for text in [
            "brightness=0.5",
            "contrast=1.5",
            "blur=1.5",
            "noise=20",
            "low-res=16",
            "rotation=-15",
            "jpeg=30",
            "zoom=1.25",
        ] {
            assert_eq!(parse(text).to_string(), text);
        }
        for (bad, says) in [
            ("blur", "KIND=LEVEL"),
            ("blurr=1", "unknown corruption \"blurr\""),
            ("blur=x", "not a number"),
            ("blur=0", "0.01..=24"),
            ("low-res=1", "2..=48"),
            ("low-res=16.5", "whole number"),
            ("jpeg=101", "1..=100"),
            ("noise=NaN", "0..=255"),
            ("zoom=3", "0.5..=2"),
        ] {
            let error = bad.parse::<Corruption>().unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    #[test]
    fn each_corruption_changes_the_image_as_its_name_says() {
        let face = pattern();
        let apply = |text: &str| parse(text).apply(&face, 7).unwrap();
        assert!((mean(&apply("brightness=0.5")) - mean(&face) / 2.0).abs() < 1.0);
        let flat = apply("contrast=0.5");
        assert!((mean(&flat) - mean(&face)).abs() < 1.0);
        assert!(detail(&flat) < 0.6 * detail(&face));
        assert!(detail(&apply("blur=2")) < detail(&face));
        assert!(detail(&apply("low-res=12")) < detail(&face));
        assert!(detail(&apply("noise=25")) > 3.0 * detail(&face));
        // The disc (centred at x = 24, y = 20, radius 10) moves off its top pixel (24, 11)
        // under a quarter turn about the image centre.
        let turned = apply("rotation=90");
        let top = 11 * 48 + 24;
        assert!(face[top] > 140, "{}", face[top]);
        assert!(
            turned[top] + 40 < face[top],
            "{} vs {}",
            turned[top],
            face[top]
        );
        // Zoomed in twice, the disc covers (24, 2), dark in the original (18 pixels above the
        // disc's centre); zoomed out twice, it leaves (24, 11).
        let high = 2 * 48 + 24;
        assert!(face[high] < 120, "{}", face[high]);
        let zoomed_in = apply("zoom=2");
        assert!(zoomed_in[high] > 140, "{}", zoomed_in[high]);
        assert!(apply("zoom=0.5")[top] + 40 < face[top]);
        let jpeg = apply("jpeg=5");
        assert!(jpeg != face && jpeg.len() == IMAGE_PIXELS);
        // Gentle levels change little.
        let close = |a: &[u8]| {
            a.iter()
                .zip(&face)
                .map(|(&p, &q)| (i32::from(p) - i32::from(q)).abs())
                .max()
        };
        assert_eq!(close(&apply("brightness=1")), Some(0));
        assert!(close(&apply("jpeg=100")).unwrap() <= 8);
        assert_eq!(close(&apply("low-res=48")), Some(0));
        assert_eq!(close(&apply("zoom=1")), Some(0));
    }

    #[test]
    fn noise_is_seeded_by_the_image_index() {
        let face = pattern();
        let noise = parse("noise=20");
        assert_eq!(
            noise.apply(&face, 3).unwrap(),
            noise.apply(&face, 3).unwrap()
        );
        assert_ne!(
            noise.apply(&face, 3).unwrap(),
            noise.apply(&face, 4).unwrap()
        );
    }

    #[test]
    fn wrong_sizes_and_one_split_of_a_dataset() {
        let error = parse("blur=1").apply(&[0u8; 10], 0).unwrap_err();
        assert!(error.to_string().contains("found 10"), "{error}");
        let data = fer_data::synthetic::generate(&fer_data::synthetic::SyntheticConfig::small(1));
        let dark = parse("brightness=0.5")
            .apply_to_split(&data, Split::PublicTest)
            .unwrap();
        assert_eq!(dark.len(), data.len());
        assert_eq!(dark.labels(), data.labels());
        assert_eq!(dark.splits(), data.splits());
        for i in 0..data.len() {
            if data.splits()[i] == Split::PublicTest {
                assert!(
                    mean(dark.image(i)) < 0.55 * mean(data.image(i)),
                    "image {i}"
                );
            } else {
                assert_eq!(dark.image(i), data.image(i), "image {i}");
            }
        }
    }
}
