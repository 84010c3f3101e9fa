//! Five facial landmarks (eyes, nose, mouth corners) per detected face, from MTCNN's O-Net,
//! whose eyes give the face's in-plane tilt for an upright crop.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Linear, PReLU, VarBuilder};
use fer_model::Pool2d;
use fer_model::layers;
use serde::{Deserialize, Serialize};

use crate::FaceBox;
use crate::crop::crop_square;
use crate::error::{Error, Result};

/// MTCNN's output network (O-Net, Zhang et al. 2016) as published by facenet-pytorch 2.6.0
/// (`data/onet.pt`, MIT licence), converted to safetensors unchanged; see `model/README.md`.
pub static ONET_MODEL: &[u8] = include_bytes!("../model/mtcnn_onet.safetensors");

/// O-Net's input side: a face box is resized to this square.
const ONET_SIDE: u32 = 48;

/// Faces per O-Net forward pass.
const ONET_BATCH: usize = 64;

/// One row of numbers per face.
type Rows = Vec<Vec<f32>>;

/// A point in image pixel coordinates (x right, y down).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub x: f32,
    pub y: f32,
}

/// The five points O-Net places on a face, in the pixel coordinates of the image the face was
/// found in. "Left" and "right" are as the image shows them: `left_eye` is the eye nearer the
/// image's left edge (the person's right eye).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FaceLandmarks {
    pub left_eye: Point,
    pub right_eye: Point,
    pub nose: Point,
    pub mouth_left: Point,
    pub mouth_right: Point,
    /// O-Net's probability that the box holds a face, in `[0, 1]`.
    pub face_probability: f32,
}

impl FaceLandmarks {
    /// The five points in field order: eyes, nose, mouth corners.
    pub fn points(&self) -> [Point; 5] {
        [
            self.left_eye,
            self.right_eye,
            self.nose,
            self.mouth_left,
            self.mouth_right,
        ]
    }

    /// The in-plane tilt of the line from the left eye to the right eye, in degrees: positive
    /// when the right eye is lower (the face turned clockwise as the image shows it), in
    /// `(-180, 180]`.
    pub fn roll_degrees(&self) -> f32 {
        (self.right_eye.y - self.left_eye.y)
            .atan2(self.right_eye.x - self.left_eye.x)
            .to_degrees()
    }

    /// The turn, in degrees, that brings this face's roll back within `dead_zone` degrees of
    /// upright (0 inside it; FER2013's own faces lean a few degrees either way), or `None`
    /// when these landmarks should not be trusted for it: O-Net doubts the face (probability
    /// under `min_probability`), the eyes are in the wrong order, or the roll exceeds
    /// `max_degrees` (the detector finds near-upright faces; a larger estimate is an error
    /// more often than a real tilt).
    pub fn upright_turn(
        &self,
        min_probability: f32,
        max_degrees: f32,
        dead_zone: f32,
    ) -> Option<f32> {
        let roll = self.roll_degrees();
        (self.face_probability >= min_probability && roll.is_finite() && roll.abs() <= max_degrees)
            .then(|| roll.signum() * (roll.abs() - dead_zone.max(0.0)).max(0.0))
    }
}

/// MTCNN's O-Net on grey images: five landmarks and a face probability for each face box.
///
/// The network was trained on colour; a grey image is its own red, green and blue, so the
/// first convolution's weights are summed over the three input channels once, at load, and
/// the result equals O-Net on the grey image repeated three times. The convolutions, PReLUs
/// and pools run on `fer-model`'s CPU layers (about 0.4-0.5 ms of one core per face against
/// 1.85 ms on candle's own ops, which also woke candle's spinning thread pool beside the
/// detector's threads). `Send + Sync`.
#[derive(Debug, Clone)]
pub struct LandmarkNet {
    conv1: Conv,
    conv2: Conv,
    conv3: Conv,
    conv4: Conv,
    dense5: Linear,
    prelu5: PReLU,
    dense6_1: Linear,
    dense6_3: Linear,
}

/// One of O-Net's convolutions (stride 1, no padding) with its bias and its PReLU slopes, run
/// on `fer-model`'s CPU layers (im2col and one matrix product per image; candle's own
/// convolution is about three times slower on these shapes).
#[derive(Debug, Clone)]
struct Conv {
    weight: Tensor,
    bias: Tensor,
    slopes: Tensor,
}

