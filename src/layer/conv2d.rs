//! `Conv2d`: im2col convolution with bias and activation fused into the output write.

use super::{expect_backward, expect_inputs, image_shape, Context, Flops, Layer};
use crate::error::{Error, Result};
use crate::init::{default_bias, Init};
use crate::param::Param;
use crate::rng::Rng;
use crate::tensor::Tensor;
use axonal_kernels::conv::{
    conv2d_backward_data, conv2d_backward_weights, conv2d_backward_weights_relu, conv2d_forward,
    Conv2dDesc, ConvEpilogue,
};
use axonal_kernels::eltwise::{
    bias_activation_backward_in_place, gradient_from_output, Activation, BiasShape, Saved,
};
use axonal_kernels::{Dims4, Layout};

/// A 2-D convolution on NCHW batches; the weight is OIHW
/// (`[out, in / groups, kh, kw]`) as in PyTorch.
pub struct Conv2d {
    in_channels: usize,
    out_channels: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    groups: usize,
    weight: Param,
    bias: Option<Param>,
    activation: Activation,
    /// The ReLU's gradient mask is applied by the reader of the output (see
    /// [`Layer::take_relu_mask`]).
    relu_mask_downstream: bool,
    layout: Layout,
}

impl Conv2d {
    /// A square `kernel × kernel` convolution, stride 1, no padding, with a bias and
    /// PyTorch's default initialization.
    pub fn new(in_channels: usize, out_channels: usize, kernel: usize, rng: &mut Rng) -> Conv2d {
        Conv2d::builder(in_channels, out_channels, kernel).build(rng)
    }

    /// A convolution to configure before its weights are drawn.
    pub fn builder(in_channels: usize, out_channels: usize, kernel: usize) -> Conv2dBuilder {
        Conv2dBuilder {
            in_channels,
            out_channels,
            kernel: [kernel, kernel],
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            groups: 1,
            bias: true,
            init: Init::PyTorchDefault,
        }
    }

    fn desc(&self, input: &[usize]) -> Result<Conv2dDesc> {
        let [n, c, h, w] = image_shape("conv2d", input)?;
        if c != self.in_channels {
            return Err(Error::shape("conv2d input channels", self.in_channels, c));
        }
        let desc = Conv2dDesc::new(n, c, [h, w], self.out_channels, self.kernel)
            .stride(self.stride)
            .padding(self.padding)
            .dilation(self.dilation)
            .groups(self.groups)
            .layout(self.layout);
        desc.validate()?;
        Ok(desc)
    }
}

/// The settings of a [`Conv2d`] (PyTorch's `nn.Conv2d` arguments).
#[derive(Debug, Clone, Copy)]
pub struct Conv2dBuilder {
    in_channels: usize,
    out_channels: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    groups: usize,
    bias: bool,
    init: Init,
}

impl Conv2dBuilder {
    pub fn kernel(mut self, kernel: [usize; 2]) -> Self {
        self.kernel = kernel;
        self
    }
    pub fn stride(mut self, stride: usize) -> Self {
        self.stride = [stride, stride];
        self
    }
    pub fn padding(mut self, padding: usize) -> Self {
        self.padding = [padding, padding];
        self
    }
    pub fn dilation(mut self, dilation: usize) -> Self {
        self.dilation = [dilation, dilation];
        self
    }
    pub fn groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }
    pub fn bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }
    pub fn init(mut self, init: Init) -> Self {
        self.init = init;
        self
    }

    /// Draws the weights. A bad setting (zero channels, groups not dividing them) shows
    /// up as an error at the first pass, where the input shape is known.
    pub fn build(self, rng: &mut Rng) -> Conv2d {
        let per_group = self.in_channels / self.groups.max(1);
        let shape = [self.out_channels, per_group, self.kernel[0], self.kernel[1]];
        let weight = Param::new("weight", &shape, self.init.weights(&shape, rng));
        let fan_in = per_group * self.kernel[0] * self.kernel[1];
        let bias = self.bias.then(|| {
            let b = default_bias(self.out_channels, fan_in, rng);
            Param::new("bias", &[self.out_channels], b)
        });
        Conv2d {
            in_channels: self.in_channels,
            out_channels: self.out_channels,
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
            groups: self.groups,
            weight,
            bias,
            activation: Activation::Identity,
            relu_mask_downstream: false,
            layout: Layout::Nchw,
        }
    }
}

