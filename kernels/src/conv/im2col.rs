//! im2col and col2im: a convolution's input windows laid out as the columns (NCHW) or
//! rows (NHWC) of a matrix, so that the convolution becomes one GEMM — and back.
//!
//! NCHW, one image and one group of `cg` channels: the column matrix has a row per
//! (channel, tap r, tap s) and a column per output pixel (oh, ow); `Y = W · col`.
//! NHWC: a row per output pixel and a column per (tap r, tap s, channel); `Y = col · W'ᵀ`
//! with the weights in OHWI order. Positions in the padding read as zero.

use super::Conv2dDesc;
use crate::layout::transpose_images;
use std::ops::Range;

/// One spatial axis: how output positions and kernel taps meet input positions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Axis {
    pub input: usize,
    pub output: usize,
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
}

impl Axis {
    /// The input position that output `o` reads through tap `t`; `None` in the padding.
    #[inline]
    pub fn input_of(self, o: usize, t: usize) -> Option<usize> {
        (o * self.stride + t * self.dilation)
            .checked_sub(self.padding)
            .filter(|&i| i < self.input)
    }

    /// The outputs whose input through tap `t` lies inside the image (a contiguous range:
    /// the input position grows with the output position).
    pub fn valid_outputs(self, t: usize) -> Range<usize> {
        let offset = t * self.dilation;
        let lo = self.padding.saturating_sub(offset).div_ceil(self.stride);
        let hi = (self.input + self.padding)
            .saturating_sub(offset)
            .div_ceil(self.stride);
        let hi = hi.min(self.output);
        lo.min(hi)..hi
    }
}

/// The spatial geometry of a validated convolution.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    pub h: Axis,
    pub w: Axis,
    /// Kernel taps along height and width (R, S).
    pub taps: [usize; 2],
}

impl Geometry {
    /// The geometry of `desc`, which must have been validated.
    pub fn of(desc: &Conv2dDesc, output: [usize; 2]) -> Geometry {
        let axis = |d: usize| Axis {
            input: desc.input[d],
            output: output[d],
            stride: desc.stride[d],
            padding: desc.padding[d],
            dilation: desc.dilation[d],
        };
        Geometry {
            h: axis(0),
            w: axis(1),
            taps: desc.kernel,
        }
    }

    /// Input and output pixels per image.
    pub fn input_pixels(&self) -> usize {
        self.h.input * self.w.input
    }

    pub fn output_pixels(&self) -> usize {
        self.h.output * self.w.output
    }

    /// Kernel taps per channel (R·S).
    pub fn taps(&self) -> usize {
        self.taps[0] * self.taps[1]
    }

    /// Whether the convolution reads every input pixel once, in place: a 1×1 kernel with
    /// stride 1 and no padding, where the column matrix is the image itself.
    pub fn is_pointwise(&self) -> bool {
        self.taps == [1, 1]
            && self.h.stride == 1
            && self.w.stride == 1
            && self.h.padding == 0
            && self.w.padding == 0
    }
}

/// Where one image's block of an NCHW column matrix lives: row `i` of the block is the
/// `output_pixels` floats at `i · row_stride + offset` (images of a chunk sit side by side).
#[derive(Clone, Copy)]
pub(crate) struct ColumnBlock {
    pub row_stride: usize,
    pub offset: usize,
}

/// Column matrix (rows (c, r, s), columns (oh, ow)) of channels `c0 .. c0 + cg` of one
/// NCHW image, written into `block` of `col`.
pub(crate) fn im2col_nchw(
    g: &Geometry,
    image: &[f32],
    (c0, cg): (usize, usize),
    col: &mut [f32],
    block: ColumnBlock,
) {
    walk_nchw(g, (c0, cg), col, block, |start, step, out| {
        if step == 1 {
            copy_run(out, &image[start..start + out.len()]);
        } else {
            for (o, v) in out.iter_mut().zip(image[start..].iter().step_by(step)) {
                *o = *v;
            }
        }
    });
}

