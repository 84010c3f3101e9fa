//! The two Winograd tilings of 3x3 convolutions, F(2x2, 3x3) ([`winograd`]) and F(4x4, 3x3)
//! ([`winograd4`]), behind one interface for the convolutions that run either
//! ([`winograd_conv`](super::winograd_conv) and [`one_image`](super::one_image)), and the
//! rule that picks one for a shape.
//!
//! Both share one layout: transformed weights `U` (positions, cout, cin), transformed input
//! `V` (positions, cin, slots), products `M` (positions, cout, slots), `M[xi] = U[xi] V[xi]`.

use std::marker::PhantomData;

use gemm::Parallelism;

use super::gemm::matmul;
use super::shape::ConvShape;
use super::{winograd, winograd4};

/// A Winograd tiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tiling {
    /// F(2x2, 3x3): 16 positions, 2.25x fewer multiplications than the direct product.
    F2,
    /// F(4x4, 3x3): 36 positions, 4x fewer; rounds more.
    F4,
}

/// The smallest output side that F(4x4, 3x3) takes (vgg-bn's first two stages: 48 and 24).
const F4_FROM: usize = 24;

/// The most input channels that F(4x4, 3x3) takes.
const F4_UP_TO_CHANNELS: usize = 128;

/// The most positions of either tiling.
pub(crate) const MAX_POSITIONS: usize = winograd4::XI;

/// Reused buffers of either tiling's input transform.
#[derive(Default)]
pub(crate) struct InputScratch {
    f2: winograd::InputScratch,
    f4: winograd4::InputScratch,
}

impl Tiling {
    /// The tiling of the 3x3 convolution `s`: F(4x4, 3x3) for outputs of at least
    /// [`F4_FROM`] x [`F4_FROM`] with at most [`F4_UP_TO_CHANNELS`] input channels, else
    /// F(2x2, 3x3). Measured at batch 128 on 2 threads, F(4x4, 3x3) takes 25-31% off
    /// vgg-bn's 48 x 48 layers and 9-18% off its 24 x 24 ones; smaller planes waste more of
    /// its slots (a quarter at 12 x 12), and its rounding grows with the channels: 7.5e-6 of
    /// the largest output at 128 channels on 24 x 24 (the tests hold it to 1e-5), 1.3e-5 at
    /// 256. A function of the shape only, so every path of a network takes the same one.
    pub(crate) fn for_shape(s: &ConvShape) -> Self {
        if s.out_h() >= F4_FROM && s.out_w() >= F4_FROM && s.cin <= F4_UP_TO_CHANNELS {
            Self::F4
        } else {
            Self::F2
        }
    }

    /// Positions of the transformed tile: 16 or 36.
    pub(crate) fn positions(self) -> usize {
        match self {
            Self::F2 => winograd::XI,
            Self::F4 => winograd4::XI,
        }
    }

    /// Slots of one plane of `s` in the transformed layouts.
    pub(crate) fn slots(self, s: &ConvShape) -> usize {
        match self {
            Self::F2 => winograd::slots(s),
            Self::F4 => winograd4::slots(s),
        }
    }

    /// `U` of some output channels' filters `g` (co, cin, 3, 3), channel by channel: `u` is
    /// (co, positions, cin); [`Tiling::positions_first`] gives the products' layout.
    pub(crate) fn transform_weights(self, g: &[f32], cin: usize, u: &mut [f32]) {
        match self {
            Self::F2 => winograd::transform_weights(g, cin, u),
            Self::F4 => winograd4::transform_weights(g, cin, u),
        }
    }

