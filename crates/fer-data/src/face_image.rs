//! Faces from image files: any format the `image` crate reads, turned into a 48x48 grey face.
//!
//! FER2013 faces are square, grey, 48x48 and roughly centred on the face. A photo of a face
//! that a user hands us is brought to the same form the same way every time: decoded, converted
//! to luma, cropped to its centred square (the larger side is trimmed equally on both ends) and
//! resized to 48x48 with a triangle (bilinear, area-aware when shrinking) filter.

use std::io::Cursor;
use std::path::Path;

use image::imageops::FilterType;
use image::{DynamicImage, GrayImage};

use crate::{Error, IMAGE_PIXELS, IMAGE_SIDE, Result};

/// Extensions of the image formats this build can decode (lower case, without the dot).
pub const IMAGE_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "bmp", "gif", "webp", "tif", "tiff", "pgm", "pbm", "ppm", "pnm",
];

/// True when `path` has the extension of a format [`load_image`] decodes.
pub fn is_image_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// How large an image [`load_image`] and [`decode_image`] agree to decode. The header's size
/// is checked before any pixel is decoded, so a small file that claims (or really holds) a
/// huge image, a decompression bomb, is refused without allocating it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    /// Most pixels (width x height) of an image.
    pub max_pixels: u64,
    /// Most bytes the decoder may allocate (the `image` crate's `Limits::max_alloc`).
    pub max_alloc: u64,
}

impl Default for ImageLimits {
    /// 128 megapixels (a 200 MP phone photo needs more), 2 GiB for the decoder.
    fn default() -> Self {
        ImageLimits {
            max_pixels: 128_000_000,
            max_alloc: 2 << 30,
        }
    }
}

/// Decodes an image file (the format is taken from the content, not the extension) within
/// the default [`ImageLimits`] and turns it upright as its Exif orientation says (phone
/// photos are often stored sideways).
pub fn load_image(path: &Path) -> Result<DynamicImage> {
    load_image_within(path, &ImageLimits::default())
}

/// [`load_image`] within `limits`.
pub fn load_image_within(path: &Path, limits: &ImageLimits) -> Result<DynamicImage> {
    let size = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    if size > limits.max_alloc {
        return Err(Error::ImageTooLarge {
            path: path.to_path_buf(),
            message: format!(
                "the file is {size} bytes, more than the {} bytes this program decodes",
                limits.max_alloc
            ),
        });
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode_image(&bytes, path, limits)
}

/// Decodes an image held in memory (an upload, say) like [`load_image_within`]; errors name
/// it `name`.
pub fn decode_image(bytes: &[u8], name: &Path, limits: &ImageLimits) -> Result<DynamicImage> {
    let reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::io(name, e))?;
    if reader.format() == Some(image::ImageFormat::Jpeg) && !jpeg_is_complete(bytes) {
        return Err(Error::Image {
            path: name.to_path_buf(),
            message: "the JPEG is truncated (its last scan has no end-of-image marker)".into(),
        });
    }
    decode(reader, name, limits)
}

/// Whether a JPEG's last scan is followed by the end-of-image marker. A truncated file (a cut
/// download, an interrupted upload) has none, and the decoder would fill the missing rows with
/// grey instead of failing. In entropy-coded data 0xFF is always followed by 0x00 or a restart
/// marker, so 0xFF 0xD9 after the last start-of-scan (0xFF 0xDA) can only be the end.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    bytes
        .windows(2)
        .rposition(|pair| pair == [0xFF, 0xDA])
        .is_some_and(|scan| bytes[scan..].windows(2).any(|pair| pair == [0xFF, 0xD9]))
}

