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
    let mut dz_lanes = [0f32; LANES];
    let mut dz_xhat_lanes = [0f32; LANES];
    // Value i into lane i % 16: whole chunks of 16, then the rest from lane 0.
    let mut add = |x: &[f32], y: &[f32], dy: &[f32]| {
        let lanes = dz_lanes.iter_mut().zip(dz_xhat_lanes.iter_mut());
        for ((((dz_sum, dz_xhat_sum), &x), &y), &dy) in lanes.zip(x).zip(y).zip(dy) {
            let dz = if y > 0.0 { dy } else { 0.0 };
            *dz_sum += dz;
            *dz_xhat_sum += dz * ((x - mean) * inv);
        }
    };
    let whole = x.len() / LANES * LANES;
    for ((x, y), dy) in x[..whole]
        .chunks_exact(LANES)
        .zip(y[..whole].chunks_exact(LANES))
        .zip(dy[..whole].chunks_exact(LANES))
    {
        add(x, y, dy);
    }
    add(&x[whole..], &y[whole..], &dy[whole..]);
    (dz_lanes.iter().sum(), dz_xhat_lanes.iter().sum())
}
