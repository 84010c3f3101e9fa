//! Faces from image files: any format the `image` crate reads, turned into a 48x48 grey face.
//!
//! FER2013 faces are square, grey, 48x48 and roughly centred on the face. A photo of a face
//! that a user hands us is brought to the same form the same way every time: decoded, converted
//! to luma (BT.601, a JPEG's own; [`to_grey`]), cropped to its centred square (the larger side is trimmed equally on both ends) and
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
    decode_image(&read_within(path, limits)?, path, limits)
}

/// Loads an image file as grey, the form faces are found and classified in: like
/// [`load_image`] followed by [`to_grey`], but a JPEG's luma is decoded directly, without its
/// colour (about 3.5 times faster on photos, and the same luma, BT.601, that [`to_grey`]
/// computes).
pub fn load_grey_image(path: &Path) -> Result<GrayImage> {
    load_grey_image_within(path, &ImageLimits::default())
}

/// [`load_grey_image`] within `limits`.
pub fn load_grey_image_within(path: &Path, limits: &ImageLimits) -> Result<GrayImage> {
    decode_grey_image(&read_within(path, limits)?, path, limits)
}

/// The bytes of an image file, refused unread when the file alone exceeds `limits`.
fn read_within(path: &Path, limits: &ImageLimits) -> Result<Vec<u8>> {
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
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// A grey copy of `image` with BT.601 luma (`(299 R + 587 G + 114 B) / 1000`, rounded), the
/// luma a JPEG stores and the one [`decode_grey_image`] reads from JPEGs directly, so that a
/// photo gives the same grey whatever format it is saved in. Alpha is ignored.
pub fn to_grey(image: &DynamicImage) -> GrayImage {
    fn luma(rgb: &image::RgbImage) -> GrayImage {
        let (width, height) = rgb.dimensions();
        let grey: Vec<u8> = rgb
            .as_raw()
            .chunks_exact(3)
            .map(|p| {
                let weighted =
                    299 * u32::from(p[0]) + 587 * u32::from(p[1]) + 114 * u32::from(p[2]);
                ((weighted + 500) / 1000) as u8
            })
            .collect();
        GrayImage::from_raw(width, height, grey).expect("one byte per pixel")
    }
    match image {
        DynamicImage::ImageLuma8(grey) => grey.clone(),
        DynamicImage::ImageLumaA8(_)
        | DynamicImage::ImageLuma16(_)
        | DynamicImage::ImageLumaA16(_) => image.to_luma8(),
        DynamicImage::ImageRgb8(rgb) => luma(rgb),
        other => luma(&other.to_rgb8()),
    }
}

/// Decodes an image held in memory as grey, like [`load_grey_image`]; errors name it `name`.
pub fn decode_grey_image(bytes: &[u8], name: &Path, limits: &ImageLimits) -> Result<GrayImage> {
    let reader = guess_format(bytes, name)?;
    if reader.format() == Some(image::ImageFormat::Jpeg)
        && let Some(grey) = decode_jpeg_luma(bytes, name, limits)?
    {
        return Ok(grey);
    }
    Ok(to_grey(&decode(reader, name, limits)?))
}

/// A YCbCr or grey JPEG's luma plane, upright, decoded without its colour; `None` for the
/// other colour models (CMYK, YCCK, RGB), which take the general path.
fn decode_jpeg_luma(bytes: &[u8], name: &Path, limits: &ImageLimits) -> Result<Option<GrayImage>> {
    use zune_core::colorspace::ColorSpace;

    let error = |message: String| Error::Image {
        path: name.to_path_buf(),
        message,
    };
    let options = zune_core::options::DecoderOptions::default()
        .set_strict_mode(false)
        .set_max_width(usize::from(u16::MAX))
        .set_max_height(usize::from(u16::MAX))
        .jpeg_set_out_colorspace(ColorSpace::Luma);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(
        zune_core::bytestream::ZCursor::new(bytes),
        options,
    );
    decoder
        .decode_headers()
        .map_err(|e| error(format!("cannot decode image: {e}")))?;
    if !matches!(
        decoder.input_colorspace(),
        Some(ColorSpace::YCbCr | ColorSpace::Luma)
    ) {
        return Ok(None);
    }
    let (width, height) = decoder.dimensions().expect("headers were decoded");
    let (width, height) = (width as u32, height as u32);
    check_pixels(width, height, name, limits)?;
    let orientation = decoder
        .exif()
        .and_then(|exif| image::metadata::Orientation::from_exif_chunk(exif))
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let pixels = decoder
        .decode()
        .map_err(|e| error(format!("cannot decode image: {e}")))?;
    let grey = GrayImage::from_raw(width, height, pixels)
        .ok_or_else(|| error("the decoder returned fewer pixels than the header says".into()))?;
    if width == 0 || height == 0 {
        return Err(error("image has no pixels".into()));
    }
    let mut image = DynamicImage::ImageLuma8(grey);
    image.apply_orientation(orientation);
    Ok(Some(image.into_luma8()))
}

/// Refuses an image of more pixels than `limits` allow, before it is decoded.
fn check_pixels(width: u32, height: u32, name: &Path, limits: &ImageLimits) -> Result<()> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(Error::ImageTooLarge {
            path: name.to_path_buf(),
            message: format!(
                "the image is {width}x{height} ({:.0} megapixels), more than the {:.0} megapixels \
             this program decodes",
                pixels as f64 / 1e6,
                limits.max_pixels as f64 / 1e6
            ),
        });
    }
    Ok(())
}

/// Decodes an image held in memory (an upload, say) like [`load_image_within`]; errors name
/// it `name`.
pub fn decode_image(bytes: &[u8], name: &Path, limits: &ImageLimits) -> Result<DynamicImage> {
    decode(guess_format(bytes, name)?, name, limits)
}

