//! GEMM's A operand: a strided matrix, or a convolution's input windows read straight
//! from NHWC images (implicit im2col).
//!
//! For the windows, row i of A is output pixel i of a chunk of images and column p is
//! (tap, channel) — the row an im2col column matrix would hold — but the packing reads
//! the image itself, so no column matrix is written and read back.

use super::pack::{pack_panels, StridedMatrix};
use crate::conv::Geometry;

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
        let panel_len = width * cn;
        for (q, panel) in out
            .chunks_exact_mut(panel_len)
            .take(rn.div_ceil(width))
            .enumerate()
        {
            for i in 0..width {
                let row = r0 + q * width + i;
                if row >= r0 + rn {
                    for p in 0..cn {
                        panel[p * width + i] = 0.0;
                    }
                    continue;
                }
                let (n, pixel) = (row / pixels, row % pixels);
                let (oh, ow) = (pixel / g.w.output, pixel % g.w.output);
                let image = &self.images[n * self.image_len..(n + 1) * self.image_len];
                // Columns run tap by tap; within a tap, the group's channels are one
                // contiguous run of the pixel.
                let mut p = c0;
                while p < c0 + cn {
                    let (tap, c) = (p / cg, p % cg);
                    let run = (cg - c).min(c0 + cn - p);
                    let (r, s) = (tap / s_taps, tap % s_taps);
                    let dst = (p - c0) * width + i;
                    match (g.h.input_of(oh, r), g.w.input_of(ow, s)) {
                        (Some(ih), Some(iw)) => {
                            let at = (ih * g.w.input + iw) * self.channels + self.first_channel + c;
                            for (j, &v) in image[at..at + run].iter().enumerate() {
                                panel[dst + j * width] = v;
                            }
                        }
                        _ => {
                            for j in 0..run {
                                panel[dst + j * width] = 0.0;
                            }
                        }
                    }
                    p += run;
                }
            }
        }
    }
}
