//! `Add`: the element-wise sum of two tensors of one shape (a residual connection).

use super::{expect_backward, expect_inputs, Context, Layer};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// y = a + b; both gradients are dy.
#[derive(Debug, Default, Clone, Copy)]
pub struct Add;

impl Layer for Add {
    fn kind(&self) -> String {
        "add".into()
    }

    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        expect_inputs("add", inputs, 2)?;
        if inputs[0] != inputs[1] {
            return Err(Error::shape(
                "add inputs",
                format!("{:?}", inputs[0]),
                format!("{:?}", inputs[1]),
            ));
        }
        Ok(inputs[0].to_vec())
    }

    fn forward(&mut self, _ctx: &Context, inputs: &[&Tensor], y: &mut Tensor) -> Result<()> {
        expect_inputs("add", inputs, 2)?;
        let (a, b) = (inputs[0].data(), inputs[1].data());
        for ((y, &a), &b) in y.data_mut().iter_mut().zip(a).zip(b) {
            *y = a + b;
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
        expect_backward("add", inputs, dx, 2)?;
        for dx in dx.iter_mut().flatten() {
            dx.copy_from_slice(dy);
        }
        Ok(())
    }
}
