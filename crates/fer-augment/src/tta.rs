//! Test-time augmentation views: five-crop and ten-crop (with mirrored copies).

use fer_data::{IMAGE_PIXELS, IMAGE_SIDE};
use image::GrayImage;

/// The four corner crops and the centre crop of side `size` (torchvision `FiveCrop`), each
/// `size * size` bytes. `size` is clamped to 1..=48.
pub fn five_crop(image: &[u8], size: usize) -> Vec<Vec<u8>> {
    assert_eq!(image.len(), IMAGE_PIXELS, "a 48x48 image");
    let size = size.clamp(1, IMAGE_SIDE);
    let far = IMAGE_SIDE - size;
    let centre = far / 2;
    [(0, 0), (far, 0), (0, far), (far, far), (centre, centre)]
        .into_iter()
        .map(|(x0, y0)| {
            (y0..y0 + size)
                .flat_map(|y| {
                    image[y * IMAGE_SIDE + x0..y * IMAGE_SIDE + x0 + size]
                        .iter()
                        .copied()
                })
                .collect()
        })
        .collect()
}

/// [`five_crop`] followed by the same five crops of the mirrored image (torchvision `TenCrop`).
pub fn ten_crop(image: &[u8], size: usize) -> Vec<Vec<u8>> {
    let mut mirrored = GrayImage::from_raw(IMAGE_SIDE as u32, IMAGE_SIDE as u32, image.to_vec())
        .expect("a 48x48 image");
    image::imageops::flip_horizontal_in_place(&mut mirrored);
    let mut crops = five_crop(image, size);
    crops.extend(five_crop(mirrored.as_raw(), size));
    crops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crops_sit_at_the_corners_and_centre() {
        let image: Vec<u8> = (0..IMAGE_PIXELS).map(|i| (i % 251) as u8).collect();
        let crops = five_crop(&image, 44);
        assert_eq!(crops.len(), 5);
        assert!(crops.iter().all(|c| c.len() == 44 * 44));
        assert_eq!(crops[0][0], image[0]);
        assert_eq!(crops[1][0], image[4]);
        assert_eq!(crops[2][0], image[4 * 48]);
        assert_eq!(crops[3][44 * 44 - 1], image[IMAGE_PIXELS - 1]);
        assert_eq!(crops[4][0], image[2 * 48 + 2]);
        let full = five_crop(&image, 48);
        assert!(full.iter().all(|c| *c == image));
    }

    #[test]
    fn ten_crop_adds_the_mirrored_crops() {
        let image: Vec<u8> = (0..IMAGE_PIXELS).map(|i| (i % 48) as u8).collect();
        let crops = ten_crop(&image, 40);
        assert_eq!(crops.len(), 10);
        // The mirrored top-left crop starts with the original's top-right pixel.
        assert_eq!(crops[5][0], image[47]);
        assert_eq!(crops[5][39], image[8]);
    }
}
