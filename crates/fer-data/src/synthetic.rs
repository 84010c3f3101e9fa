//! Seeded synthetic FER-format data whose classes are learnable, for tests across the workspace.
//!
//! Each class is an oriented grating (class `k` at `k * 180/7` degrees) with a little phase
//! jitter, random brightness and contrast, and Gaussian pixel noise: easy for a linear model
//! or a CNN, impossible by chance. Optional quirks mirror FER2013's: all-black images and
//! exact duplicates across splits.

use rand::distr::weighted::WeightedIndex;
use rand::prelude::*;
use rand_chacha::ChaCha8Rng;
use rand_distr::Normal;

use crate::{Dataset, Emotion, IMAGE_PIXELS, IMAGE_SIDE, Split};

/// What to generate. Same config, same bytes, on every machine.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SyntheticConfig {
    pub seed: u64,
    /// Images in Training, PublicTest and PrivateTest, in that order.
    pub per_split: [usize; 3],
    /// Relative class frequencies (FER2013's are about 8:1:8:14:10:6:10).
    pub class_weights: [f64; Emotion::COUNT],
    /// Standard deviation of the per-pixel Gaussian noise, in grey levels.
    pub noise_std: f32,
    /// Training images replaced by all-black ones.
    pub black_images: usize,
    /// Images overwritten by a copy of another image (labels kept, so some conflict).
    pub duplicates: usize,
}

impl SyntheticConfig {
    /// A few hundred balanced images without quirks: enough for unit tests.
    pub fn small(seed: u64) -> Self {
        SyntheticConfig {
            seed,
            per_split: [140, 35, 35],
            class_weights: [1.0; Emotion::COUNT],
            noise_std: 30.0,
            black_images: 0,
            duplicates: 0,
        }
    }

    /// FER2013's class balance, with black images and duplicates like the real data.
    pub fn fer_like(seed: u64, per_split: [usize; 3]) -> Self {
        SyntheticConfig {
            seed,
            per_split,
            class_weights: [3995.0, 436.0, 4097.0, 7215.0, 4830.0, 3171.0, 4965.0],
            noise_std: 30.0,
            black_images: 3,
            duplicates: 5,
        }
    }
}

/// Generates the dataset described by `config`, rows in split order like FER2013.
pub fn generate(config: &SyntheticConfig) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let n: usize = config.per_split.iter().sum();
    let classes = WeightedIndex::new(config.class_weights).unwrap_or_else(|_| {
        WeightedIndex::new([1.0; Emotion::COUNT]).expect("uniform weights are valid")
    });
    let noise = Normal::new(0.0f32, config.noise_std.max(0.0)).expect("finite std");
    let mut pixels = vec![0u8; n * IMAGE_PIXELS];
    let mut labels = Vec::with_capacity(n);
    let mut splits = Vec::with_capacity(n);
    for (split, &count) in Split::ALL.iter().zip(&config.per_split) {
        splits.extend(std::iter::repeat_n(*split, count));
    }
    for image in pixels.chunks_mut(IMAGE_PIXELS) {
        let emotion = Emotion::ALL[classes.sample(&mut rng)];
        labels.push(emotion);
        draw_grating(image, emotion, &mut rng, &noise);
    }
    let training = config.per_split[0];
    for _ in 0..config.black_images.min(training) {
        let i = rng.random_range(0..training);
        pixels[i * IMAGE_PIXELS..(i + 1) * IMAGE_PIXELS].fill(0);
    }
    if n > 1 {
        for _ in 0..config.duplicates {
            let from = rng.random_range(0..n);
            let to = rng.random_range(0..n);
            if from != to {
                let source = pixels[from * IMAGE_PIXELS..(from + 1) * IMAGE_PIXELS].to_vec();
                pixels[to * IMAGE_PIXELS..(to + 1) * IMAGE_PIXELS].copy_from_slice(&source);
            }
        }
    }
    let rows = (0..n as u32).collect();
    Dataset::from_parts(pixels, labels, splits, rows).expect("columns built with equal lengths")
}