impl Layer for Conv2d {
    fn kind(&self) -> String {
        match self.activation {
            Activation::Identity => "conv2d".into(),
            act => format!("conv2d+{}", act.name()),
        }
    }

    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        expect_inputs("conv2d", inputs, 1)?;
        let desc = self.desc(inputs[0])?;
        let [oh, ow] = desc.output_hw()?;
        Ok(vec![desc.batch, self.out_channels, oh, ow])
    }

    fn forward(&mut self, ctx: &Context, inputs: &[&Tensor], y: &mut Tensor) -> Result<()> {
        expect_inputs("conv2d", inputs, 1)?;
        let desc = self.desc(inputs[0].shape())?;
        let epilogue = ConvEpilogue {
            bias: self.bias.as_ref().map(|b| &b.value[..]),
            activation: self.activation,
        };
        conv2d_forward(
            &desc,
            inputs[0].data(),
            &self.weight.value,
            epilogue,
            y.data_mut(),
            ctx.par,
        )?;
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
        expect_backward("conv2d", inputs, dx, 1)?;
        let desc = self.desc(inputs[0].shape())?;
        let mut db = self.bias.as_mut().map(|b| &mut b.grad[..]);
        // The activation whose gradient is still to apply to dy.
        let activation = if self.relu_mask_downstream {
            Activation::Identity
        } else {
            self.activation
        };
        if activation == Activation::Relu && dx[0].is_none() {
            // A first layer: the ReLU mask is applied as the weights' kernel reads dy.
            conv2d_backward_weights_relu(
                &desc,
                inputs[0].data(),
                y.data(),
                dy,
                &mut self.weight.grad,
                db,
                ctx.par,
            )?;
            return Ok(());
        }
        if activation != Activation::Identity {
            // dz = act′(y)·dy in place, with the bias gradient in the same pass.
            let [oh, ow] = desc.output_hw()?;
            let dims = Dims4 {
                n: desc.batch,
                c: self.out_channels,
                h: oh,
                w: ow,
            };
            bias_activation_backward_in_place(
                &BiasShape::image(dims, desc.layout)?,
                activation,
                Saved::Output(y.data()),
                dy,
                db.take(),
                ctx.par,
            )?;
        }
        conv2d_backward_weights(
            &desc,
            inputs[0].data(),
            dy,
            &mut self.weight.grad,
            db,
            ctx.par,
        )?;
        if let Some(dx) = dx[0].as_deref_mut() {
            conv2d_backward_data(&desc, dy, &self.weight.value, dx, ctx.par)?;
        }
        Ok(())
    }

    fn visit_params(&mut self, f: &mut dyn FnMut(&mut Param)) {
        f(&mut self.weight);
        if let Some(b) = &mut self.bias {
            f(b);
        }
    }

    fn flops(&self, inputs: &[&[usize]]) -> Flops {
        match inputs.first().map(|shape| self.desc(shape)) {
            Some(Ok(desc)) => Flops {
                forward: desc.flops(),
                backward_data: desc.flops(),
                backward_params: desc.flops(),
            },
            _ => Flops::default(),
        }
    }

    fn set_layout(&mut self, layout: Layout) {
        self.layout = layout;
    }

    fn ends_in_relu(&self) -> bool {
        self.activation == Activation::Relu
    }

    fn relu_mask_taken_downstream(&mut self) {
        self.relu_mask_downstream = self.activation == Activation::Relu;
    }

    fn fuse_activation(&mut self, act: Activation) -> bool {
        if self.activation != Activation::Identity || !gradient_from_output(act) {
            return false;
        }
        self.activation = act;
        true
    }
}
