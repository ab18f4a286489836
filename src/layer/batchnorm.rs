//! `BatchNorm1d` / `BatchNorm2d`: batch statistics in training, running statistics in
//! evaluation, with PyTorch's momentum and unbiased running variance; a following ReLU
//! can be fused.

use super::{expect_backward, expect_inputs, Context, Layer};
use crate::error::{Error, Result};
use crate::param::Param;
use crate::tensor::Tensor;
use axonal_kernels::eltwise::Activation;
use axonal_kernels::norm::BatchNormDesc;
use axonal_kernels::norm::{
    batch_norm_backward, batch_norm_forward_inference, batch_norm_forward_training,
    batch_norm_relu_backward, batch_norm_relu_forward_inference, batch_norm_relu_forward_training,
};
use axonal_kernels::Layout;

/// Batch normalization over the channels (dimension 1) of `[n, c]` or `[n, c, h, w]`.
pub struct BatchNorm {
    channels: usize,
    eps: f32,
    momentum: f32,
    /// γ (PyTorch's `weight`), initialized to 1.
    gamma: Param,
    /// β (PyTorch's `bias`), initialized to 0.
    beta: Param,
    running_mean: Vec<f32>,
    running_var: Vec<f32>,
    /// The batch mean and 1/√(var + eps) of the last training pass, for backward.
    saved_mean: Vec<f32>,
    saved_inv_std: Vec<f32>,
    /// ReLU fused after the normalization.
    relu: bool,
    /// The ReLU's gradient mask is applied by the reader of the output (see
    /// [`Layer::take_relu_mask`]).
    relu_mask_downstream: bool,
    /// dx when the graph does not want the input's gradient (the kernel writes it anyway).
    scratch: Vec<f32>,
    layout: Layout,
}

impl BatchNorm {
    /// PyTorch's defaults: eps 1e-5, momentum 0.1, γ = 1, β = 0, running mean 0 and
    /// variance 1.
    pub fn new(channels: usize) -> BatchNorm {
        BatchNorm {
            channels,
            eps: 1e-5,
            momentum: 0.1,
            gamma: Param::new("weight", &[channels], vec![1.0; channels]),
            beta: Param::new("bias", &[channels], vec![0.0; channels]),
            running_mean: vec![0.0; channels],
            running_var: vec![1.0; channels],
            saved_mean: vec![0.0; channels],
            saved_inv_std: vec![0.0; channels],
            relu: false,
            relu_mask_downstream: false,
            scratch: Vec::new(),
            layout: Layout::Nchw,
        }
    }

    pub fn eps(mut self, eps: f32) -> Self {
        self.eps = eps;
        self
    }

    pub fn momentum(mut self, momentum: f32) -> Self {
        self.momentum = momentum;
        self
    }

    fn desc(&self, shape: &[usize]) -> Result<BatchNormDesc> {
        let (n, c, spatial) = match *shape {
            [n, c] => (n, c, 1),
            [n, c, h, w] => (n, c, h * w),
            _ => {
                return Err(Error::shape(
                    "batch_norm input",
                    "[batch, channels] or [batch, channels, height, width]",
                    format!("{shape:?}"),
                ))
            }
        };
        if c != self.channels {
            return Err(Error::shape("batch_norm channels", self.channels, c));
        }
        let desc = BatchNormDesc::new(n, c, spatial)
            .eps(self.eps)
            .layout(self.layout);
        desc.validate()?;
        Ok(desc)
    }
}

impl Layer for BatchNorm {
    fn kind(&self) -> String {
        if self.relu {
            "batch_norm+relu".into()
        } else {
            "batch_norm".into()
        }
    }

    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        expect_inputs("batch_norm", inputs, 1)?;
        self.desc(inputs[0])?;
        Ok(inputs[0].to_vec())
    }

    fn forward(&mut self, ctx: &Context, inputs: &[&Tensor], y: &mut Tensor) -> Result<()> {
        expect_inputs("batch_norm", inputs, 1)?;
        let desc = self.desc(inputs[0].shape())?;
        let x = inputs[0].data();
        if ctx.train {
            let forward = if self.relu {
                batch_norm_relu_forward_training
            } else {
                batch_norm_forward_training
            };
            forward(
                &desc,
                x,
                &self.gamma.value,
                &self.beta.value,
                self.momentum,
                &mut self.running_mean,
                &mut self.running_var,
                y.data_mut(),
                &mut self.saved_mean,
                &mut self.saved_inv_std,
                ctx.par,
            )?;
        } else {
            let forward = if self.relu {
                batch_norm_relu_forward_inference
            } else {
                batch_norm_forward_inference
            };
            forward(
                &desc,
                x,
                &self.gamma.value,
                &self.beta.value,
                &self.running_mean,
                &self.running_var,
                y.data_mut(),
                ctx.par,
            )?;
        }
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
        expect_backward("batch_norm", inputs, dx, 1)?;
        let desc = self.desc(inputs[0].shape())?;
        let dx = match dx[0].as_deref_mut() {
            Some(dx) => dx,
            None => {
                self.scratch.resize(dy.len(), 0.0);
                &mut self.scratch
            }
        };
        let x = inputs[0].data();
        let (gamma, mean, inv_std) = (&self.gamma.value, &self.saved_mean, &self.saved_inv_std);
        let (dgamma, dbeta) = (&mut self.gamma.grad, &mut self.beta.grad);
        if self.relu && !self.relu_mask_downstream {
            batch_norm_relu_backward(
                &desc,
                x,
                y.data(),
                dy,
                gamma,
                mean,
                inv_std,
                dx,
                dgamma,
                dbeta,
                ctx.par,
            )?;
        } else {
            batch_norm_backward(
                &desc, x, dy, gamma, mean, inv_std, dx, dgamma, dbeta, ctx.par,
            )?;
        }
        Ok(())
    }

    fn visit_params(&mut self, f: &mut dyn FnMut(&mut Param)) {
        f(&mut self.gamma);
        f(&mut self.beta);
    }

    fn visit_buffers(&mut self, f: &mut dyn FnMut(&str, &mut Vec<f32>)) {
        f("running_mean", &mut self.running_mean);
        f("running_var", &mut self.running_var);
    }

    fn set_layout(&mut self, layout: Layout) {
        self.layout = layout;
    }

    fn ends_in_relu(&self) -> bool {
        self.relu
    }

    fn relu_mask_taken_downstream(&mut self) {
        self.relu_mask_downstream = self.relu;
    }

    fn fuse_activation(&mut self, act: Activation) -> bool {
        if self.relu || act != Activation::Relu {
            return false;
        }
        self.relu = true;
        true
    }
}