/// Adds the block of a column matrix laid out as [`im2col_nchw`] writes it back into
/// the image (overlapping windows accumulate).
pub(crate) fn col2im_nchw(
    g: &Geometry,
    col: &mut [f32],
    block: ColumnBlock,
    (c0, cg): (usize, usize),
    image: &mut [f32],
) {
    walk_nchw(g, (c0, cg), col, block, |start, step, values| {
        let run = image[start..].iter_mut().step_by(step);
        for (d, v) in run.zip(values.iter()) {
            *d += *v;
        }
    });
}

/// Column matrix (rows (oh, ow), columns (r, s, c)) of channels `c0 .. c0 + cg` of one
/// NHWC image with `channels` channels.
pub(crate) fn im2col_nhwc(
    g: &Geometry,
    image: &[f32],
    (c0, cg, channels): (usize, usize, usize),
    col: &mut [f32],
) {
    walk_nhwc(g, (c0, cg, channels), col, |start, out| {
        copy_run(out, &image[start..start + out.len()]);
    });
}

/// Adds a column matrix laid out as [`im2col_nhwc`] writes it back into the image.
pub(crate) fn col2im_nhwc(
    g: &Geometry,
    col: &mut [f32],
    (c0, cg, channels): (usize, usize, usize),
    image: &mut [f32],
) {
    walk_nhwc(g, (c0, cg, channels), col, |start, values| {
        for (d, v) in image[start..start + values.len()]
            .iter_mut()
            .zip(values.iter())
        {
            *d += *v;
        }
    });
}

/// `out = src` for the short runs of small images and narrow channel groups: runs of up
/// to 32 floats are copied in fixed-size pieces that stay in registers, since a call to
/// `memcpy` for a handful of floats costs more than the copy (it dominated im2col on
/// 5×5 images).
#[inline]
pub(crate) fn copy_run(out: &mut [f32], src: &[f32]) {
    if out.len() > 32 {
        out.copy_from_slice(src);
        return;
    }
    let mut out_blocks = out.chunks_exact_mut(8);
    let mut src_blocks = src.chunks_exact(8);
    for (o, s) in (&mut out_blocks).zip(&mut src_blocks) {
        copy_fixed::<8>(o, s);
    }
    let (out, src) = (out_blocks.into_remainder(), src_blocks.remainder());
    let mut at = 0;
    for width in [4, 2, 1] {
        if out.len() - at >= width {
            match width {
                4 => copy_fixed::<4>(&mut out[at..at + 4], &src[at..at + 4]),
                2 => copy_fixed::<2>(&mut out[at..at + 2], &src[at..at + 2]),
                _ => out[at] = src[at],
            }
            at += width;
        }
    }
}

#[inline(always)]
fn copy_fixed<const N: usize>(out: &mut [f32], src: &[f32]) {
    let out: &mut [f32; N] = out.try_into().expect("N floats");
    *out = src.try_into().expect("N floats");
}

/// Visits the NCHW column matrix: zeroes the entries that fall in the padding and hands
/// `run(image_start, image_step, entries)` every run of entries that maps to image
/// pixels `image_start, image_start + image_step, …`.
fn walk_nchw(
    g: &Geometry,
    (c0, cg): (usize, usize),
    col: &mut [f32],
    block: ColumnBlock,
    mut run: impl FnMut(usize, usize, &mut [f32]),
) {
    let (plane, out_w, pixels) = (g.input_pixels(), g.w.output, g.output_pixels());
    let [taps_r, taps_s] = g.taps;
    let mut index = 0;
    for c in 0..cg {
        let plane_start = (c0 + c) * plane;
        for r in 0..taps_r {
            for s in 0..taps_s {
                let start = index * block.row_stride + block.offset;
                let row = &mut col[start..start + pixels];
                index += 1;
                let cols = g.w.valid_outputs(s);
                for (oh, out) in row.chunks_exact_mut(out_w).enumerate() {
                    let Some(ih) = g.h.input_of(oh, r) else {
                        out.fill(0.0);
                        continue;
                    };
                    out[..cols.start].fill(0.0);
                    out[cols.end..].fill(0.0);
                    if !cols.is_empty() {
                        let first = cols.start * g.w.stride + s * g.w.dilation - g.w.padding;
                        run(
                            plane_start + ih * g.w.input + first,
                            g.w.stride,
                            &mut out[cols.clone()],
                        );
                    }
                }
            }
        }
    }
}

