//! Batch norm's per-plane reductions for any CPU: sums over one plane in 16 f32 lanes (one
//! AVX-512 register; the compiler vectorises the fixed-width lane loop), the lanes then
//! added in order, so the result does not depend on the instructions.

/// Lanes of the partial sums.
const LANES: usize = 16;

/// The sum of `term(v)` over a plane's values `v`: value `i` into lane `i % 16`, then the
/// lanes in order.
#[inline(always)]
fn lane_sum(plane: &[f32], term: impl Fn(f32) -> f32) -> f32 {
    let (whole, rest) = plane.split_at(plane.len() / LANES * LANES);
    let mut lanes = [0f32; LANES];
    for chunk in whole.chunks_exact(LANES) {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += term(v);
        }
    }
    for (lane, &v) in lanes.iter_mut().zip(rest) {
        *lane += term(v);
    }
    lanes.iter().sum()
}

/// The sum of a plane's values.
#[inline(always)]
pub(crate) fn plane_sum(plane: &[f32]) -> f32 {
    lane_sum(plane, |v| v)
}

/// The sum of a plane's squared deviations from `mean`.
#[inline(always)]
pub(crate) fn plane_squared_deviations(plane: &[f32], mean: f32) -> f32 {
    lane_sum(plane, |v| {
        let d = v - mean;
        d * d
    })
}

/// For ReLU after batch norm, over one plane: `sum(dz)` and `sum(dz * xhat)`, where `dz` is
/// `dy` where the output was positive (else 0) and `xhat = (x - mean) * inv`. The output's
/// sign is recomputed from `x` with the forward's per-channel `scale` and `shift`, the same
/// operations as the forward's, so the mask is the forward's bit for bit and the output need
/// not be read.
#[inline(always)]
pub(crate) fn plane_relu_grad_sums(
    x: &[f32],
    dy: &[f32],
    [mean, inv]: [f32; 2],
    [scale, shift]: [f32; 2],
) -> (f32, f32) {
    assert_eq!(x.len(), dy.len());
    let mut dz_lanes = [0f32; LANES];
    let mut dz_xhat_lanes = [0f32; LANES];
    // Value i into lane i % 16: whole chunks of 16, then the rest from lane 0.
    let mut add = |x: &[f32], dy: &[f32]| {
        let lanes = dz_lanes.iter_mut().zip(dz_xhat_lanes.iter_mut());
        for (((dz_sum, dz_xhat_sum), &x), &dy) in lanes.zip(x).zip(dy) {
            let dz = if x * scale + shift > 0.0 { dy } else { 0.0 };
            *dz_sum += dz;
            *dz_xhat_sum += dz * ((x - mean) * inv);
        }
    };
    let whole = x.len() / LANES * LANES;
    for (x, dy) in x[..whole]
        .chunks_exact(LANES)
        .zip(dy[..whole].chunks_exact(LANES))
    {
        add(x, dy);
    }
    add(&x[whole..], &dy[whole..]);
    (dz_lanes.iter().sum(), dz_xhat_lanes.iter().sum())
}
