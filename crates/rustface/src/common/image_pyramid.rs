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

use std::cmp;

#[derive(Debug)]
pub struct ImageData<'a> {
    data: &'a [u8],
    width: u32,
    height: u32,
    num_channels: u32,
}

impl<'a> ImageData<'a> {
    #[inline]
    pub fn new(data: &'a [u8], width: u32, height: u32) -> Self {
        assert_eq!(data.len(), width as usize * height as usize);
        ImageData {
            data,
            width,
            height,
            num_channels: 1,
        }
    }

    #[inline]
    pub fn width(&self) -> u32 {
        self.width
    }

    #[inline]
    pub fn height(&self) -> u32 {
        self.height
    }

    #[inline]
    pub fn num_channels(&self) -> u32 {
        self.num_channels
    }

    #[inline]
    pub fn data(&self) -> &'a [u8] {
        self.data
    }
}

pub struct ImagePyramid {
    max_scale: f32,
    min_scale: f32,
    scale_factor: f32,
    scale_step: f32,
    width1x: u32,
    height1x: u32,
    width_scaled: u32,
    height_scaled: u32,
    img_buf: Vec<u8>,
    img_buf_scaled: Vec<u8>,
    img_buf_scaled_width: u32,
    img_buf_scaled_height: u32,
}

impl ImagePyramid {
    pub fn new() -> Self {
        let img_buf_scaled_width: u32 = 2;
        let img_buf_scaled_height: u32 = 2;

        ImagePyramid {
            max_scale: 1.0,
            min_scale: 1.0,
            scale_factor: 1.0,
            scale_step: 0.8,
            width1x: 0,
            height1x: 0,
            width_scaled: 0,
            height_scaled: 0,
            img_buf: Vec::new(),
            img_buf_scaled: Vec::with_capacity(
                (img_buf_scaled_width * img_buf_scaled_height) as usize,
            ),
            img_buf_scaled_width,
            img_buf_scaled_height,
        }
    }

    #[allow(dead_code)]
    pub fn set_max_scale(&mut self, max_scale: f32) {
        self.max_scale = max_scale;
        self.scale_factor = max_scale;
        self.update_buf_scaled();
    }

    #[inline]
    pub fn set_min_scale(&mut self, min_scale: f32) {
        self.min_scale = min_scale;
    }

    pub fn set_scale_step(&mut self, scale_step: f32) {
        if scale_step > 0.0 && scale_step <= 1.0 {
            self.scale_step = scale_step;
        }
    }

    #[inline]
    pub fn get_image_1x(&self) -> ImageData {
        ImageData::new(&self.img_buf, self.width1x, self.height1x)
    }

    pub fn set_image_1x(&mut self, img_data: &[u8], width: u32, height: u32) {
        self.width1x = width;
        self.height1x = height;

        self.img_buf.clear();
        self.img_buf.extend_from_slice(img_data);

        self.scale_factor = self.max_scale;
        self.update_buf_scaled();
    }

    fn update_buf_scaled(&mut self) {
        if self.width1x == 0 || self.height1x == 0 {
            return;
        }

        let max_width = (self.width1x as f32 * self.max_scale + 0.5) as u32;
        let max_height = (self.height1x as f32 * self.max_scale + 0.5) as u32;

        if max_width > self.img_buf_scaled_width || max_height > self.img_buf_scaled_height {
            self.img_buf_scaled_width = max_width;
            self.img_buf_scaled_height = max_height;
            self.img_buf_scaled = Vec::with_capacity((max_width * max_height) as usize);
        }
    }

    pub fn get_next_scale_image(&mut self) -> Option<(ImageData, f32)> {
        if self.scale_factor < self.min_scale {
            return None;
        }

        let scale_factor = self.scale_factor;
        self.width_scaled = (self.width1x as f32 * scale_factor) as u32;
        self.height_scaled = (self.height1x as f32 * scale_factor) as u32;

        let src = ImageData::new(&self.img_buf, self.width1x, self.height1x);
        resize_image(
            &src,
            &mut self.img_buf_scaled,
            self.width_scaled,
            self.height_scaled,
        );
        let img_scaled =
            ImageData::new(&self.img_buf_scaled, self.width_scaled, self.height_scaled);
        self.scale_factor *= self.scale_step;

        Some((img_scaled, scale_factor))
    }
}

