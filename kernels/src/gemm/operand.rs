//! GEMM's A operand: a strided matrix, or a convolution's input windows read straight
//! from NHWC images (implicit im2col).
//!
//! For the windows, row i of A is output pixel i of a chunk of images and column p is
//! (tap, channel) — the row an im2col column matrix would hold — but the packing reads
//! the image itself, so no column matrix is written and read back.

use super::pack::{pack_panels, StridedMatrix};
use super::pack_avx2::pack_six_rows;
use crate::conv::Geometry;

/// The tallest A micro-panel of any microkernel (the NEON kernel's 8 rows).
const MAX_WIDTH: usize = 8;

/// The A side of a GEMM.
#[derive(Clone, Copy)]
pub(crate) enum OperandA<'a> {
    Matrix(StridedMatrix<'a>),
    Windows(ImageWindows<'a>),
}

/// The windows of one convolution group over a chunk of consecutive NHWC images.
#[derive(Clone, Copy)]
pub(crate) struct ImageWindows<'a> {
    pub images: &'a [f32],
    pub image_len: usize,
    pub geometry: Geometry,
    /// Channels of a pixel in the image.
    pub channels: usize,
    /// The group's first channel and channel count.
    pub first_channel: usize,
    pub group_channels: usize,
}

impl OperandA<'_> {
    /// Packs rows `rows` and columns `cols` into `width`-row micro-panels (see
    /// [`pack_panels`]).
    pub fn pack(&self, rows: (usize, usize), cols: (usize, usize), width: usize, out: &mut [f32]) {
        match self {
            OperandA::Matrix(m) => pack_panels(*m, rows, cols, width, out),
            OperandA::Windows(w) => w.pack(rows, cols, width, out),
        }
    }
}

impl ImageWindows<'_> {
    /// Rows past the last pixel, and window positions in the padding, pack as zeros.
    fn pack(
        &self,
        (r0, rn): (usize, usize),
        (c0, cn): (usize, usize),
        width: usize,
        out: &mut [f32],
    ) {
        let g = &self.geometry;
        let (pixels, cg, s_taps) = (g.output_pixels(), self.group_channels, g.taps[1]);
        for (q, panel) in out
            .chunks_exact_mut(width * cn)
            .take(rn.div_ceil(width))
            .enumerate()
        {
            let first = r0 + q * width;
            let live = width.min(r0 + rn - first);
            // Each live row's image and output position.
            let row = |i: usize| {
                let (n, pixel) = ((first + i) / pixels, (first + i) % pixels);
                let image = &self.images[n * self.image_len..(n + 1) * self.image_len];
                (image, pixel / g.w.output, pixel % g.w.output)
            };
            let rows: [_; MAX_WIDTH] = std::array::from_fn(|i| (i < live).then(|| row(i)));
            // Columns run tap by tap; within a tap, the group's channels are one
            // contiguous run of each row's pixel (None in the padding or past the end).
            let mut p = c0;
            while p < c0 + cn {
                let (tap, c) = (p / cg, p % cg);
                let run = (cg - c).min(c0 + cn - p);
                let (r, s) = (tap / s_taps, tap % s_taps);
                let source = |i: usize| {
                    let (image, oh, ow) = rows[i]?;
                    let (ih, iw) = (g.h.input_of(oh, r)?, g.w.input_of(ow, s)?);
                    let at = (ih * g.w.input + iw) * self.channels + self.first_channel + c;
                    Some(&image[at..at + run])
                };
                let dst = &mut panel[(p - c0) * width..][..run * width];
                p += run;
                if width == 6 && live == 6 {
                    let six: [_; 6] = std::array::from_fn(source);
                    if let [Some(a), Some(b), Some(c), Some(d), Some(e), Some(f)] = six {
                        if pack_six_rows([a, b, c, d, e, f], run, dst) {
                            continue;
                        }
                    }
                }
                for i in 0..width {
                    match source(i) {
                        Some(values) => {
                            for (j, &v) in values.iter().enumerate() {
                                dst[j * width + i] = v;
                            }
                        }
                        None => {
                            for j in 0..run {
                                dst[j * width + i] = 0.0;
                            }
                        }
                    }
                }
            }
        }
    }
}
