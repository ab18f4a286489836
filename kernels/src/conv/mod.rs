//! 2-D convolution: forward, backward-data and backward-weights, NCHW and NHWC, any
//! stride, padding, dilation and groups.
//!
//! Each image and group is one GEMM over its im2col column matrix (`im2col.rs`):
//! forward `Y = W · col(X)` with bias and activation fused into the GEMM's store,
//! backward-data `dX = col2im(Wᵀ · dY)`, backward-weights `dW = Σₙ dYₙ · col(Xₙ)ᵀ`.
//! Pointwise convolutions (1×1, stride 1, no padding) use the image itself as the
//! column matrix. 3×3 stride-1 layers with 16+ channels take Winograd's F(4×4, 3×3)
//! where its 4×4 tiles serve the output well: covering it, or filling its inside while
//! the edge strips left over run as a small im2col GEMM (`winograd/`; NCHW images move
//! to NHWC and back a block at a time). Other NCHW layers with 16+ input channels and small
//! images run through the NHWC path (`relayout.rs`). One-channel inputs in NHWC (a
//! grayscale network's first layer) skip the shallow K = R·S GEMM for direct kernels
//! (`direct_c1.rs`). Threads take whole images when the batch has enough of them, and
//! the GEMMs' row and column blocks otherwise; sums never split, so results are
//! bitwise identical for every thread count.

mod backward_data;
mod backward_weights;
mod desc;
mod direct_c1;
mod forward;
mod im2col;
mod relayout;
mod winograd;

pub use backward_data::{conv2d_backward_data, conv2d_backward_data_on};
pub use backward_weights::{
    conv2d_backward_weights, conv2d_backward_weights_on, conv2d_backward_weights_relu,
    conv2d_backward_weights_relu_on,
};
pub use desc::Conv2dDesc;
pub use forward::{conv2d_forward, conv2d_forward_on, ConvEpilogue};

use crate::error::{check_exact, Result};
use crate::layout::Layout;
use crate::parallel::Parallelism;
pub(crate) use im2col::Geometry;

/// Output pixels a batched GEMM should reach: images are grouped into chunks until
/// their pixels fill this many GEMM columns (NCHW) or rows (NHWC).
const TARGET_CHUNK_PIXELS: usize = 512;

/// Backward-weights sums over the chunk's pixels (its GEMM's reduction), so a larger
/// chunk means fewer passes over dW: it targets this many pixels.
const TARGET_WEIGHT_CHUNK_PIXELS: usize = 4096;

/// The most floats a chunk's column matrix may take (4 MiB).
const MAX_CHUNK_COLUMNS: usize = 1 << 20;

/// Sizes of one call, checked against the slices.
#[derive(Clone, Copy)]
struct Plan {
    desc: Conv2dDesc,
    geometry: Geometry,
    /// Elements of one input image and one output image.
    input_len: usize,
    output_len: usize,
    /// Channels of one group: input, output.
    cg: usize,
    kg: usize,
    /// Images batched into one GEMM. Depends on the shapes only — never on the thread
    /// count — so that sums over the batch run in the same order everywhere.
    images_per_chunk: usize,
    /// The same for backward-weights, whose GEMMs sum over the chunk.
    images_per_weight_chunk: usize,
}

impl Plan {
    /// Validates `desc` and the lengths of the input, weight and output tensors.
    fn new(desc: &Conv2dDesc, x_len: usize, w_len: usize, y_len: usize) -> Result<Plan> {
        desc.validate()?;
        let output = desc.output_hw()?;
        let geometry = Geometry::of(desc, output);
        let input_len = desc.in_channels * geometry.input_pixels();
        let output_len = desc.out_channels * geometry.output_pixels();
        check_exact("conv2d input x", desc.batch * input_len, x_len)?;
        check_exact("conv2d weights (OIHW)", desc.weight_len(), w_len)?;
        check_exact("conv2d output y", desc.batch * output_len, y_len)?;
        let cg = desc.channels_per_group();
        let pixels = geometry.output_pixels();
        let col_len = cg * geometry.taps() * pixels;
        let chunk = |target: usize| {
            let wanted = target.div_ceil(pixels.max(1));
            let fits = (MAX_CHUNK_COLUMNS / col_len.max(1)).max(1);
            let per_chunk = wanted.min(fits).clamp(1, desc.batch.max(1));
            // Even chunks: the same number of them, none a thin remainder.
            let chunks = desc.batch.div_ceil(per_chunk).max(1);
            desc.batch.div_ceil(chunks).max(1)
        };
        Ok(Plan {
            desc: *desc,
            geometry,
            input_len,
            output_len,
            cg,
            kg: desc.out_channels_per_group(),
            images_per_chunk: chunk(TARGET_CHUNK_PIXELS),
            images_per_weight_chunk: chunk(TARGET_WEIGHT_CHUNK_PIXELS),
        })
    }