fn draw_grating(image: &mut [u8], emotion: Emotion, rng: &mut ChaCha8Rng, noise: &Normal<f32>) {
    let angle = emotion.index() as f32 * std::f32::consts::PI / Emotion::COUNT as f32;
    let (sin, cos) = angle.sin_cos();
    let cycles = 3.0;
    let phase = rng.random_range(-0.4f32..0.4);
    let brightness = rng.random_range(100.0f32..150.0);
    let contrast = rng.random_range(40.0f32..70.0);
    let centre = (IMAGE_SIDE as f32 - 1.0) / 2.0;
    for (p, out) in image.iter_mut().enumerate() {
        let x = (p % IMAGE_SIDE) as f32 - centre;
        let y = (p / IMAGE_SIDE) as f32 - centre;
        let t = (x * cos + y * sin) / IMAGE_SIDE as f32;
        let value = brightness
            + contrast * (std::f32::consts::TAU * cycles * t + phase).sin()
            + noise.sample(rng);
        *out = value.round().clamp(0.0, 255.0) as u8;
    }
}

/// A grey 8-bit PNG of `side` x `side` black pixels whose compressed stream really holds every
/// row (`side * (side + 1)` bytes once inflated): a decompression bomb for tests of image
/// limits. 60000 gives a file of about 3.5 MB that inflates to 3.6 GB.
pub fn decompression_bomb_png(side: u32) -> Vec<u8> {
    use std::io::Write as _;

    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
    }

    let mut header = Vec::with_capacity(13);
    header.extend_from_slice(&side.to_be_bytes());
    header.extend_from_slice(&side.to_be_bytes());
    header.extend_from_slice(&[8, 0, 0, 0, 0]); // 8 bits, grey, deflate, no filter, no interlace
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let row = vec![0u8; side as usize + 1]; // filter byte 0, then the row
    for _ in 0..side {
        encoder.write_all(&row).expect("writing to memory");
    }
    let stream = encoder.finish().expect("writing to memory");
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut png, b"IHDR", &header);
    for part in stream.chunks(1 << 20) {
        chunk(&mut png, b"IDAT", part);
    }
    chunk(&mut png, b"IEND", &[]);
    png
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let a = generate(&SyntheticConfig::small(7));
        let b = generate(&SyntheticConfig::small(7));
        let c = generate(&SyntheticConfig::small(8));
        assert_eq!(a, b);
        assert_ne!(a.pixels(), c.pixels());
        assert_eq!(a.len(), 210);
        assert_eq!(a.view(Split::PublicTest).len(), 35);
    }

    #[test]
    fn classes_are_separable_by_nearest_class_mean() {
        // Fit class means on Training, classify PrivateTest: far above the 1/7 of chance.
        let data = generate(&SyntheticConfig::small(1));
        let mut means = vec![[0f64; IMAGE_PIXELS]; Emotion::COUNT];
        let counts = data.view(Split::Training).class_counts();
        for s in data.view(Split::Training).iter() {
            for (m, &p) in means[s.label.index()].iter_mut().zip(s.pixels) {
                *m += f64::from(p) / counts[s.label.index()] as f64;
            }
        }
        let test = data.view(Split::PrivateTest);
        let correct = test
            .iter()
            .filter(|s| {
                let distance = |m: &[f64; IMAGE_PIXELS]| -> f64 {
                    m.iter()
                        .zip(s.pixels)
                        .map(|(a, &b)| (a - f64::from(b)).powi(2))
                        .sum()
                };
                let best = (0..Emotion::COUNT)
                    .min_by(|&a, &b| distance(&means[a]).total_cmp(&distance(&means[b])))
                    .unwrap();
                best == s.label.index()
            })
            .count();
        assert!(
            correct as f64 / test.len() as f64 > 0.9,
            "{correct}/{}",
            test.len()
        );
    }

    #[test]
    fn fer_like_config_has_quirks_and_imbalance() {
        let data = generate(&SyntheticConfig::fer_like(3, [700, 100, 100]));
        let black = (0..data.len())
            .filter(|&i| data.image(i).iter().all(|&p| p == 0))
            .count();
        assert!((1..=3).contains(&black), "{black}");
        let counts = data.class_counts();
        assert!(
            counts[Emotion::Happy.index()] > 5 * counts[Emotion::Disgust.index()],
            "{counts:?}"
        );
    }
}