    /// Writes `block` ((rows, positions, cin), from [`Tiling::transform_weights`], for output
    /// channels from `co`) into `dst(xi)`: rows `co..co + rows` of position xi's matrix in
    /// the (positions, cout, cin) layout.
    pub(crate) fn positions_first<'a>(
        self,
        block: &[f32],
        cin: usize,
        mut dst: impl FnMut(usize) -> &'a mut [f32],
    ) {
        for xi in 0..self.positions() {
            self.position_of(block, cin, xi, dst(xi));
        }
    }

    /// Position `xi` of `block` ((rows, positions, cin), from [`Tiling::transform_weights`])
    /// into `out` (rows, cin): one position's matrix of [`Tiling::positions_first`]'s layout,
    /// for callers that spread the positions over threads.
    pub(crate) fn position_of(self, block: &[f32], cin: usize, xi: usize, out: &mut [f32]) {
        let positions = self.positions();
        let rows = block.len() / (positions * cin);
        assert_eq!(out.len(), rows * cin);
        for (r, row) in out.chunks_mut(cin).enumerate() {
            row.copy_from_slice(&block[(r * positions + xi) * cin..][..cin]);
        }
    }

    /// `V` of one input plane (h, w) of `s` into `v` (positions rows of slots).
    pub(crate) fn transform_input(
        self,
        plane: &[f32],
        s: &ConvShape,
        v: &mut [&mut [f32]],
        scratch: &mut InputScratch,
    ) {
        match self {
            Self::F2 => {
                let v: &mut [&mut [f32]; winograd::XI] = v.try_into().expect("16 positions");
                winograd::transform_input(plane, s, v, &mut scratch.f2)
            }
            Self::F4 => winograd4::transform_input(plane, s, v, &mut scratch.f4),
        }
    }

    /// One output plane (oh, ow) of `s` from its products `m` (positions rows of slots):
    /// the inverse transform, plus `bias`, then PReLU with `slope`. `rows` is scratch.
    pub(crate) fn inverse_transform(
        self,
        m: &[&[f32]],
        s: &ConvShape,
        bias: f32,
        slope: f32,
        out: &mut [f32],
        rows: &mut Vec<f32>,
    ) {
        match self {
            Self::F2 => {
                let m: &[&[f32]; winograd::XI] = m.try_into().expect("16 positions");
                rows.resize(12 * winograd::slots(s), 0.0);
                winograd::inverse_transform(m, s, bias, slope, out, rows)
            }
            Self::F4 => winograd4::inverse_transform(m, s, bias, slope, out, rows),
        }
    }

    /// The gradient of the products of one image, channels last: `dm[xi]` (slots, channels)
    /// from `dy_t` (oh * ow, channels), the gradient of the convolution's output.
    pub(crate) fn transform_output_gradient(
        self,
        dy_t: &[f32],
        s: &ConvShape,
        dm: &mut [&mut [f32]],
    ) {
        match self {
            Self::F2 => {
                let dm: &mut [&mut [f32]; winograd::XI] = dm.try_into().expect("16 positions");
                winograd::transform_output_gradient(dy_t, s, dm)
            }
            Self::F4 => winograd4::transform_output_gradient(dy_t, s, dm),
        }
    }

    /// The gradient of a 3x3 filter (row-major) from the gradient `du` of its transform
    /// (one value per position).
    pub(crate) fn filter_gradient(self, du: &[f32]) -> [f32; 9] {
        match self {
            Self::F2 => winograd::filter_gradient(du.try_into().expect("16 positions")),
            Self::F4 => winograd4::filter_gradient(du.try_into().expect("36 positions")),
        }
    }

    /// Output channel `co` of image `image` of a group into `out` (oh, ow), from the products
    /// `m` (positions, cout, group x slots): the inverse transform, `bias`, then PReLU with
    /// `slope`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn output_channel(
        self,
        m: &[f32],
        s: &ConvShape,
        group: usize,
        image: usize,
        co: usize,
        bias: f32,
        slope: f32,
        out: &mut [f32],
        rows: &mut Vec<f32>,
    ) {
        let (positions, len) = (self.positions(), self.slots(s));
        let n = group * len;
        assert_eq!(m.len(), positions * s.cout * n);
        let position: [&[f32]; MAX_POSITIONS] = std::array::from_fn(|xi| match xi < positions {
            true => &m[(xi * s.cout + co) * n + image * len..][..len],
            false => &[],
        });
        self.inverse_transform(&position[..positions], s, bias, slope, out, rows)
    }
}

