//! `Flatten`: `[n, c, h, w]` → `[n, c·h·w]` (PyTorch's `flatten(1)`).

use super::{expect_backward, expect_inputs, Context, Layer};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use axonal_kernels::Layout;

/// Keeps the batch dimension and joins the others in PyTorch's order (c, h, w), so
/// that a following linear layer takes PyTorch's weights whatever the graph's layout:
/// from NHWC the values are transposed, from NCHW copied unchanged.
#[derive(Debug, Default, Clone, Copy)]
pub struct Flatten {
    layout: Layout,
}

impl Flatten {
    pub fn new() -> Flatten {
        Flatten::default()
    }

    /// (c, h·w) when the input is an NHWC image batch (the transposed case).
    fn nhwc(&self, shape: &[usize]) -> Option<(usize, usize)> {
        match (self.layout, shape) {
            (Layout::Nhwc, &[_, c, h, w]) if c > 1 && h * w > 1 => Some((c, h * w)),
            _ => None,
        }
    }
}

impl Layer for Flatten {
    fn kind(&self) -> String {
        "flatten".into()
    }

    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        expect_inputs("flatten", inputs, 1)?;
        match inputs[0].split_first() {
            Some((&n, rest)) => Ok(vec![n, rest.iter().product()]),
            None => Err(Error::shape("flatten input", "at least 1 dimension", "0")),
        }
    }

    fn forward(&mut self, _ctx: &Context, inputs: &[&Tensor], y: &mut Tensor) -> Result<()> {
        expect_inputs("flatten", inputs, 1)?;
        let x = inputs[0].data();
        match self.nhwc(inputs[0].shape()) {
            None => y.data_mut().copy_from_slice(x),
            Some((c, hw)) => {
                for (src, dst) in x
                    .chunks_exact(c * hw)
                    .zip(y.data_mut().chunks_exact_mut(c * hw))
                {
                    for (p, pixel) in src.chunks_exact(c).enumerate() {
                        for (ch, &v) in pixel.iter().enumerate() {
                            dst[ch * hw + p] = v;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn backward(
        &mut self,
        _ctx: &Context,
        inputs: &[&Tensor],
        _y: &Tensor,
        dy: &mut [f32],
        dx: &mut [Option<&mut [f32]>],
    ) -> Result<()> {
        expect_backward("flatten", inputs, dx, 1)?;
        let Some(dx) = dx[0].as_deref_mut() else {
            return Ok(());
        };
        match self.nhwc(inputs[0].shape()) {
            None => dx.copy_from_slice(dy),
            Some((c, hw)) => {
                for (src, dst) in dy.chunks_exact(c * hw).zip(dx.chunks_exact_mut(c * hw)) {
                    for (p, pixel) in dst.chunks_exact_mut(c).enumerate() {
                        for (ch, v) in pixel.iter_mut().enumerate() {
                            *v = src[ch * hw + p];
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn set_layout(&mut self, layout: Layout) {
        self.layout = layout;
    }

    fn bytes(&self, inputs: &[&[usize]], _output: &[usize]) -> f64 {
        let elems: usize = inputs.first().map_or(0, |s| s.iter().product());
        8.0 * elems as f64
    }
}
