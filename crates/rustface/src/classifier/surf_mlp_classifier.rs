// This file is part of the open-source port of SeetaFace engine, which originally includes three modules:
//      SeetaFace Detection, SeetaFace Alignment, and SeetaFace Identification.
//
// This file is part of the SeetaFace Detection module, containing codes implementing the face detection method described in the following paper:
//
//      Funnel-structured cascade for multi-view face detection with alignment awareness,
//      Shuzhe Wu, Meina Kan, Zhenliang He, Shiguang Shan, Xilin Chen.
//      In Neurocomputing (under review)
//
// Copyright (C) 2016, Visual Information Processing and Learning (VIPL) group,
// Institute of Computing Technology, Chinese Academy of Sciences, Beijing, China.
//
// As an open-source face recognition engine: you can redistribute SeetaFace source codes
// and/or modify it under the terms of the BSD 2-Clause License.
//
// You should have received a copy of the BSD 2-Clause License along with the software.
// If not, see < https://opensource.org/licenses/BSD-2-Clause>.

use super::score::Score;
use crate::feat::SurfMlpFeatureMap;
use crate::math;
use crate::Rectangle;
use std::mem;

#[cfg(feature = "rayon")]
use rayon::prelude::*;

struct TwoWayBuffer {
    input: Vec<f32>,
    output: Vec<f32>,
}

impl TwoWayBuffer {
    #[inline]
    fn new() -> Self {
        TwoWayBuffer {
            input: Vec::new(),
            output: Vec::new(),
        }
    }

    #[inline]
    fn get_buffers(&mut self) -> (&mut Vec<f32>, &mut Vec<f32>) {
        (&mut self.input, &mut self.output)
    }

    #[inline]
    fn get_input(&mut self) -> &mut Vec<f32> {
        &mut self.input
    }

    #[inline]
    fn swap(&mut self) {
        mem::swap(&mut self.input, &mut self.output);
    }
}

pub struct SurfMlpBuffers {
    input: Vec<f32>,
    output: Vec<f32>,
    layers: TwoWayBuffer,
}

impl SurfMlpBuffers {
    #[inline]
    pub fn new() -> Self {
        SurfMlpBuffers {
            input: Vec::new(),
            output: Vec::new(),
            layers: TwoWayBuffer::new(),
        }
    }
}

#[derive(Clone)]
pub struct SurfMlpClassifier {
    feature_ids: Vec<i32>,
    thresh: f32,
    layers: Vec<Layer>,
}

impl SurfMlpClassifier {
    #[inline]
    pub fn new() -> Self {
        SurfMlpClassifier {
            feature_ids: Vec::new(),
            thresh: 0.0,
            layers: Vec::new(),
        }
    }

    #[inline]
    pub fn add_feature_id(&mut self, feature_id: i32) {
        self.feature_ids.push(feature_id);
    }

    #[inline]
    pub fn set_threshold(&mut self, thresh: f32) {
        self.thresh = thresh;
    }

    pub fn add_layer(
        &mut self,
        input_dim: usize,
        output_dim: usize,
        weights: Vec<f32>,
        biases: Vec<f32>,
    ) {
        self.layers.push(Layer::new(
            input_dim,
            output_dim,
            weights,
            biases,
            Self::relu,
        ))
    }

    pub fn add_output_layer(
        &mut self,
        input_dim: usize,
        output_dim: usize,
        weights: Vec<f32>,
        biases: Vec<f32>,
    ) {
        self.layers.push(Layer::new(
            input_dim,
            output_dim,
            weights,
            biases,
            Self::sigmoid,
        ))
    }

    #[inline]
    fn relu(x: f32) -> f32 {
        if x > 0.0 {
            x
        } else {
            0.0
        }
    }

    #[inline]
    fn sigmoid(x: f32) -> f32 {
        1.0 / (1.0 + (-x).exp())
    }

    fn compute_internal(&self, bufs: &mut SurfMlpBuffers) {
        bufs.layers
            .get_input()
            .resize(self.layers[0].output_size(), 0.0);
        self.layers[0].compute(&bufs.input, bufs.layers.get_input());

        for i in 1..(self.layers.len() - 1) {
            {
                let layer = &self.layers[i];
                let (input_buf, output_buf) = bufs.layers.get_buffers();
                output_buf.resize(layer.output_size(), 0.0);
                layer.compute(input_buf, output_buf);
            }
            bufs.layers.swap();
        }

        let last_layer = &self.layers[self.layers.len() - 1];
        last_layer.compute(bufs.layers.get_input(), &mut bufs.output);
    }
}

