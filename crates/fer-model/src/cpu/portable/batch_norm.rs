//! Batch norm's per-plane reductions for any CPU: sums over one plane in 16 f32 lanes (one
//! AVX-512 register; the compiler vectorises the fixed-width lane loop), the lanes then
//! added in order, so the result does not depend on the instructions.

/// Lanes of the partial sums.
const LANES: usize = 16;

/// The sum of a plane's values.
#[inline(always)]
pub(crate) fn plane_sum(plane: &[f32]) -> f32 {
    let (whole, rest) = plane.split_at(plane.len() / LANES * LANES);
    let mut lanes = [0f32; LANES];
    for chunk in whole.chunks_exact(LANES) {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += v;
        }
    }
    for (lane, &v) in lanes.iter_mut().zip(rest) {
        *lane += v;
    }
    lanes.iter().sum()
}

/// The sum of a plane's squared deviations from `mean`.
#[inline(always)]
pub(crate) fn plane_squared_deviations(plane: &[f32], mean: f32) -> f32 {
    let (whole, rest) = plane.split_at(plane.len() / LANES * LANES);
    let mut lanes = [0f32; LANES];
    for chunk in whole.chunks_exact(LANES) {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            let d = v - mean;
            *lane += d * d;
        }
    }
    for (lane, &v) in lanes.iter_mut().zip(rest) {
        let d = v - mean;
        *lane += d * d;
    }
    lanes.iter().sum()
}

/// For ReLU after batch norm, over one plane: `sum(dz)` and `sum(dz * xhat)`, where `dz` is
/// `dy` where the output `y` is positive (else 0) and `xhat = (x - mean) * inv`.
#[inline(always)]
pub(crate) fn plane_relu_grad_sums(
    x: &[f32],
    y: &[f32],
    dy: &[f32],
    mean: f32,
    inv: f32,
) -> (f32, f32) {
    assert!(x.len() == y.len() && y.len() == dy.len());
    let whole = x.len() / LANES * LANES;
    let mut dz_lanes = [0f32; LANES];
    let mut dz_xhat_lanes = [0f32; LANES];
    let add = |i: usize, l: usize, a: &mut [f32; LANES], b: &mut [f32; LANES]| {
        let dz = if y[i] > 0.0 { dy[i] } else { 0.0 };
        a[l] += dz;
        b[l] += dz * ((x[i] - mean) * inv);
    };
    for ((x, y), dy) in x[..whole]
        .chunks_exact(LANES)
        .zip(y[..whole].chunks_exact(LANES))
        .zip(dy[..whole].chunks_exact(LANES))
    {
        for l in 0..LANES {
            let dz = if y[l] > 0.0 { dy[l] } else { 0.0 };
            dz_lanes[l] += dz;
            dz_xhat_lanes[l] += dz * ((x[l] - mean) * inv);
        }
    }
    for i in whole..x.len() {
        add(i, i - whole, &mut dz_lanes, &mut dz_xhat_lanes);
    }
    (dz_lanes.iter().sum(), dz_xhat_lanes.iter().sum())
}