    /// Weights per group: kg × cg·R·S.
    fn group_weight_len(&self) -> usize {
        self.kg * self.taps_per_group()
    }

    /// Rows of a group's NCHW column matrix (the forward GEMM's reduction): cg·R·S.
    fn taps_per_group(&self) -> usize {
        self.cg * self.geometry.taps()
    }

    fn nchw(&self) -> bool {
        self.desc.layout == Layout::Nchw
    }

    /// Chunks on separate threads (each GEMM sequential) when there are at least as many
    /// chunks as threads; otherwise one chunk at a time with the GEMMs threaded.
    fn split(&self, par: Parallelism) -> (Parallelism, Parallelism) {
        let chunks = self.desc.batch.div_ceil(self.images_per_chunk);
        if par.threads() > 1 && chunks >= par.threads() {
            (par, Parallelism::Sequential)
        } else {
            (Parallelism::Sequential, par)
        }
    }
}

/// Copies rows `rows` (a range of channel rows of `pixels` floats) of every NCHW image in
/// `chunk` side by side: row k of `out` holds image 0's row k, then image 1's, and so on,
/// the operand layout of a GEMM over a chunk of images.
fn gather_nchw_rows(
    chunk: &[f32],
    image_len: usize,
    rows: std::ops::Range<usize>,
    pixels: usize,
    out: &mut [f32],
) {
    let images = chunk.len() / image_len;
    for (j, image) in chunk.chunks_exact(image_len).enumerate() {
        for (k, row) in image[rows.clone()].chunks_exact(pixels).enumerate() {
            im2col::copy_run(&mut out[(k * images + j) * pixels..][..pixels], row);
        }
    }
}

impl Conv2dDesc {
    /// Floats of the scratch memory one kernel thread keeps for a call of this shape (and
    /// reuses from call to call): the column matrix of a chunk of images, and for chunks
    /// of several NCHW images the output (or gradient) regrouped for one GEMM — or, for
    /// the passes that take Winograd, a block's transformed tiles and the transformed
    /// filters, whichever is larger. Pointwise convolutions on single-image chunks need
    /// none.
    pub fn workspace_len(&self) -> Result<usize> {
        self.validate()?;
        let y_len = self.batch * self.out_channels * self.output_hw()?.iter().product::<usize>();
        let x_len = self.batch * self.in_channels * self.input[0] * self.input[1];
        let plan = Plan::new(self, x_len, self.weight_len(), y_len)?;
        let winograd = winograd::workspace_len(&plan);
        if relayout::applies(&plan) {
            // The passes Winograd leaves run through NHWC: that path's needs, plus the
            // tensors moved.
            let nhwc = self.layout(Layout::Nhwc).workspace_len()?;
            return Ok(nhwc.max(winograd) + relayout::workspace_len(&plan));
        }
        let b = plan.images_per_chunk.max(plan.images_per_weight_chunk);
        let pixels = plan.geometry.output_pixels();
        if plan.geometry.is_pointwise() && b == 1 {
            return Ok(winograd);
        }
        let columns = b * plan.taps_per_group() * pixels;
        let staging = if plan.nchw() && b > 1 {
            b * plan.kg * pixels
        } else {
            0
        };
        Ok((columns + staging).max(winograd))
    }
}