/// Outputs computed together by [`Layer::compute`]: one AVX-512 register, four SSE ones.
const OUTPUT_BLOCK: usize = 16;

#[derive(Clone)]
struct Layer {
    input_dim: usize,
    output_dim: usize,
    /// The weights (`output_dim` rows of `input_dim`, as the model file has them) regrouped
    /// for [`Layer::compute`]: for each block of [`OUTPUT_BLOCK`] outputs, for each input,
    /// that input's weight into each output of the block (zero past `output_dim`).
    weights_by_block: Vec<f32>,
    biases: Vec<f32>,
    act_func: fn(f32) -> f32,
}

impl Layer {
    fn new(
        input_dim: usize,
        output_dim: usize,
        weights: Vec<f32>,
        biases: Vec<f32>,
        act_func: fn(f32) -> f32,
    ) -> Self {
        let blocks = (output_dim + OUTPUT_BLOCK - 1) / OUTPUT_BLOCK;
        let mut weights_by_block = vec![0.0; blocks * input_dim * OUTPUT_BLOCK];
        for (output, row) in weights
            .chunks(input_dim.max(1))
            .take(output_dim)
            .enumerate()
        {
            let (block, lane) = (output / OUTPUT_BLOCK, output % OUTPUT_BLOCK);
            for (input, &weight) in row.iter().enumerate() {
                weights_by_block[(block * input_dim + input) * OUTPUT_BLOCK + lane] = weight;
            }
        }
        Layer {
            input_dim,
            output_dim,
            weights_by_block,
            biases,
            act_func,
        }
    }

    /// `output[o] = act(sum_i input[i] * weights[o][i] + biases[o])`, each sum taken in input
    /// order from -0.0, as upstream's `vector_inner_product(..).sum()` does, so the results
    /// are bit-for-bit upstream's; the outputs of a block are summed side by side (SIMD lanes)
    /// instead of one after the other.
    fn compute(&self, input: &[f32], output: &mut [f32]) {
        let inputs = input.len().min(self.input_dim);
        let input = &input[..inputs];
        let outputs = output.len().min(self.output_dim).min(self.biases.len());
        for ((block_weights, block_output), block_biases) in self
            .weights_by_block
            .chunks_exact(self.input_dim * OUTPUT_BLOCK)
            .zip(output[..outputs].chunks_mut(OUTPUT_BLOCK))
            .zip(self.biases.chunks(OUTPUT_BLOCK))
        {
            let sums = block_sums(input, block_weights);
            for ((output, sum), bias) in block_output.iter_mut().zip(sums).zip(block_biases) {
                *output = (self.act_func)(sum + bias);
            }
        }
    }
    #[inline]
    fn input_size(&self) -> usize {
        self.input_dim
    }

    #[inline]
    fn output_size(&self) -> usize {
        self.output_dim
    }
}

