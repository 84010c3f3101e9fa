//! The direct single-plane convolution's loops (a first layer at batch 1), generic over
//! whether multiply-adds are fused, so that the AVX-512 build reuses them.

use crate::cpu::shape::ConvShape;

/// `cpu::conv::conv_single_plane`; `FUSED`: multiply-adds rounded once (FMA instructions).
#[inline(always)]
pub(crate) fn conv_single_plane_with<const FUSED: bool>(
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    alpha: &[f32],
    s: &ConvShape,
    c0: usize,
    out: &mut [f32],
) {
    const GROUP: usize = 4;
    let plane = s.out_h() * s.out_w();
    let channels = out.len() / plane;
    let full = channels / GROUP * GROUP;
    let (grouped, rest) = out.split_at_mut(full * plane);
    for (i, o) in grouped.chunks_mut(GROUP * plane).enumerate() {
        let co = c0 + i * GROUP;
        match s.k {
            3 => plane_group::<3, GROUP, FUSED>(x, weight, bias, alpha, s, co, o),
            _ => plane_group::<5, GROUP, FUSED>(x, weight, bias, alpha, s, co, o),
        }
    }
    for (i, o) in rest.chunks_mut(plane).enumerate() {
        let co = c0 + full + i;
        match s.k {
            3 => plane_group::<3, 1, FUSED>(x, weight, bias, alpha, s, co, o),
            _ => plane_group::<5, 1, FUSED>(x, weight, bias, alpha, s, co, o),
        }
    }
}

/// `G` output channels from `co` of `cpu::conv::conv_single_plane`, for a K x K kernel: every loop
/// bound is a constant, so the accumulators stay in registers.
#[inline(always)]
fn plane_group<const K: usize, const G: usize, const FUSED: bool>(
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    alpha: &[f32],
    s: &ConvShape,
    co: usize,
    out: &mut [f32],
) {
    const LANES: usize = 16;
    let (oh, ow, w) = (s.out_h(), s.out_w(), s.w);
    let plane = oh * ow;
    let mut weights = [[[0f32; K]; K]; G];
    for (g, filter) in weights.iter_mut().enumerate() {
        for (ky, row) in filter.iter_mut().enumerate() {
            row.copy_from_slice(&weight[((co + g) * K + ky) * K..][..K]);
        }
    }
    let biases: [f32; G] = std::array::from_fn(|g| bias[co + g]);
    let slopes: [f32; G] =
        std::array::from_fn(|g| alpha[if alpha.len() == 1 { 0 } else { co + g }]);
    // Column starts of whole vectors; the last ends at ow and may overlap the one before.
    let starts = (0..ow - LANES).step_by(LANES).chain([ow - LANES]);
    for base in starts {
        for oy in 0..oh {
            let mut acc: [[f32; LANES]; G] = std::array::from_fn(|g| [biases[g]; LANES]);
            for ky in 0..K {
                let row = &x[(oy + ky) * w + base..][..LANES + K - 1];
                for kx in 0..K {
                    let v: &[f32; LANES] = row[kx..kx + LANES].try_into().expect("16 lanes");
                    for (acc, filter) in acc.iter_mut().zip(&weights) {
                        let wt = filter[ky][kx];
                        for (a, &v) in acc.iter_mut().zip(v) {
                            *a = if FUSED {
                                wt.mul_add(v, *a)
                            } else {
                                *a + wt * v
                            };
                        }
                    }
                }
            }
            for (g, acc) in acc.iter().enumerate() {
                let dst = &mut out[g * plane + oy * ow + base..][..LANES];
                for (d, &v) in dst.iter_mut().zip(acc) {
                    *d = if v > 0.0 { v } else { slopes[g] * v };
                }
            }
        }
    }
}