/// Visits the NHWC column matrix: zeroes the entries in the padding and hands
/// `run(image_start, entries)` each tap's `cg` contiguous channels.
fn walk_nhwc(
    g: &Geometry,
    (c0, cg, channels): (usize, usize, usize),
    col: &mut [f32],
    mut run: impl FnMut(usize, &mut [f32]),
) {
    let [taps_r, taps_s] = g.taps;
    let mut rows = col.chunks_exact_mut(g.taps() * cg);
    for oh in 0..g.h.output {
        for ow in 0..g.w.output {
            let row = rows
                .next()
                .expect("the column matrix has a row per output pixel");
            for (r, taps) in row.chunks_exact_mut(taps_s * cg).enumerate().take(taps_r) {
                let ih = g.h.input_of(oh, r);
                for (s, seg) in taps.chunks_exact_mut(cg).enumerate() {
                    match (ih, g.w.input_of(ow, s)) {
                        (Some(ih), Some(iw)) => run((ih * g.w.input + iw) * channels + c0, seg),
                        _ => seg.fill(0.0),
                    }
                }
            }
        }
    }
}

/// Reorders OIHW weights (`k × cg × R × S`) into OHWI (`k × R × S × cg`), the order of an
/// NHWC column row: each output channel's `cg × taps` block transposed.
pub(crate) fn oihw_to_ohwi(w: &[f32], (k, cg, taps): (usize, usize, usize), out: &mut [f32]) {
    let len = k * cg * taps;
    transpose_images(&w[..len], cg, taps, &mut out[..len]);
}

/// The inverse of [`oihw_to_ohwi`].
pub(crate) fn ohwi_to_oihw(w: &[f32], (k, cg, taps): (usize, usize, usize), out: &mut [f32]) {
    let len = k * cg * taps;
    transpose_images(&w[..len], taps, cg, &mut out[..len]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_outputs_match_input_of() {
        for (input, stride, padding, dilation, taps) in [
            (7, 1, 0, 1, 3),
            (7, 2, 1, 1, 3),
            (9, 3, 2, 2, 3),
            (4, 1, 3, 1, 7),
            (5, 2, 0, 3, 2),
        ] {
            let padded = input + 2 * padding;
            let extent = (taps - 1) * dilation + 1;
            let axis = Axis {
                input,
                output: (padded - extent) / stride + 1,
                stride,
                padding,
                dilation,
            };
            for t in 0..taps {
                let valid = axis.valid_outputs(t);
                for o in 0..axis.output {
                    assert_eq!(
                        valid.contains(&o),
                        axis.input_of(o, t).is_some(),
                        "{axis:?} tap {t} output {o}"
                    );
                }
            }
        }
    }

    #[test]
    fn copy_run_copies_every_length() {
        let src: Vec<f32> = (0..40).map(|i| i as f32).collect();
        for len in 0..40 {
            let mut out = [-1.0; 40];
            copy_run(&mut out[..len], &src[..len]);
            assert_eq!(&out[..len], &src[..len]);
            assert!(out[len..].iter().all(|&v| v == -1.0));
        }
    }

    #[test]
    fn weight_orders_round_trip() {
        let w: Vec<f32> = (0..2 * 3 * 4).map(|i| i as f32).collect();
        let mut ohwi = vec![0.0; w.len()];
        let mut back = vec![0.0; w.len()];
        oihw_to_ohwi(&w, (2, 3, 4), &mut ohwi);
        ohwi_to_oihw(&ohwi, (2, 3, 4), &mut back);
        assert_eq!(back, w);
        // (k 0, tap 1, channel 2) comes from (k 0, channel 2, tap 1).
        assert_eq!(ohwi[3 + 2], w[2 * 4 + 1]);
    }
}
