//! 2-D convolution: forward, backward-data and backward-weights, NCHW and NHWC, any
//! stride, padding, dilation and groups.
//!
//! Each image and group is one GEMM over its im2col column matrix (`im2col.rs`):
//! forward `Y = W · col(X)` with bias and activation fused into the GEMM's store,
//! backward-data `dX = col2im(Wᵀ · dY)`, backward-weights `dW = Σₙ dYₙ · col(Xₙ)ᵀ`.
//! Pointwise convolutions (1×1, stride 1, no padding) use the image itself as the
//! column matrix. Threads take whole images when the batch has enough of them, and
//! the GEMMs' row and column blocks otherwise; sums never split, so results are
//! bitwise identical for every thread count.

mod backward_data;
mod backward_weights;
mod desc;
mod forward;
mod im2col;

pub use backward_data::{conv2d_backward_data, conv2d_backward_data_on};
pub use backward_weights::{conv2d_backward_weights, conv2d_backward_weights_on};
pub use desc::Conv2dDesc;
pub use forward::{conv2d_forward, conv2d_forward_on, ConvEpilogue};

use crate::error::{check_exact, Result};
use crate::layout::Layout;
use crate::parallel::Parallelism;
use im2col::Geometry;

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
    /// Rows × columns of one group's column matrix (taps·cg × output pixels).
    col_len: usize,
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
        Ok(Plan {
            desc: *desc,
            geometry,
            input_len,
            output_len,
            cg,
            kg: desc.out_channels_per_group(),
            col_len: cg * geometry.taps() * geometry.output_pixels(),
        })
    }

    /// Weights per group: kg × cg·R·S.
    fn group_weight_len(&self) -> usize {
        self.kg * self.cg * self.geometry.taps()
    }

    /// Columns of the im2col matrix per group (the GEMM's reduction for forward).
    fn taps_per_group(&self) -> usize {
        self.cg * self.geometry.taps()
    }

    fn nchw(&self) -> bool {
        self.desc.layout == Layout::Nchw
    }

    /// Images on separate threads (each GEMM sequential) when there are at least as many
    /// images as threads; otherwise one image at a time with the GEMMs threaded.
    fn split(&self, par: Parallelism) -> (Parallelism, Parallelism) {
        if par.threads() > 1 && self.desc.batch >= par.threads() {
            (par, Parallelism::Sequential)
        } else {
            (Parallelism::Sequential, par)
        }
    }
}

impl Conv2dDesc {
    /// Floats of the per-thread column buffer a call uses (0 for pointwise convolutions,
    /// which need none). Kept by each kernel thread and reused from call to call.
    pub fn workspace_len(&self) -> Result<usize> {
        self.validate()?;
        let geometry = Geometry::of(self, self.output_hw()?);
        if geometry.is_pointwise() {
            return Ok(0);
        }
        Ok(self.channels_per_group() * geometry.taps() * geometry.output_pixels())
    }
}
