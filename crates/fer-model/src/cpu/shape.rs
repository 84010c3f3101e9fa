//! The geometry of the CPU kernels' operations: a stride-1 convolution and a zero-padded pool.

/// Geometry of a stride-1 2-D convolution with zero padding `pad` on every side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConvShape {
    pub batch: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub k: usize,
    pub pad: usize,
}

impl ConvShape {
    pub fn out_h(&self) -> usize {
        self.h + 2 * self.pad + 1 - self.k
    }

    pub fn out_w(&self) -> usize {
        self.w + 2 * self.pad + 1 - self.k
    }

    /// Rows of the im2col matrix: cin * k * k.
    pub fn patch(&self) -> usize {
        self.cin * self.k * self.k
    }

    /// Whether the geometry is one these kernels compute (else the caller falls back).
    pub fn supported(&self) -> bool {
        self.k > 0
            && self.pad < self.k
            && self.h + 2 * self.pad >= self.k
            && self.w + 2 * self.pad >= self.k
            && self.batch * self.cin * self.cout > 0
    }

    /// Whether the convolution is a plain product (1x1, no padding): no im2col needed.
    pub fn direct(&self) -> bool {
        self.k == 1 && self.pad == 0
    }
}

/// Which reduction a pooling window applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolKind {
    Max,
    Avg,
}

/// Geometry of a pooling window over `planes` planes of h x w, zero-padded by `pad`
/// (`nn.ZeroPad2d(pad)` then the pool: padded zeros take part in the max and the average).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PoolShape {
    pub kind: PoolKind,
    pub planes: usize,
    pub h: usize,
    pub w: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
}

impl PoolShape {
    /// A max pool over 2 x 2 windows at stride 2, no padding (`nn.MaxPool2d(2)`: an odd last
    /// row or column is dropped), of `planes` planes of h x w.
    pub fn max_2x2(planes: usize, h: usize, w: usize) -> Self {
        PoolShape {
            kind: PoolKind::Max,
            planes,
            h,
            w,
            k: 2,
            stride: 2,
            pad: 0,
        }
    }

    pub fn out_h(&self) -> usize {
        (self.h + 2 * self.pad - self.k) / self.stride + 1
    }

    pub fn out_w(&self) -> usize {
        (self.w + 2 * self.pad - self.k) / self.stride + 1
    }

    /// In-image column range [x0, x1) of the window at output column ox.
    pub fn columns(&self, ox: usize) -> (usize, usize) {
        let start = ox * self.stride;
        let x0 = start.saturating_sub(self.pad).min(self.w);
        let x1 = (start + self.k)
            .saturating_sub(self.pad)
            .min(self.w)
            .max(x0);
        (x0, x1)
    }
}

/// Index marking a window maximum that is a padded zero.
pub(crate) const PADDED: u32 = u32::MAX;