/// The [`OUTPUT_BLOCK`] sums of one block of [`Layer::compute`], on the widest SIMD the CPU has.
fn block_sums(input: &[f32], block_weights: &[f32]) -> [f32; OUTPUT_BLOCK] {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, checked just above.
            return unsafe { block_sums_avx512(input, block_weights) };
        }
        if is_x86_feature_detected!("avx") {
            // SAFETY: the CPU has AVX, checked just above.
            return unsafe { block_sums_avx(input, block_weights) };
        }
    }
    block_sums_portable(input, block_weights)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn block_sums_avx512(input: &[f32], block_weights: &[f32]) -> [f32; OUTPUT_BLOCK] {
    block_sums_portable(input, block_weights)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn block_sums_avx(input: &[f32], block_weights: &[f32]) -> [f32; OUTPUT_BLOCK] {
    block_sums_portable(input, block_weights)
}

/// Multiplies and adds separately (Rust never fuses them), so every target gives the same bits.
#[inline(always)]
fn block_sums_portable(input: &[f32], block_weights: &[f32]) -> [f32; OUTPUT_BLOCK] {
    let mut sums = [-0.0f32; OUTPUT_BLOCK];
    for (&x, weights) in input.iter().zip(block_weights.chunks_exact(OUTPUT_BLOCK)) {
        for (sum, &weight) in sums.iter_mut().zip(weights) {
            *sum += x * weight;
        }
    }
    sums
}

impl SurfMlpClassifier {
    pub fn classify(
        &self,
        output: Option<&mut Vec<f32>>,
        bufs: &mut SurfMlpBuffers,
        feature_map: &mut SurfMlpFeatureMap,
        roi: Rectangle,
    ) -> Score {
        let input_layer = self.layers.get(0).expect("No layers");
        bufs.input.resize(input_layer.input_size(), 0.0);

        let num_layers = self.layers.len();
        let output_layer = self.layers.get(num_layers - 1).expect("No layers");
        bufs.output.resize(output_layer.output_size(), 0.0);

        {
            let mut dest = bufs.input.as_mut_ptr();
            unsafe {
                for &feature_id in &self.feature_ids[..] {
                    feature_map.get_feature_vector((feature_id - 1) as usize, dest, roi);
                    let offset = feature_map.get_feature_vector_dim(feature_id as usize);
                    dest = dest.offset(offset as isize);
                }
            }
        }

        self.compute_internal(bufs);

        let score = *bufs.output.get(0).expect("No score");
        let score = Score {
            positive: score > self.thresh,
            score,
        };

        if let Some(output) = output {
            output.clear();
            output.extend_from_slice(&bufs.output);
        }

        score
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Upstream 0.1.7's `Layer::compute` (without rayon), verbatim but for the layer's
    /// original `weights`, which fer's `Layer` no longer keeps.
    fn upstream_compute(layer: &Layer, weights: &[f32], input: &[f32], output: &mut [f32]) {
        let it = weights.chunks(layer.input_dim);
        it.zip(&layer.biases)
            .zip(output)
            .for_each(|((weights, bias), output)| {
                let x = math::vector_inner_product(input, weights) + bias;
                *output = (layer.act_func)(x);
            });
    }

    /// Values of every sign and a wide range of magnitudes, reproducibly (xorshift).
    fn values(seed: &mut u64, count: usize) -> Vec<f32> {
        (0..count)
            .map(|_| {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                let unit = (*seed >> 40) as f32 / (1u64 << 24) as f32;
                let scale = [1e-3, 0.1, 1.0, 7.0][(*seed & 3) as usize];
                (unit * 2.0 - 1.0) * scale
            })
            .collect()
    }

    #[test]
    fn layers_give_upstreams_bits() {
        let mut seed = 0x9e37_79b9_7f4a_7c15;
        for &(input_dim, output_dim) in
            &[(1, 1), (7, 16), (100, 37), (1024, 5), (640, 128), (33, 17)]
        {
            for act in [SurfMlpClassifier::relu, SurfMlpClassifier::sigmoid] {
                let weights = values(&mut seed, input_dim * output_dim);
                let biases = values(&mut seed, output_dim);
                let layer = Layer::new(input_dim, output_dim, weights.clone(), biases, act);
                let input = values(&mut seed, input_dim);
                let mut ours = vec![f32::NAN; output_dim];
                let mut theirs = vec![f32::NAN; output_dim];
                layer.compute(&input, &mut ours);
                upstream_compute(&layer, &weights, &input, &mut theirs);
                let ours: Vec<u32> = ours.iter().map(|x| x.to_bits()).collect();
                let theirs: Vec<u32> = theirs.iter().map(|x| x.to_bits()).collect();
                assert_eq!(ours, theirs, "{input_dim} inputs, {output_dim} outputs");
            }
        }
    }

    #[test]
    fn every_simd_width_gives_the_same_bits() {
        let mut seed = 42;
        let input = values(&mut seed, 300);
        let weights = values(&mut seed, 300 * OUTPUT_BLOCK);
        let portable = block_sums_portable(&input, &weights);
        assert_eq!(
            block_sums(&input, &weights).map(f32::to_bits),
            portable.map(f32::to_bits)
        );
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx") {
            // SAFETY: the CPU has AVX, checked just above.
            let avx = unsafe { block_sums_avx(&input, &weights) };
            assert_eq!(avx.map(f32::to_bits), portable.map(f32::to_bits));
        }
    }
}