/// Decodes from a reader whose format has been guessed.
fn decode(
    mut reader: image::ImageReader<Cursor<&[u8]>>,
    path: &Path,
    limits: &ImageLimits,
) -> Result<DynamicImage> {
    use image::ImageDecoder;

    let error = |message: String| Error::Image {
        path: path.to_path_buf(),
        message,
    };
    if reader.format().is_none() {
        return Err(error(
            "not an image in a format this build reads (PNG, JPEG, BMP, GIF, WebP, TIFF, PNM)"
                .into(),
        ));
    }
    let mut decoder_limits = image::Limits::default();
    decoder_limits.max_alloc = Some(limits.max_alloc);
    reader.limits(decoder_limits);
    let decode_error = |e: image::ImageError| match e {
        image::ImageError::Limits(_) => Error::ImageTooLarge {
            path: path.to_path_buf(),
            message: format!("cannot decode image: {e}"),
        },
        e => error(format!("cannot decode image: {e}")),
    };
    let mut decoder = reader.into_decoder().map_err(decode_error)?;
    let (width, height) = decoder.dimensions();
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(Error::ImageTooLarge {
            path: path.to_path_buf(),
            message: format!(
                "the image is {width}x{height} ({:.0} megapixels), more than the {:.0} megapixels \
             this program decodes",
                pixels as f64 / 1e6,
                limits.max_pixels as f64 / 1e6
            ),
        });
    }
    // Unreadable Exif is no reason to refuse the pixels.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(decode_error)?;
    image.apply_orientation(orientation);
    if image.width() == 0 || image.height() == 0 {
        return Err(error("image has no pixels".into()));
    }
    Ok(image)
}

/// The centred square of a grey image, resized to 48x48, as FER2013 row-major pixels.
pub fn face_pixels(image: &GrayImage) -> Vec<u8> {
    let (width, height) = image.dimensions();
    let side = width.min(height).max(1);
    let x = (width - side.min(width)) / 2;
    let y = (height - side.min(height)) / 2;
    let square = image::imageops::crop_imm(image, x, y, side, side).to_image();
    let face = if side == IMAGE_SIDE as u32 {
        square
    } else {
        image::imageops::resize(
            &square,
            IMAGE_SIDE as u32,
            IMAGE_SIDE as u32,
            FilterType::Triangle,
        )
    };
    let pixels = face.into_raw();
    debug_assert_eq!(pixels.len(), IMAGE_PIXELS);
    pixels
}

