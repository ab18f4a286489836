//! `Flatten`: `[n, c, h, w]` → `[n, c·h·w]` (PyTorch's `flatten(1)`).

use super::{expect_inputs, Context, Layer};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Keeps the batch dimension and joins the others; the data is copied unchanged.
#[derive(Debug, Default, Clone, Copy)]
pub struct Flatten;

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
        y.data_mut().copy_from_slice(inputs[0].data());
        Ok(())
    }

    fn backward(
        &mut self,
        _ctx: &Context,
        _inputs: &[&Tensor],
        _y: &Tensor,
        dy: &mut [f32],
        dx: &mut [Option<&mut [f32]>],
    ) -> Result<()> {
        if let Some(dx) = dx[0].as_deref_mut() {
            dx.copy_from_slice(dy);
        }
        Ok(())
    }

    fn bytes(&self, inputs: &[&[usize]], _output: &[usize]) -> f64 {
        8.0 * inputs[0].iter().product::<usize>() as f64
    }
}
