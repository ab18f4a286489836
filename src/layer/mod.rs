//! Layers: forward and backward passes on the kernels.
//!
//! A layer reads its inputs and writes its output into tensors the [`Graph`](crate::Graph)
//! owns and sizes once, so a training step allocates nothing after the first. Layers keep
//! only what their backward pass needs (max-pool indices, batch statistics).

mod activation;
mod add;
mod batchnorm;
mod conv2d;
mod dropout;
mod flatten;
mod linear;
mod pool;

pub use activation::Act;
pub use add::Add;
pub use batchnorm::BatchNorm;
pub use conv2d::{Conv2d, Conv2dBuilder};
pub use dropout::Dropout;
pub use flatten::Flatten;
pub use linear::Linear;
pub use pool::{AvgPool2d, GlobalAvgPool, MaxPool2d};

use crate::error::{Error, Result};
use crate::param::Param;
use crate::tensor::Tensor;
use axonal_kernels::eltwise::Activation;
use axonal_kernels::{Layout, Parallelism};

/// What a pass may use and whether it trains.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Context {
    pub par: Parallelism,
    /// Training mode (batch statistics, dropout) or evaluation mode.
    pub train: bool,
    /// The training step, for layers whose randomness depends on it (dropout).
    pub step: u64,
}

impl Default for Context {
    fn default() -> Self {
        Context {
            par: Parallelism::Sequential,
            train: true,
            step: 0,
        }
    }
}

/// Floating-point operations of one pass over a batch, for throughput figures.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Flops {
    pub forward: f64,
    /// The input's gradient (skipped for a layer reading the graph input).
    pub backward_data: f64,
    /// The parameters' gradients.
    pub backward_params: f64,
}

/// One operation of a network.
///
/// Shapes include the batch as their first dimension. The graph calls
/// [`output_shape`](Layer::output_shape) whenever the input shapes change and sizes the
/// output before [`forward`](Layer::forward).
pub trait Layer: Send {
    /// A short name of the operation (`conv2d`, `relu`), for tables and traces.
    fn kind(&self) -> String;

    /// The output shape for these input shapes, or an error saying what does not fit.
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>>;

    /// Writes the output `y` (already shaped) from the inputs.
    fn forward(&mut self, ctx: &Context, inputs: &[&Tensor], y: &mut Tensor) -> Result<()>;

    /// Given `dy` = ∂loss/∂y (which the layer may overwrite), writes each input's
    /// gradient where `dx` has a slice (`None`: not needed) and overwrites the gradients
    /// of its parameters.
    fn backward(
        &mut self,
        ctx: &Context,
        inputs: &[&Tensor],
        y: &Tensor,
        dy: &mut [f32],
        dx: &mut [Option<&mut [f32]>],
    ) -> Result<()>;

    /// Calls `f` on each parameter, in PyTorch's order (`weight` before `bias`).
    fn visit_params(&mut self, _f: &mut dyn FnMut(&mut Param)) {}

    /// Calls `f` on each persistent non-trainable tensor (batch-norm running statistics)
    /// with its local name, for checkpoints.
    fn visit_buffers(&mut self, _f: &mut dyn FnMut(&str, &mut Vec<f32>)) {}

    /// Floating-point operations of the passes for these input shapes.
    fn flops(&self, _inputs: &[&[usize]]) -> Flops {
        Flops::default()
    }

    /// Bytes a pass moves at least (inputs read, output written), for memory-bound layers.
    fn bytes(&self, inputs: &[&[usize]], output: &[usize]) -> f64 {
        let elems: usize = inputs
            .iter()
            .map(|s| s.iter().product::<usize>())
            .sum::<usize>()
            + output.iter().product::<usize>();
        4.0 * elems as f64
    }

    /// Takes over an activation that follows this layer, applying it as the output is
    /// written and its gradient from the output in backward. Returns whether it did.
    fn fuse_activation(&mut self, _act: Activation) -> bool {
        false
    }

    /// Whether this layer ends in a fused ReLU, whose gradient mask it reads from its
    /// output in backward.
    fn ends_in_relu(&self) -> bool {
        false
    }

    /// For a layer that [`ends_in_relu`](Layer::ends_in_relu): the gradient reaching it
    /// is already masked by the ReLU (its reader took the mask over), so its backward
    /// need not read its output for it.
    fn relu_mask_taken_downstream(&mut self) {}

    /// Asks a reader of a ReLU's output to zero its own output gradient where its output
    /// is not positive, before its backward, in place of the ReLU. Returns whether it
    /// will (a max-pool can: each output is the ReLU output at its window's argmax).
    fn take_relu_mask(&mut self) -> bool {
        false
    }

    /// The activation this layer is, if it is one (what the graph may fuse).
    fn as_activation(&self) -> Option<Activation> {
        None
    }

    /// The memory layout of 4-D activations (shapes stay `[n, c, h, w]` either way); the
    /// graph sets it once for all its layers.
    fn set_layout(&mut self, _layout: Layout) {}
}

/// Checks that a backward pass got `n` inputs and `n` gradient slots (the graph always
/// passes them; a direct call of a layer may not).
pub(crate) fn expect_backward(
    kind: &str,
    inputs: &[&Tensor],
    dx: &[Option<&mut [f32]>],
    n: usize,
) -> Result<()> {
    expect_inputs(kind, inputs, n)?;
    if dx.len() != n {
        return Err(Error::shape(format!("{kind} input gradients"), n, dx.len()));
    }
    Ok(())
}

/// Checks that a layer got exactly `n` inputs.
pub(crate) fn expect_inputs<T: ?Sized>(kind: &str, inputs: &[&T], n: usize) -> Result<()> {
    if inputs.len() != n {
        return Err(Error::shape(format!("{kind} inputs"), n, inputs.len()));
    }
    Ok(())
}

/// The shape `[n, c, h, w]` of an image batch, or an error naming the layer.
pub(crate) fn image_shape(kind: &str, shape: &[usize]) -> Result<[usize; 4]> {
    match *shape {
        [n, c, h, w] => Ok([n, c, h, w]),
        _ => Err(Error::shape(
            format!("{kind} input"),
            "[batch, channels, height, width]",
            format!("{shape:?}"),
        )),
    }
}
