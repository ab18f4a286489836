//! Element-wise activation layers (ReLU, LeakyReLU, sigmoid, tanh, GELU, ELU, SiLU).

use super::{expect_backward, expect_inputs, Context, Layer};
use crate::error::Result;
use crate::tensor::Tensor;
use axonal_kernels::eltwise::{
    bias_activation_backward, bias_activation_forward, gradient_from_output, Activation, BiasShape,
    Saved,
};

/// An activation as a layer of its own. The graph fuses it into a preceding
/// convolution or linear layer when it can; otherwise it runs as one streaming pass.
#[derive(Debug, Clone, Copy)]
pub struct Act(pub Activation);

impl Act {
    pub fn relu() -> Act {
        Act(Activation::Relu)
    }
}

impl Layer for Act {
    fn kind(&self) -> String {
        self.0.name().into()
    }

    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        expect_inputs(self.0.name(), inputs, 1)?;
        self.0.validate()?;
        Ok(inputs[0].to_vec())
    }

    fn forward(&mut self, ctx: &Context, inputs: &[&Tensor], y: &mut Tensor) -> Result<()> {
        expect_inputs(self.0.name(), inputs, 1)?;
        let x = inputs[0].data();
        let shape = BiasShape::new(1, 1, x.len());
        bias_activation_forward(&shape, self.0, x, None, y.data_mut(), ctx.par)?;
        Ok(())
    }

    fn backward(
        &mut self,
        ctx: &Context,
        inputs: &[&Tensor],
        y: &Tensor,
        dy: &mut [f32],
        dx: &mut [Option<&mut [f32]>],
    ) -> Result<()> {
        expect_backward(self.0.name(), inputs, dx, 1)?;
        let Some(dx) = dx[0].as_deref_mut() else {
            return Ok(());
        };
        let x = inputs[0].data();
        let saved = if gradient_from_output(self.0) {
            Saved::Output(y.data())
        } else {
            Saved::Input { x, bias: None }
        };
        let shape = BiasShape::new(1, 1, x.len());
        bias_activation_backward(&shape, self.0, saved, dy, dx, None, ctx.par)?;
        Ok(())
    }

    fn as_activation(&self) -> Option<Activation> {
        Some(self.0)
    }
}