/// The products of position `position` for every output channel: `m` (cout, n) =
/// `U[position]` (from `u`, (positions, cout, cin)) times `V[position]` (from `v`,
/// (positions, cin, n)), `n` being the slots of one image or of a group of them.
pub(crate) fn products(
    u: &[f32],
    v: &[f32],
    s: &ConvShape,
    n: usize,
    position: usize,
    m: &mut [f32],
) {
    assert_eq!(m.len(), s.cout * n);
    matmul(
        (s.cout, n, s.cin),
        m,
        n,
        false,
        &u[position * s.cout * s.cin..][..s.cout * s.cin],
        (s.cin, 1),
        &v[position * s.cin * n..][..s.cin * n],
        (n, 1),
        Parallelism::None,
    );
}

/// The rows of a (positions, channels, group x len) buffer that each input plane's transform
/// writes, one plane at a time in buffer order ((channel, image) = (index / group, index %
/// group); with one channel: an image's rows of a (positions, images x len) buffer): the
/// plane's `positions` rows, one per position. No table of every row is built: each
/// position's rows are taken in turn from its own part of the buffer, into one reused list
/// ([`PositionRows::next_rows`]); as an [`Iterator`], padded with empty rows up to
/// [`MAX_POSITIONS`].
pub(crate) struct PositionRows<'a> {
    /// The buffer's first value.
    base: *mut f32,
    /// Values in each position's part, and in each row.
    per_position: usize,
    len: usize,
    positions: usize,
    /// Rows in each position's part (planes), and the next plane's index.
    planes: usize,
    next: usize,
    /// The current plane's rows.
    rows: Vec<&'a mut [f32]>,
    _buffer: PhantomData<&'a mut [f32]>,
}

impl<'a> PositionRows<'a> {
    /// `buffer` as `positions` equal parts, each of rows of `len` values.
    pub(crate) fn new(buffer: &'a mut [f32], positions: usize, len: usize) -> Self {
        assert!((1..=MAX_POSITIONS).contains(&positions) && len > 0);
        assert_eq!(
            buffer.len() % (positions * len),
            0,
            "whole rows per position"
        );
        let per_position = buffer.len() / positions;
        Self {
            base: buffer.as_mut_ptr(),
            per_position,
            len,
            positions,
            planes: per_position / len,
            next: 0,
            rows: Vec::with_capacity(positions),
            _buffer: PhantomData,
        }
    }

    /// The next plane's rows, one per position (none left, or an empty buffer: `None`). The
    /// list is refilled in place for each plane, each row at an offset from the buffer's
    /// start: the hot loops call this once per plane, and advancing a sub-slice iterator per
    /// position instead took 4.5% of vgg-bn's width-32 training step (perf), this 2.2%.
    pub(crate) fn next_rows(&mut self) -> Option<&mut [&'a mut [f32]]> {
        if self.next == self.planes {
            return None;
        }
        let offset = self.next * self.len;
        self.next += 1;
        let (base, per_position, len) = (self.base, self.per_position, self.len);
        self.rows.clear();
        self.rows.extend((0..self.positions).map(|xi| {
            // SAFETY: row `offset / len` (< planes) of position xi's part lies inside the
            // buffer, which is borrowed mutably for 'a; each (position, plane) row is a
            // distinct range, handed out once, since `next` only grows.
            unsafe { std::slice::from_raw_parts_mut(base.add(xi * per_position + offset), len) }
        }));
        Some(&mut self.rows[..])
    }
}

