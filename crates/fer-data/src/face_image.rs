//! Faces from image files: any format the `image` crate reads, turned into a 48x48 grey face.
//!
//! FER2013 faces are square, grey, 48x48 and roughly centred on the face. A photo of a face
//! that a user hands us is brought to the same form the same way every time: decoded, converted
//! to luma, cropped to its centred square (the larger side is trimmed equally on both ends) and
//! resized to 48x48 with a triangle (bilinear, area-aware when shrinking) filter.

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

/// Decodes an image file (the format is taken from the content, not the extension) and turns
/// it upright as its Exif orientation says (phone photos are often stored sideways).
pub fn load_image(path: &Path) -> Result<DynamicImage> {
    use image::ImageDecoder;

    let reader = image::ImageReader::open(path)
        .map_err(|e| Error::io(path, e))?
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    if reader.format().is_none() {
        return Err(Error::Image {
            path: path.to_path_buf(),
            message: "not an image in a format this build reads (PNG, JPEG, BMP, GIF, WebP, \
                      TIFF, PNM)"
                .into(),
        });
    }
    let decode_error = |e: image::ImageError| Error::Image {
        path: path.to_path_buf(),
        message: format!("cannot decode image: {e}"),
    };
    let mut decoder = reader.into_decoder().map_err(decode_error)?;
    // Unreadable Exif is no reason to refuse the pixels.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(decode_error)?;
    image.apply_orientation(orientation);
    if image.width() == 0 || image.height() == 0 {
        return Err(Error::Image {
            path: path.to_path_buf(),
            message: "image has no pixels".into(),
        });
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