impl Conv {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        layers::prelu(
            &layers::conv2d(x, &self.weight, Some(&self.bias), 0)?,
            &self.slopes,
        )
    }
}

impl LandmarkNet {
    /// The embedded O-Net ([`ONET_MODEL`]), on the CPU.
    pub fn new() -> Result<Self> {
        Self::from_safetensors(ONET_MODEL)
    }

    /// An O-Net from safetensors bytes with facenet-pytorch's tensor names.
    pub fn from_safetensors(bytes: &[u8]) -> Result<Self> {
        Self::load(bytes).map_err(|e| Error::Landmarks(e.to_string()))
    }

    fn load(bytes: &[u8]) -> candle_core::Result<Self> {
        let vb = VarBuilder::from_slice_safetensors(bytes, DType::F32, &Device::Cpu)?;
        let conv = |name: &str, prelu: &str, cin: usize, cout: usize, k: usize| {
            Ok::<_, candle_core::Error>(Conv {
                weight: vb.get((cout, cin, k, k), &format!("{name}.weight"))?,
                bias: vb.get(cout, &format!("{name}.bias"))?,
                slopes: vb.get(cout, &format!("{prelu}.weight"))?,
            })
        };
        let linear =
            |name: &str, cin: usize, cout: usize| candle_nn::linear(cin, cout, vb.pp(name));
        let conv1_rgb = conv("conv1", "prelu1", 3, 32, 3)?;
        Ok(LandmarkNet {
            conv1: Conv {
                weight: conv1_rgb.weight.sum_keepdim(1)?,
                ..conv1_rgb
            },
            conv2: conv("conv2", "prelu2", 32, 64, 3)?,
            conv3: conv("conv3", "prelu3", 64, 64, 3)?,
            conv4: conv("conv4", "prelu4", 64, 128, 2)?,
            dense5: linear("dense5", 1152, 256)?,
            prelu5: candle_nn::prelu(Some(256), vb.pp("prelu5"))?,
            dense6_1: linear("dense6_1", 256, 2)?,
            dense6_3: linear("dense6_3", 256, 10)?,
        })
    }

    /// O-Net on a batch of 48x48 grey inputs `(n, 1, 48, 48)`, scaled as MTCNN scales pixels
    /// (`(p - 127.5) / 128`): `(n, 2)` probabilities of (not a face, a face) and `(n, 10)`
    /// landmarks (five x then five y, as fractions of the input's side, in the order of
    /// [`FaceLandmarks`]' fields).
    pub fn forward(&self, input: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let x = self.conv1.forward(input)?;
        // PyTorch's ceil-mode 3x3/2 pool on 46x46 gives 23x23: one repeated edge row and
        // column make the floor-mode pool see the same windows.
        let x = x.pad_with_same(2, 0, 1)?.pad_with_same(3, 0, 1)?;
        let x = Pool2d::max(3, 2).forward(&x)?;
        let x = Pool2d::max(3, 2).forward(&self.conv2.forward(&x)?)?;
        let x = Pool2d::max(2, 2).forward(&self.conv3.forward(&x)?)?;
        let x = self.conv4.forward(&x)?;
        // The Caffe original flattens width-major: (n, c, h, w) -> (n, w, h, c).
        let x = x.permute((0, 3, 2, 1))?.contiguous()?.flatten_from(1)?;
        let x = self.prelu5.forward(&self.dense5.forward(&x)?)?;
        let probability = candle_nn::ops::softmax_last_dim(&self.dense6_1.forward(&x)?)?;
        let points = self.dense6_3.forward(&x)?;
        Ok((probability, points))
    }

    /// [`LandmarkNet::forward`] on `count` scaled 48x48 inputs, as rows of numbers.
    fn run_batch(&self, pixels: Vec<f32>, count: usize) -> candle_core::Result<(Rows, Rows)> {
        let side = ONET_SIDE as usize;
        let input = Tensor::from_vec(pixels, (count, 1, side, side), &Device::Cpu)?;
        let (probability, points) = self.forward(&input)?;
        Ok((probability.to_vec2()?, points.to_vec2()?))
    }

