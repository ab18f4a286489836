//! Pooling layers: max (with argmax for backward), average and global average.

use super::{expect_backward, expect_inputs, image_shape, Context, Layer};
use crate::error::Result;
use crate::tensor::Tensor;
use axonal_kernels::eltwise::{bias_activation_backward_in_place, Activation, BiasShape, Saved};
use axonal_kernels::pool::{
    avg_pool2d_backward, avg_pool2d_forward, global_avg_pool2d_backward, global_avg_pool2d_forward,
    max_pool2d_backward, max_pool2d_forward, Pool2dDesc,
};
use axonal_kernels::Layout;

/// The window of a pooling layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    layout: Layout,
}

impl Window {
    fn desc(&self, kind: &str, input: &[usize]) -> Result<Pool2dDesc> {
        let [n, c, h, w] = image_shape(kind, input)?;
        let desc = Pool2dDesc::new(n, c, [h, w], self.kernel)
            .stride(self.stride)
            .padding(self.padding)
            .layout(self.layout);
        desc.validate()?;
        Ok(desc)
    }

    fn output_shape(&self, kind: &str, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        expect_inputs(kind, inputs, 1)?;
        let desc = self.desc(kind, inputs[0])?;
        let [oh, ow] = desc.output_hw()?;
        Ok(vec![desc.batch, desc.channels, oh, ow])
    }
}

/// `MaxPool2d(kernel, stride, padding)`; ties go to the first maximum, as in PyTorch.
pub struct MaxPool2d {
    window: Window,
    /// Position of each output's maximum in its input plane, kept for backward.
    argmax: Vec<u32>,
    /// Mask the output gradient by output > 0 first: the input is a ReLU's output,
    /// whose mask this takes over (an output is the input at its argmax, so the two
    /// masks agree where the gradient lands; elsewhere it is 0 anyway).
    relu_mask: bool,
}

impl MaxPool2d {
    /// A square window with stride equal to the window (PyTorch's default).
    pub fn new(kernel: usize) -> MaxPool2d {
        MaxPool2d::with(kernel, kernel, 0)
    }

    pub fn with(kernel: usize, stride: usize, padding: usize) -> MaxPool2d {
        MaxPool2d {
            window: Window {
                kernel: [kernel; 2],
                stride: [stride; 2],
                padding: [padding; 2],
                layout: Layout::Nchw,
            },
            argmax: Vec::new(),
            relu_mask: false,
        }
    }
}

impl Layer for MaxPool2d {
    fn kind(&self) -> String {
        "max_pool2d".into()
    }

    fn take_relu_mask(&mut self) -> bool {
        self.relu_mask = true;
        true
    }

    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        self.window.output_shape("max_pool2d", inputs)
    }

    fn set_layout(&mut self, layout: Layout) {
        self.window.layout = layout;
    }

    fn forward(&mut self, ctx: &Context, inputs: &[&Tensor], y: &mut Tensor) -> Result<()> {
        expect_inputs("max_pool2d", inputs, 1)?;
        let desc = self.window.desc("max_pool2d", inputs[0].shape())?;
        self.argmax.resize(y.len(), 0);
        max_pool2d_forward(
            &desc,
            inputs[0].data(),
            y.data_mut(),
            &mut self.argmax,
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
        expect_backward("max_pool2d", inputs, dx, 1)?;
        if let Some(dx) = dx[0].as_deref_mut() {
            if self.relu_mask {
                // The ReLU's backward, from this layer's output (no bias).
                let shape = BiasShape::new(1, 1, dy.len());
                let saved = Saved::Output(y.data());
                bias_activation_backward_in_place(
                    &shape,
                    Activation::Relu,
                    saved,
                    dy,
                    None,
                    ctx.par,
                )?;
            }
            let desc = self.window.desc("max_pool2d", inputs[0].shape())?;
            max_pool2d_backward(&desc, dy, &self.argmax, dx, ctx.par)?;
        }
        Ok(())
    }
}