/// Bilinear resize (SeetaFace's own, in f64). The column positions and weights are worked
/// out once per image instead of once per pixel and the rows are slices; every pixel is the
/// same expression as upstream's, so the results are upstream's bit for bit.
pub fn resize_image(src: &ImageData, dest: &mut Vec<u8>, width: u32, height: u32) {
    #[cfg(target_arch = "x86_64")]
    {
        if crate::math::has_avx2() {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { resize_image_avx2(src, dest, width, height) };
        }
    }
    resize_image_portable(src, dest, width, height);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn resize_image_avx2(src: &ImageData, dest: &mut Vec<u8>, width: u32, height: u32) {
    resize_image_portable(src, dest, width, height);
}

#[inline(always)]
fn resize_image_portable(src: &ImageData, dest: &mut Vec<u8>, width: u32, height: u32) {
    dest.clear();

    if src.width() == width && src.height() == height {
        dest.extend_from_slice(src.data());
        return;
    }
    dest.resize(width as usize * height as usize, 0);

    let lf_x_scl = f64::from(src.width()) / f64::from(width);
    let lf_y_scl = f64::from(src.height()) / f64::from(height);
    let src_width = src.width() as usize;
    let src_data = src.data();

    let columns: Vec<(usize, f64)> = (0..width)
        .map(|x| {
            let lf_x_s = lf_x_scl * f64::from(x);
            let n_x_s = cmp::min(lf_x_s as u32, src.width().saturating_sub(2));
            (n_x_s as usize, lf_x_s - f64::from(n_x_s))
        })
        .collect();

    // Each destination pixel is `(1 - wy) * top + wy * bottom`, where `top` and `bottom` are
    // the horizontal interpolations `(1 - wx) * d1 + wx * d2` of two source rows: those depend
    // on the source row only, so each is worked out once and kept while the next destination
    // row still needs it (the same values, so the same bits, as working them out per pixel).
    let source_row = |row: usize| &src_data[row * src_width..];
    let (mut top, mut bottom) = (vec![0.0; width as usize], vec![0.0; width as usize]);
    let (mut top_row, mut bottom_row) = (usize::MAX, usize::MAX);

    for (y, dest_row) in dest.chunks_exact_mut(width as usize).enumerate() {
        let lf_y_s = lf_y_scl * f64::from(y as u32);
        let n_y_s = cmp::min(lf_y_s as u32, src.height().saturating_sub(2));
        let lf_weight_y = lf_y_s - f64::from(n_y_s);
        let n_y_s = n_y_s as usize;

        if top_row != n_y_s {
            if bottom_row == n_y_s {
                std::mem::swap(&mut top, &mut bottom);
                bottom_row = usize::MAX;
            } else {
                interpolate_row(source_row(n_y_s), &columns, &mut top);
            }
            top_row = n_y_s;
        }
        if bottom_row != n_y_s + 1 {
            interpolate_row(source_row(n_y_s + 1), &columns, &mut bottom);
            bottom_row = n_y_s + 1;
        }

        for ((dest, &top), &bottom) in dest_row.iter_mut().zip(&top).zip(&bottom) {
            let dest_val = (1.0 - lf_weight_y) * top + lf_weight_y * bottom;
            *dest = dest_val as u8;
        }
    }
}

/// `(1 - wx) * row[x0] + wx * row[x0 + 1]` for each destination column's `(x0, wx)`.
#[inline(always)]
fn interpolate_row(row: &[u8], columns: &[(usize, f64)], out: &mut [f64]) {
    for (out, &(n_x_s, lf_weight_x)) in out.iter_mut().zip(columns) {
        *out =
            (1.0 - lf_weight_x) * f64::from(row[n_x_s]) + lf_weight_x * f64::from(row[n_x_s + 1]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Upstream 0.1.7's `resize_image`, verbatim but for `Vec::resize` in place of
    /// `reserve` + `set_len`.
    fn upstream_resize_image(src: &ImageData, dest: &mut Vec<u8>, width: u32, height: u32) {
        dest.clear();

        if src.width() == width && src.height() == height {
            dest.extend_from_slice(src.data());
            return;
        }

        dest.resize(width as usize * height as usize, 0);

        let dest = dest.as_mut_ptr();
        let src_data = src.data().as_ptr();

        let lf_x_scl = f64::from(src.width()) / f64::from(width);
        let lf_y_scl = f64::from(src.height()) / f64::from(height);

        unsafe {
            for y in 0..height {
                for x in 0..width {
                    let lf_x_s = lf_x_scl * f64::from(x);
                    let lf_y_s = lf_y_scl * f64::from(y);

                    let n_x_s = cmp::min(lf_x_s as u32, src.width() - 2);
                    let n_y_s = cmp::min(lf_y_s as u32, src.height() - 2);

                    let lf_weight_x = lf_x_s - f64::from(n_x_s);
                    let lf_weight_y = lf_y_s - f64::from(n_y_s);

                    let d1 = f64::from(*src_data.offset((n_y_s * src.width() + n_x_s) as isize));
                    let d2 =
                        f64::from(*src_data.offset((n_y_s * src.width() + n_x_s + 1) as isize));
                    let d3 =
                        f64::from(*src_data.offset(((n_y_s + 1) * src.width() + n_x_s) as isize));
                    let d4 = f64::from(
                        *src_data.offset(((n_y_s + 1) * src.width() + n_x_s + 1) as isize),
                    );

                    let dest_val = (1.0 - lf_weight_y)
                        * ((1.0 - lf_weight_x) * d1 + lf_weight_x * d2)
                        + lf_weight_y * ((1.0 - lf_weight_x) * d3 + lf_weight_x * d4);

                    *dest.offset((y * width + x) as isize) = dest_val as u8;
                }
            }
        }
    }

    #[test]
    fn resizes_are_upstreams() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let pixels: Vec<u8> = (0..301 * 203)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 56) as u8
            })
            .collect();
        let src = ImageData::new(&pixels, 301, 203);
        // The pyramid's steps (0.8) and the windows' resizes to 40x40, up and down.
        for &(width, height) in &[
            (240, 162),
            (192, 129),
            (40, 40),
            (500, 400),
            (301, 203),
            (2, 2),
        ] {
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            resize_image(&src, &mut ours, width, height);
            upstream_resize_image(&src, &mut theirs, width, height);
            assert_eq!(ours.len(), (width * height) as usize);
            assert_eq!(ours, theirs, "{width}x{height}");
        }
    }
}