/// A reader of `bytes` with its format guessed from the content; a JPEG without its
/// end-of-image marker is refused here, before any decoder sees it.
fn guess_format<'a>(bytes: &'a [u8], name: &Path) -> Result<image::ImageReader<Cursor<&'a [u8]>>> {
    let reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::io(name, e))?;
    if reader.format() == Some(image::ImageFormat::Jpeg) && !jpeg_is_complete(bytes) {
        return Err(Error::Image {
            path: name.to_path_buf(),
            message: "the JPEG is truncated (its last scan has no end-of-image marker)".into(),
        });
    }
    Ok(reader)
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
    check_pixels(width, height, path, limits)?;
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
    Ok(face_pixels(&load_grey_image(path)?))
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
        // BT.601: (299 * 200 + 587 * 30 + 114 * 30) / 1000 = 80.83.
        assert!(
            face.iter().all(|&p| p.abs_diff(81) <= 3),
            "{:?}",
            &face[..4]
        );
    }

    #[test]
    fn grey_is_bt601_luma_whatever_the_format() {
        let rgb = image::RgbImage::from_fn(3, 1, |x, _| match x {
            0 => image::Rgb([255, 0, 0]),
            1 => image::Rgb([0, 255, 0]),
            _ => image::Rgb([10, 20, 255]),
        });
        // 76.245, 149.685 and (2990 + 11740 + 29070) / 1000 = 43.8, rounded.
        let grey = to_grey(&DynamicImage::ImageRgb8(rgb.clone()));
        assert_eq!(grey.as_raw(), &[76, 150, 44]);
        let rgba = DynamicImage::ImageRgba8(DynamicImage::ImageRgb8(rgb).to_rgba8());
        assert_eq!(to_grey(&rgba).as_raw(), &[76, 150, 44]);
        let luma = GrayImage::from_fn(4, 2, |x, y| Luma([(x * 40 + y) as u8]));
        assert_eq!(to_grey(&DynamicImage::ImageLuma8(luma.clone())), luma);
    }

    /// A colour test card as JPEG bytes.
    fn colour_jpeg(width: u32, height: u32) -> Vec<u8> {
        let card = image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x * 4) as u8, (y * 5) as u8, ((x + y) * 2) as u8])
        });
        let mut bytes = Cursor::new(Vec::new());
        card.write_to(&mut bytes, image::ImageFormat::Jpeg).unwrap();
        bytes.into_inner()
    }

    #[test]
    fn a_jpegs_luma_read_directly_matches_the_colour_decode() {
        let jpeg = colour_jpeg(60, 40);
        let limits = ImageLimits::default();
        let direct = decode_grey_image(&jpeg, Path::new("card.jpg"), &limits).unwrap();
        let through_colour = to_grey(&decode_image(&jpeg, Path::new("card.jpg"), &limits).unwrap());
        assert_eq!(direct.dimensions(), (60, 40));
        let worst = direct
            .as_raw()
            .iter()
            .zip(through_colour.as_raw())
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        // The colour path rounds Y to RGB and back: a few levels at most.
        assert!(worst <= 3, "{worst}");
        assert!(direct.as_raw().iter().any(|&p| p > 100), "not the card");
    }

    #[test]
    fn the_grey_path_keeps_the_checks_of_the_colour_path() {
        let jpeg = colour_jpeg(60, 40);
        let tight = ImageLimits {
            max_pixels: 60 * 40 - 1,
            ..ImageLimits::default()
        };
        let message = decode_grey_image(&jpeg, Path::new("big.jpg"), &tight)
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with("big.jpg:") && message.contains("60x40"),
            "{message}"
        );
        let cut = &jpeg[..jpeg.len() / 2];
        let message = decode_grey_image(cut, Path::new("cut.jpg"), &ImageLimits::default())
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with("cut.jpg: the JPEG is truncated"),
            "{message}"
        );
        let message = decode_grey_image(
            b"\xFF\xD8\xFF\xDAnot a jpeg\xFF\xD9",
            Path::new("junk.jpg"),
            &ImageLimits::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(message.starts_with("junk.jpg:"), "{message}");
    }

    /// `jpeg` with an Exif block saying "rotate 90 degrees clockwise to view" (orientation 6),
    /// as phones write for a photo taken upright.
    fn with_orientation_6(jpeg: &[u8]) -> Vec<u8> {
        let mut exif = b"Exif\0\0MM\0\x2A\0\0\0\x08".to_vec();
        exif.extend([0, 1]); // one entry
        exif.extend([0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0]); // Orientation, SHORT, 1, 6
        exif.extend([0, 0, 0, 0]); // no next IFD
        let mut out = jpeg[..2].to_vec(); // SOI
        out.extend([0xFF, 0xE1]);
        out.extend(((exif.len() + 2) as u16).to_be_bytes());
        out.extend(exif);
        out.extend(&jpeg[2..]);
        out
    }

    #[test]
    fn both_paths_turn_a_sideways_photo_upright() {
        let jpeg = with_orientation_6(&colour_jpeg(60, 40));
        let limits = ImageLimits::default();
        let colour = decode_image(&jpeg, Path::new("phone.jpg"), &limits).unwrap();
        let grey = decode_grey_image(&jpeg, Path::new("phone.jpg"), &limits).unwrap();
        assert_eq!((colour.width(), colour.height()), (40, 60));
        assert_eq!(grey.dimensions(), (40, 60));
        let colour = to_grey(&colour);
        // Rotated clockwise: the source's bottom-left corner is now the top-left.
        let worst = grey
            .as_raw()
            .iter()
            .zip(colour.as_raw())
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        assert!(worst <= 3, "{worst}");
    }
}