impl<'a> Iterator for PositionRows<'a> {
    type Item = [&'a mut [f32]; MAX_POSITIONS];

    fn next(&mut self) -> Option<Self::Item> {
        let rows = self.next_rows()?;
        let mut owned: [&'a mut [f32]; MAX_POSITIONS] = std::array::from_fn(|_| Default::default());
        for (owned, row) in owned.iter_mut().zip(rows) {
            *owned = std::mem::take(row);
        }
        Some(owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Plane `index`'s row of position `xi` is the buffer's row `index` of that position's
    /// part, for as many planes as the buffer holds (none for an empty buffer); the rows past
    /// `positions` are empty.
    #[test]
    fn position_rows_take_each_planes_row_of_every_position() {
        let (positions, planes, len) = (16, 6, 3);
        let mut buffer = vec![f32::NAN; positions * planes * len];
        let mut count = 0;
        for (index, mut rows) in PositionRows::new(&mut buffer, positions, len).enumerate() {
            assert!(rows[positions..].iter().all(|row| row.is_empty()));
            for (xi, row) in rows[..positions].iter_mut().enumerate() {
                row.fill((100 * index + xi) as f32);
            }
            count += 1;
        }
        assert_eq!(count, planes);
        assert_eq!(PositionRows::new(&mut [], positions, len).count(), 0);
        assert!(
            PositionRows::new(&mut [], positions, len)
                .next_rows()
                .is_none()
        );
        // The reused list: the same rows, `positions` of them per plane.
        let mut again = vec![0f32; buffer.len()];
        let mut rows = PositionRows::new(&mut again, positions, len);
        let mut index = 0;
        while let Some(plane) = rows.next_rows() {
            assert_eq!(plane.len(), positions);
            for (xi, row) in plane.iter_mut().enumerate() {
                row.fill((100 * index + xi) as f32);
            }
            index += 1;
        }
        assert_eq!(index, planes);
        assert_eq!(again, buffer);
        for (at, value) in buffer.iter().enumerate() {
            let (xi, index) = (at / (planes * len), at % (planes * len) / len);
            assert_eq!(*value, (100 * index + xi) as f32, "value {at}");
        }
    }

    /// One image through either tiling (weights, positions first, input, products, output
    /// channels) against the im2col convolution + PReLU, within 1e-5 of the largest output:
    /// the seed CNN's shapes, vgg-bn's 48 x 48 and 24 x 24 ones (the F(4x4, 3x3) shapes),
    /// odd sizes (partial tiles) and no padding.
    #[test]
    fn one_image_by_either_tiling_matches_im2col() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
        let shapes = [
            (64, 22, 22, 64, 1),
            (128, 10, 10, 128, 1),
            (5, 7, 9, 6, 1),
            (3, 6, 5, 4, 0),
            (32, 48, 48, 32, 1),
            (128, 24, 24, 64, 1),
            (9, 25, 27, 7, 1),
            (8, 26, 30, 8, 0),
        ];
        let mut tilings_seen = Vec::new();
        for (cin, h, w, cout, pad) in shapes {
            let s = ConvShape {
                batch: 1,
                cin,
                h,
                w,
                cout,
                k: 3,
                pad,
            };
            let mut r = |n: usize| {
                (0..n)
                    .map(|_| rng.random_range(-1.0f32..1.0))
                    .collect::<Vec<_>>()
            };
            let (x, g, bias, alpha) = (r(cin * h * w), r(cout * cin * 9), r(cout), r(cout));
            let hw = s.out_h() * s.out_w();
            let mut expected = vec![0f32; cout * hw];
            crate::cpu::conv::conv2d_prelu_forward(&x, &g, &bias, &alpha, s, &mut expected);
            let tiling = Tiling::for_shape(&s);
            tilings_seen.push(tiling);
            let (positions, len) = (tiling.positions(), tiling.slots(&s));
            let mut channel_major = vec![0f32; cout * positions * cin];
            tiling.transform_weights(&g, cin, &mut channel_major);
            let mut u = vec![0f32; cout * positions * cin];
            let mut by_position = u.chunks_mut(cout * cin);
            tiling.positions_first(&channel_major, cin, |_| by_position.next().unwrap());
            let mut v = vec![0f32; positions * cin * len];
            let mut scratch = InputScratch::default();
            for (plane, mut rows) in x
                .chunks(h * w)
                .zip(PositionRows::new(&mut v, positions, len))
            {
                tiling.transform_input(plane, &s, &mut rows[..positions], &mut scratch);
            }
            let mut m = vec![0f32; positions * cout * len];
            for (xi, m) in m.chunks_mut(cout * len).enumerate() {
                products(&u, &v, &s, len, xi, m);
            }
            let mut out = vec![f32::NAN; cout * hw];
            let mut scratch = Vec::new();
            for (co, o) in out.chunks_mut(hw).enumerate() {
                tiling.output_channel(&m, &s, 1, 0, co, bias[co], alpha[co], o, &mut scratch);
            }
            let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs()));
            for (i, (a, b)) in out.iter().zip(&expected).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-5 * scale,
                    "{tiling:?} {s:?} output {i}: {a} vs {b}"
                );
            }
        }
        assert!(tilings_seen.contains(&Tiling::F2) && tilings_seen.contains(&Tiling::F4));
    }
}