/// Loads an image file as one 48x48 grey face (see the module docs for how).
pub fn load_face(path: &Path) -> Result<Vec<u8>> {
    Ok(face_pixels(&load_image(path)?.to_luma8()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Luma;

    #[test]
    fn a_truncated_jpeg_is_an_error_and_a_complete_one_decodes() {
        let image = GrayImage::from_fn(64, 48, |x, y| Luma([(x * 3 + y * 2) as u8]));
        let mut jpeg = Cursor::new(Vec::new());
        image.write_to(&mut jpeg, image::ImageFormat::Jpeg).unwrap();
        let jpeg = jpeg.into_inner();
        let limits = ImageLimits::default();
        let decoded = decode_image(&jpeg, Path::new("whole.jpg"), &limits).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (64, 48));
        let error = decode_image(&jpeg[..jpeg.len() / 2], Path::new("cut.jpg"), &limits)
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("cut.jpg: the JPEG is truncated"),
            "{error}"
        );
    }

    #[test]
    fn a_48x48_grey_image_passes_through_unchanged() {
        let side = IMAGE_SIDE as u32;
        let image = GrayImage::from_fn(side, side, |x, y| Luma([(x * 5 + y) as u8]));
        assert_eq!(face_pixels(&image), image.as_raw().clone());
    }

    #[test]
    fn a_wide_image_is_cropped_to_its_centre_square() {
        // 144x96: the centred 96x96 square is white, the side bands black.
        let image = GrayImage::from_fn(144, 96, |x, _| {
            Luma([if (24..120).contains(&x) { 255 } else { 0 }])
        });
        let face = face_pixels(&image);
        assert_eq!(face.len(), IMAGE_PIXELS);
        assert!(face.iter().all(|&p| p == 255), "side bands leaked in");
    }

    #[test]
    fn shrinking_keeps_a_left_right_gradient() {
        let image = GrayImage::from_fn(480, 480, |x, _| Luma([(x / 2).min(255) as u8]));
        let face = face_pixels(&image);
        let row: Vec<u8> = face[..IMAGE_SIDE].to_vec();
        assert!(row.windows(2).all(|w| w[0] <= w[1]), "{row:?}");
        assert!(row[0] < 10 && row[IMAGE_SIDE - 1] > 225, "{row:?}");
    }

    #[test]
    fn unreadable_files_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("face.png");
        std::fs::write(&bad, b"this is not a png").unwrap();
        let message = load_face(&bad).unwrap_err().to_string();
        assert!(message.contains("face.png"), "{message}");
        let truncated = dir.path().join("cut.png");
        let mut bytes = Vec::new();
        GrayImage::from_pixel(20, 20, Luma([9]))
            .write_to(
                &mut std::io::Cursor::new(&mut bytes),
                image::ImageFormat::Png,
            )
            .unwrap();
        std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
        let message = load_face(&truncated).unwrap_err().to_string();
        assert!(
            message.contains("cut.png") && message.contains("decode"),
            "{message}"
        );
        let missing = load_face(&dir.path().join("missing.jpg"))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("missing.jpg"), "{missing}");
    }

    /// Peak resident memory of this process so far, in bytes (Linux).
    fn peak_resident_bytes() -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    #[test]
    fn a_decompression_bomb_is_refused_before_its_pixels_are_allocated() {
        // 60000x60000 grey: 3.5 MB on disk, every one of its 3.6 GB of rows in the stream.
        let bomb = crate::synthetic::decompression_bomb_png(60_000);
        assert!(bomb.len() < 8 << 20, "{} bytes", bomb.len());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bomb.png");
        std::fs::write(&path, &bomb).unwrap();
        let before = peak_resident_bytes();
        let message = load_image(&path).unwrap_err().to_string();
        assert!(
            message.contains("bomb.png") && message.contains("60000x60000"),
            "{message}"
        );
        let from_memory = decode_image(&bomb, Path::new("upload"), &ImageLimits::default())
            .unwrap_err()
            .to_string();
        assert!(from_memory.starts_with("upload:"), "{from_memory}");
        if let (Some(before), Some(after)) = (before, peak_resident_bytes()) {
            assert!(
                after - before < 256 << 20,
                "decoding grew the peak by {} MB",
                (after - before) >> 20
            );
        }
        // The same image within limits that allow it decodes (a small one, to stay fast).
        let small = crate::synthetic::decompression_bomb_png(300);
        let limits = ImageLimits {
            max_pixels: 300 * 300,
            ..ImageLimits::default()
        };
        let image = decode_image(&small, Path::new("small"), &limits).unwrap();
        assert_eq!((image.width(), image.height()), (300, 300));
        let tighter = ImageLimits {
            max_pixels: 300 * 300 - 1,
            ..limits
        };
        assert!(decode_image(&small, Path::new("small"), &tighter).is_err());
    }

    #[test]
    fn colour_jpeg_decodes_to_a_grey_face() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("colour.jpg");
        image::RgbImage::from_pixel(64, 40, image::Rgb([200, 30, 30]))
            .save(&path)
            .unwrap();
        let face = load_face(&path).unwrap();
        assert_eq!(face.len(), IMAGE_PIXELS);
        let expected = image::Rgb([200u8, 30, 30]);
        let grey = DynamicImage::ImageRgb8(image::RgbImage::from_pixel(1, 1, expected))
            .to_luma8()
            .get_pixel(0, 0)[0];
        assert!(
            face.iter().all(|&p| p.abs_diff(grey) <= 3),
            "{grey} vs {:?}",
            &face[..4]
        );
    }
}
