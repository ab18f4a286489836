//! NCHW calls that run faster through NHWC: the images move to NHWC, the NHWC path runs,
//! and the result moves back.
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

use super::{Conv2dDesc, Plan};
use crate::layout::{transpose_images, Layout};
use crate::parallel::{for_each_chunk_mut, Parallelism};
use crate::workspace::{with_buffer, Buffer};

/// One input channel is the direct kernels' (in NHWC) or a shallow im2col (in NCHW),
/// both faster where they are; groups keep their own per-group layouts.
const MIN_CHANNELS: usize = 16;

/// Images with more output pixels than this stay in NCHW.
const MAX_OUTPUT_PIXELS: usize = 144;

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

/// The descriptor of the same call in NHWC.
pub(super) fn nhwc(desc: &Conv2dDesc) -> Conv2dDesc {
    desc.layout(Layout::Nhwc)
}

/// Sizes of one image's planes: (input pixels, output pixels).
pub(super) fn planes(plan: &Plan) -> (usize, usize) {
    (plan.geometry.input_pixels(), plan.geometry.output_pixels())
}

/// Floats of the buffers a call keeps: the input and the output in NHWC.
pub(super) fn workspace_len(plan: &Plan) -> usize {
    let (input, output) = planes(plan);
    plan.desc.batch * (plan.desc.in_channels * input + plan.desc.out_channels * output)
}

/// Runs `f` on an input-side tensor `src` (NCHW images of `channels` planes of
/// `pixels`) moved to NHWC, in this thread's buffer of kind `buffer`.
pub(super) fn with_nhwc<R>(
    buffer: Buffer,
    src: &[f32],
    channels: usize,
    pixels: usize,
    par: Parallelism,
    f: impl FnOnce(&[f32]) -> R,
) -> R {
    with_buffer(buffer, src.len(), |nhwc| {
        move_images(src, channels, pixels, nhwc, par);
        f(nhwc)
    })
}

/// Runs `f` to write the output-side tensor `dst` (NCHW images of `channels` planes of
/// `pixels`) as NHWC into this thread's staging buffer, then moves it to `dst`; what `f`
/// returns is passed on (an error leaves `dst` untouched).
pub(super) fn into_nchw<R, E>(
    dst: &mut [f32],
    channels: usize,
    pixels: usize,
    par: Parallelism,
    f: impl FnOnce(&mut [f32]) -> Result<R, E>,
) -> Result<R, E> {
    with_buffer(Buffer::Staging, dst.len(), |nhwc| {
        let result = f(nhwc)?;
        move_images(nhwc, pixels, channels, dst, par);
        Ok(result)
    })
}

/// The images of `src` (each a `rows × cols` matrix) transposed into `dst`, the images
/// spread over the threads.
fn move_images(src: &[f32], rows: usize, cols: usize, dst: &mut [f32], par: Parallelism) {
    let image = rows * cols;
    if image == 0 {
        return;
    }
    const IMAGES_PER_ITEM: usize = 4;
    for_each_chunk_mut(par, dst, IMAGES_PER_ITEM * image, |i, dst| {
        let src = &src[i * IMAGES_PER_ITEM * image..][..dst.len()];
        transpose_images(src, rows, cols, dst);
    });
}