    /// The landmarks of each face box of `image`, in order. Each box is taken as the square
    /// around its centre (its longer side) and resized to O-Net's 48x48.
    pub fn locate(
        &self,
        image: &image::GrayImage,
        faces: &[FaceBox],
    ) -> Result<Vec<FaceLandmarks>> {
        let mut found = Vec::with_capacity(faces.len());
        for chunk in faces.chunks(ONET_BATCH) {
            let pixels: Vec<f32> = chunk
                .iter()
                .flat_map(|face| crop_square(image, face, 0.0, ONET_SIDE).into_raw())
                .map(|p| (f32::from(p) - 127.5) * 0.0078125)
                .collect();
            let (probability, points) = self
                .run_batch(pixels, chunk.len())
                .map_err(|e| Error::Landmarks(e.to_string()))?;
            for ((face, p), q) in chunk.iter().zip(probability).zip(points) {
                let region = face.square_region(0.0);
                let side = region.side as f32;
                let at = |k: usize| Point {
                    x: region.x as f32 + q[k] * side,
                    y: region.y as f32 + q[k + 5] * side,
                };
                found.push(FaceLandmarks {
                    left_eye: at(0),
                    right_eye: at(1),
                    nose: at(2),
                    mouth_left: at(3),
                    mouth_right: at(4),
                    face_probability: p[1],
                });
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn landmarks(left: (f32, f32), right: (f32, f32), probability: f32) -> FaceLandmarks {
        let p = |(x, y)| Point { x, y };
        FaceLandmarks {
            left_eye: p(left),
            right_eye: p(right),
            nose: p((0.0, 0.0)),
            mouth_left: p((0.0, 0.0)),
            mouth_right: p((0.0, 0.0)),
            face_probability: probability,
        }
    }

    #[test]
    fn roll_is_the_eye_line_angle_positive_clockwise() {
        assert_eq!(
            landmarks((10.0, 20.0), (30.0, 20.0), 1.0).roll_degrees(),
            0.0
        );
        let down = landmarks((10.0, 20.0), (30.0, 40.0), 1.0);
        assert!((down.roll_degrees() - 45.0).abs() < 1e-5);
        let up = landmarks((10.0, 20.0), (30.0, 20.0 - 20.0 * 0.2679492), 1.0);
        assert!((up.roll_degrees() + 15.0).abs() < 1e-3);
    }

    #[test]
    fn the_upright_turn_stops_at_the_dead_zone_and_ignores_untrusted_landmarks() {
        let tilted = landmarks((10.0, 20.0), (30.0, 30.0), 0.9);
        let roll = tilted.roll_degrees();
        assert!((roll - 26.565).abs() < 1e-3);
        assert_eq!(tilted.upright_turn(0.5, 45.0, 0.0), Some(roll));
        assert!((tilted.upright_turn(0.5, 45.0, 10.0).unwrap() - (roll - 10.0)).abs() < 1e-5);
        let other_way = landmarks((10.0, 30.0), (30.0, 20.0), 0.9);
        assert!((other_way.upright_turn(0.5, 45.0, 10.0).unwrap() + (roll - 10.0)).abs() < 1e-5);
        assert_eq!(tilted.upright_turn(0.5, 45.0, 30.0), Some(0.0));
        assert_eq!(tilted.upright_turn(0.95, 45.0, 0.0), None);
        assert_eq!(tilted.upright_turn(0.5, 20.0, 0.0), None);
        let swapped = landmarks((30.0, 20.0), (10.0, 20.0), 0.9);
        assert_eq!(swapped.upright_turn(0.5, 45.0, 0.0), None);
    }

    #[test]
    fn the_embedded_onet_loads_and_gives_probabilities() {
        let net = LandmarkNet::new().unwrap();
        let input = Tensor::zeros((2, 1, 48, 48), DType::F32, &Device::Cpu).unwrap();
        let (probability, points) = net.forward(&input).unwrap();
        assert_eq!(probability.dims(), &[2, 2]);
        assert_eq!(points.dims(), &[2, 10]);
        let rows: Vec<Vec<f32>> = probability.to_vec2().unwrap();
        assert!((rows[0][0] + rows[0][1] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn a_corrupt_model_is_an_error() {
        let err = LandmarkNet::from_safetensors(b"not a safetensors file").unwrap_err();
        assert!(err.to_string().contains("landmark"), "{err}");
    }
}