/// `AvgPool2d(kernel, stride, padding, count_include_pad)`.
pub struct AvgPool2d {
    window: Window,
    count_include_pad: bool,
}

impl AvgPool2d {
    /// A square window with stride equal to the window, no padding.
    pub fn new(kernel: usize) -> AvgPool2d {
        AvgPool2d::with(kernel, kernel, 0, true)
    }

    pub fn with(
        kernel: usize,
        stride: usize,
        padding: usize,
        count_include_pad: bool,
    ) -> AvgPool2d {
        AvgPool2d {
            window: Window {
                kernel: [kernel; 2],
                stride: [stride; 2],
                padding: [padding; 2],
                layout: Layout::Nchw,
            },
            count_include_pad,
        }
    }
}

impl Layer for AvgPool2d {
    fn kind(&self) -> String {
        "avg_pool2d".into()
    }

    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        self.window.output_shape("avg_pool2d", inputs)
    }

    fn set_layout(&mut self, layout: Layout) {
        self.window.layout = layout;
    }

    fn forward(&mut self, ctx: &Context, inputs: &[&Tensor], y: &mut Tensor) -> Result<()> {
        expect_inputs("avg_pool2d", inputs, 1)?;
        let desc = self.window.desc("avg_pool2d", inputs[0].shape())?;
        avg_pool2d_forward(
            &desc,
            self.count_include_pad,
            inputs[0].data(),
            y.data_mut(),
            ctx.par,
        )?;
        Ok(())
    }

    fn backward(
        &mut self,
        ctx: &Context,
        inputs: &[&Tensor],
        _y: &Tensor,
        dy: &mut [f32],
        dx: &mut [Option<&mut [f32]>],
    ) -> Result<()> {
        expect_backward("avg_pool2d", inputs, dx, 1)?;
        if let Some(dx) = dx[0].as_deref_mut() {
            let desc = self.window.desc("avg_pool2d", inputs[0].shape())?;
            avg_pool2d_backward(&desc, self.count_include_pad, dy, dx, ctx.par)?;
        }
        Ok(())
    }
}

/// Global average pooling: `[n, c, h, w]` → `[n, c]` (PyTorch's
/// `AdaptiveAvgPool2d(1)` followed by `flatten(1)`).
#[derive(Debug, Default)]
pub struct GlobalAvgPool {
    layout: Layout,
}

impl GlobalAvgPool {
    pub fn new() -> GlobalAvgPool {
        GlobalAvgPool::default()
    }

    fn desc(&self, input: &[usize]) -> Result<Pool2dDesc> {
        let [n, c, h, w] = image_shape("global_avg_pool", input)?;
        let desc = Pool2dDesc::global(n, c, [h, w]).layout(self.layout);
        desc.validate()?;
        Ok(desc)
    }
}

impl Layer for GlobalAvgPool {
    fn kind(&self) -> String {
        "global_avg_pool".into()
    }

    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        expect_inputs("global_avg_pool", inputs, 1)?;
        let desc = self.desc(inputs[0])?;
        Ok(vec![desc.batch, desc.channels])
    }

    fn set_layout(&mut self, layout: Layout) {
        self.layout = layout;
    }

    fn forward(&mut self, ctx: &Context, inputs: &[&Tensor], y: &mut Tensor) -> Result<()> {
        expect_inputs("global_avg_pool", inputs, 1)?;
        let desc = self.desc(inputs[0].shape())?;
        global_avg_pool2d_forward(&desc, inputs[0].data(), y.data_mut(), ctx.par)?;
        Ok(())
    }

    fn backward(
        &mut self,
        ctx: &Context,
        inputs: &[&Tensor],
        _y: &Tensor,
        dy: &mut [f32],
        dx: &mut [Option<&mut [f32]>],
    ) -> Result<()> {
        expect_backward("global_avg_pool", inputs, dx, 1)?;
        if let Some(dx) = dx[0].as_deref_mut() {
            let desc = self.desc(inputs[0].shape())?;
            global_avg_pool2d_backward(&desc, dy, dx, ctx.par)?;
        }
        Ok(())
    }
}
