//! vgg-bn's inference of a few images (batch-1 latency), one at a time, on the CPU: its layers handed to
//! [`cpu::one_image`](crate::cpu::one_image), which spreads each over every thread. Each
//! frozen batch norm is folded into its convolution (its scale multiplies the weights, its
//! shift is the bias, then ReLU); the first convolution runs directly on the image padded by
//! one pixel, the other seven by Winograd with their transformed weights cached in the
//! network's [`Workspace`].

use candle_core::{Result, Tensor, bail};
use fer_data::IMAGE_SIDE;

use super::VggBn;
use crate::cpu::batch_norm;
use crate::cpu::one_image::{self, Conv, Dense};
use crate::cpu::shape::{ConvShape, PoolShape};
use crate::cpu::workspace::Workspace;
use crate::layers::batch_norm::EPS;
use crate::layers::storage::{cpu_f32, cpu_f32s, is_cpu_f32};

/// Below this many images, each image takes the one-image path: the batch path's
/// convolutions leave Winograd for im2col under 8 images (`winograd_conv::suits`). Measured
/// at width 32 on 2 threads: 2.9-3.0 ms per image at batch 2, 4 and 8 on the batch path,
/// 1.5 ms here; 1.4 ms per image at batch 16 on the batch path.
const ONE_IMAGE_BELOW: usize = 8;

/// Whether the one-image path runs `images`: on the CPU in f32, fewer than
/// [`ONE_IMAGE_BELOW`], each 48 x 48, and the network's `tensors` on the CPU in f32.
pub(crate) fn applies(tensors: &[&Tensor], images: &Tensor) -> bool {
    let count = match *images.dims() {
        [n, 1, IMAGE_SIDE, IMAGE_SIDE] => n,
        _ => return false,
    };
    count < ONE_IMAGE_BELOW && is_cpu_f32(&[images]) && is_cpu_f32(tensors)
}

/// The raw scores (n, 7) of `images` (n, 1, 48, 48), one image at a time; `tensors` are the
/// network's, from `VggBn::tensors`.
pub(crate) fn scores(
    net: &VggBn,
    tensors: &[&Tensor],
    ws: &Workspace,
    images: &Tensor,
) -> Result<Tensor> {
    let guards: Vec<_> = tensors.iter().map(|t| t.storage_and_layout()).collect();
    let values = cpu_f32s(&guards, "vgg-bn's one-image inference")?;
    let images = images.contiguous()?;
    let image_guard = images.storage_and_layout();
    let x = cpu_f32(
        &image_guard.0,
        image_guard.1,
        "vgg-bn's one-image inference",
    )?;
    let units = net.units.len();
    // Per convolution: weight, then the batch norm's weight, bias, running mean and variance.
    let (conv_values, dense_values) = values.split_at(5 * units);
    let mut shapes = Vec::with_capacity(units);
    let mut folded = Vec::with_capacity(units);
    let (mut cin, mut side) = (1, IMAGE_SIDE);
    for (i, v) in conv_values.chunks(5).enumerate() {
        let cout = net.units[i].channels();
        let (weight, gamma, beta, mean, var) = (v[0], v[1], v[2], v[3], v[4]);
        if weight.len() != cout * cin * 9
            || [gamma, beta, mean, var].iter().any(|p| p.len() != cout)
        {
            bail!("vgg-bn layer {i}: parameters of unexpected sizes");
        }
        let (scale, shift) = batch_norm::frozen_affine(gamma, beta, mean, var, EPS);
        // The first convolution reads the image padded by one: no padding of its own.
        let (h, pad) = if i == 0 { (side + 2, 0) } else { (side, 1) };
        let shape = ConvShape {
            batch: 1,
            cin,
            h,
            w: h,
            cout,
            k: 3,
            pad,
        };
        let pool = (i % 2 == 1).then_some(PoolShape::max_2x2(cout, side, side));
        shapes.push((shape, pool));
        folded.push((scale, shift));
        cin = cout;
        if pool.is_some() {
            side /= 2;
        }
    }
    let convs: Vec<Conv> = shapes
        .iter()
        .zip(&folded)
        .zip(conv_values.chunks(5))
        .map(|(((shape, pool), (scale, shift)), v)| Conv {
            shape: *shape,
            weight: v[0],
            scale: Some(scale),
            bias: shift,
            slope: &[0.0],
            pool: *pool,
        })
        .collect();
    let features = cin * side * side;
    let [fc1_weight, fc1_bias, fc2_weight, fc2_bias] = dense_values else {
        bail!("vgg-bn: two linear layers with biases expected");
    };
    let hidden = fc1_bias.len();
    if fc1_weight.len() != hidden * features || fc2_weight.len() != fc2_bias.len() * hidden {
        bail!("vgg-bn classifier: parameters of unexpected sizes");
    }
    let dense = [
        Dense {
            weight: fc1_weight,
            bias: fc1_bias,
            inputs: features,
            outputs: hidden,
            slope: Some(0.0),
        },
        Dense {
            weight: fc2_weight,
            bias: fc2_bias,
            inputs: hidden,
            outputs: fc2_bias.len(),
            slope: None,
        },
    ];
    let n = x.len() / (IMAGE_SIDE * IMAGE_SIDE);
    let padded_side = IMAGE_SIDE + 2;
    let mut padded = vec![0f32; padded_side * padded_side];
    let mut scores = Vec::with_capacity(n * fc2_bias.len());
    for image in x.chunks(IMAGE_SIDE * IMAGE_SIDE) {
        for (row, src) in padded
            .chunks_mut(padded_side)
            .skip(1)
            .zip(image.chunks(IMAGE_SIDE))
        {
            row[1..=IMAGE_SIDE].copy_from_slice(src);
        }
        scores.extend(one_image::forward(ws, &convs, &dense, &padded));
    }
    Tensor::from_vec(scores, (n, fc2_bias.len()), images.device())
}
