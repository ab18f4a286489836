//! NCHW calls that run faster through NHWC: the images move to NHWC, the NHWC path runs,
//! and the result moves back. The moves themselves ([`as_nhwc`], [`written_as_nhwc`])
//! also serve Winograd, whose tile kernels read and write NHWC.
//!
//! In NCHW each image is a GEMM operand of its own shape (channels × pixels), so small
//! images make short, awkward GEMMs whose output has to be regrouped per image; in NHWC
//! a chunk of images is one tall matrix of pixels. The moves cost two passes over the
//! tensors (in per-thread buffers the size of the input and of the output), which only
//! pays on small images. Measured on the default layers, 1 thread, forward / backward-
//! data / backward-weights: 64→64 on 5×5 images (9 output pixels) 1.16 / 1.18 / 1.25 ms
//! → 0.70 / 0.59 / 0.60 ms; conv2's backward-data (121) 5.0 → 4.4 ms; but the ResNet
//! stride-2 layers (256 output pixels, 32×32 inputs) 16–18 → 18–19 ms and 2.1–2.9 →
//! 5.2–6.4 ms (1×1).

use super::{
    conv2d_backward_data_on, conv2d_backward_weights_on, conv2d_forward_on, ConvEpilogue, Plan,
};
use crate::arch::Isa;
use crate::error::Result;
use crate::layout::{transpose_images, Layout};
use crate::parallel::{for_each_chunk_mut, Parallelism};
use crate::workspace::{with_buffer, Buffer};

/// One input channel is the direct kernels' (in NHWC) or a shallow im2col (in NCHW),
/// both faster where they are; groups keep their own per-group layouts.
const MIN_CHANNELS: usize = 16;

/// Images with more output pixels than this stay in NCHW.
const MAX_OUTPUT_PIXELS: usize = 144;

/// Images one thread moves at a time.
const IMAGES_PER_ITEM: usize = 4;

/// Whether an NCHW call of `plan` (a pass that neither Winograd nor the direct kernels
/// take, as the caller has checked) runs through NHWC: small images, 16+ channels.
pub(super) fn applies(plan: &Plan) -> bool {
    let d = &plan.desc;
    plan.nchw()
        && d.groups == 1
        && d.in_channels >= MIN_CHANNELS
        && !plan.geometry.is_pointwise()
        && plan.geometry.output_pixels() <= MAX_OUTPUT_PIXELS
}

/// Floats of the buffers a call keeps: the input and the output in NHWC.
pub(super) fn workspace_len(plan: &Plan) -> usize {
    let g = &plan.geometry;
    plan.desc.batch
        * (plan.desc.in_channels * g.input_pixels() + plan.desc.out_channels * g.output_pixels())
}

/// [`conv2d_forward_on`] of an NCHW `plan` that [`applies`], through NHWC.
pub(super) fn forward(
    isa: Isa,
    plan: &Plan,
    x: &[f32],
    w: &[f32],
    epilogue: ConvEpilogue<'_>,
    y: &mut [f32],
    par: Parallelism,
) -> Result<()> {
    let (d, g) = (&plan.desc, &plan.geometry);
    let nhwc = d.layout(Layout::Nhwc);
    let input = (Buffer::Relayout, d.in_channels, g.input_pixels());
    let output = (Buffer::Staging, d.out_channels, g.output_pixels());
    as_nhwc(Layout::Nchw, input, x, par, |x| {
        written_as_nhwc(Layout::Nchw, output, y, par, |y| {
            conv2d_forward_on(isa, &nhwc, x, w, epilogue, y, par)
        })
    })
}

/// [`conv2d_backward_data_on`] of an NCHW `plan` that [`applies`], through NHWC.
pub(super) fn backward_data(
    isa: Isa,
    plan: &Plan,
    dy: &[f32],
    w: &[f32],
    dx: &mut [f32],
    par: Parallelism,
) -> Result<()> {
    let (d, g) = (&plan.desc, &plan.geometry);
    let nhwc = d.layout(Layout::Nhwc);
    let gradient = (Buffer::Relayout, d.out_channels, g.output_pixels());
    let input = (Buffer::Staging, d.in_channels, g.input_pixels());
    as_nhwc(Layout::Nchw, gradient, dy, par, |dy| {
        written_as_nhwc(Layout::Nchw, input, dx, par, |dx| {
            conv2d_backward_data_on(isa, &nhwc, dy, w, dx, par)
        })
    })
}

/// [`conv2d_backward_weights_on`] of an NCHW `plan` that [`applies`], through NHWC.
pub(super) fn backward_weights(
    isa: Isa,
    plan: &Plan,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    par: Parallelism,
) -> Result<()> {
    let (d, g) = (&plan.desc, &plan.geometry);
    let nhwc = d.layout(Layout::Nhwc);
    let input = (Buffer::Relayout, d.in_channels, g.input_pixels());
    let gradient = (Buffer::Staging, d.out_channels, g.output_pixels());
    as_nhwc(Layout::Nchw, input, x, par, |x| {
        as_nhwc(Layout::Nchw, gradient, dy, par, |dy| {
            conv2d_backward_weights_on(isa, &nhwc, x, dy, dw, db, par)
        })
    })
}

/// Where a tensor moves and its shape: the per-thread buffer it moves into, and the
/// channels and pixels of each of its images.
pub(super) type Planes = (Buffer, usize, usize);

/// Runs `f` on `images` in NHWC: themselves when `layout` is NHWC, else (NCHW) moved to
/// NHWC in this thread's buffer of the kind `planes` names, the images spread over
/// `par`'s threads.
pub(super) fn as_nhwc<R>(
    layout: Layout,
    (buffer, channels, pixels): Planes,
    images: &[f32],
    par: Parallelism,
    f: impl FnOnce(&[f32]) -> R,
) -> R {
    match layout {
        Layout::Nhwc => f(images),
        Layout::Nchw => with_buffer(buffer, images.len(), |nhwc| {
            move_images(images, channels, pixels, nhwc, par);
            f(nhwc)
        }),
    }
}

/// Runs `f` to write `images` as NHWC: into them when `layout` is NHWC, else into this
/// thread's buffer of the kind `planes` names, then moved to NCHW. What `f` returns is
/// passed on; an error leaves `images` untouched.
pub(super) fn written_as_nhwc<R, E>(
    layout: Layout,
    (buffer, channels, pixels): Planes,
    images: &mut [f32],
    par: Parallelism,
    f: impl FnOnce(&mut [f32]) -> std::result::Result<R, E>,
) -> std::result::Result<R, E> {
    match layout {
        Layout::Nhwc => f(images),
        Layout::Nchw => with_buffer(buffer, images.len(), |nhwc| {
            let result = f(nhwc)?;
            move_images(nhwc, pixels, channels, images, par);
            Ok(result)
        }),
    }
}

/// The images of `src` (each a `rows × cols` matrix) transposed into `dst`, the images
/// spread over the threads.
fn move_images(src: &[f32], rows: usize, cols: usize, dst: &mut [f32], par: Parallelism) {
    let image = rows * cols;
    if image == 0 {
        return;
    }
    for_each_chunk_mut(par, dst, IMAGES_PER_ITEM * image, |i, dst| {
        let src = &src[i * IMAGES_PER_ITEM * image..][..dst.len()];
        transpose_images(src, rows, cols, dst);
    });
}
