//! The descriptor of a 2-D convolution and the sizes it implies.

use crate::error::{product, KernelError, Result};
use crate::layout::{Dims4, Layout};

/// A 2-D convolution, PyTorch's `Conv2d` semantics (cross-correlation, zero padding).
///
/// Activations are `layout` (NCHW or NHWC); weights are OIHW:
/// `out_channels × (in_channels / groups) × kernel[0] × kernel[1]`; the bias, when
/// present, has `out_channels` elements. Build one with [`Conv2dDesc::new`] and the
/// chained setters, then call [`Conv2dDesc::validate`] (every kernel does).
///
/// ```
/// use axonal_kernels::conv::Conv2dDesc;
/// let desc = Conv2dDesc::new(64, 1, [28, 28], 32, [3, 3]);
/// assert_eq!(desc.output_hw().unwrap(), [26, 26]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conv2dDesc {
    pub batch: usize,
    pub in_channels: usize,
    /// Input height and width.
    pub input: [usize; 2],
    pub out_channels: usize,
    /// Kernel height and width (R × S).
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    /// Zero padding added on both sides of each spatial dimension.
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
    pub groups: usize,
    pub layout: Layout,
}

impl Conv2dDesc {
    /// Stride 1, no padding, no dilation, one group, NCHW.
    pub fn new(
        batch: usize,
        in_channels: usize,
        input: [usize; 2],
        out_channels: usize,
        kernel: [usize; 2],
    ) -> Conv2dDesc {
        Conv2dDesc {
            batch,
            in_channels,
            input,
            out_channels,
            kernel,
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            groups: 1,
            layout: Layout::Nchw,
        }
    }

    pub fn stride(mut self, stride: [usize; 2]) -> Self {
        self.stride = stride;
        self
    }

    pub fn padding(mut self, padding: [usize; 2]) -> Self {
        self.padding = padding;
        self
    }

    pub fn dilation(mut self, dilation: [usize; 2]) -> Self {
        self.dilation = dilation;
        self
    }

    pub fn groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }

    pub fn layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    /// Checks every field and that the sizes fit in memory.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("conv2d in_channels", self.in_channels),
            ("conv2d out_channels", self.out_channels),
            ("conv2d input height", self.input[0]),
            ("conv2d input width", self.input[1]),
            ("conv2d kernel height", self.kernel[0]),
            ("conv2d kernel width", self.kernel[1]),
            ("conv2d stride height", self.stride[0]),
            ("conv2d stride width", self.stride[1]),
            ("conv2d dilation height", self.dilation[0]),
            ("conv2d dilation width", self.dilation[1]),
            ("conv2d groups", self.groups),
        ];
        for (what, value) in positive {
            if value == 0 {
                return Err(KernelError::invalid(what, "must be at least 1, got 0"));
            }
        }
        for (what, channels) in [
            ("conv2d in_channels", self.in_channels),
            ("conv2d out_channels", self.out_channels),
        ] {
            if channels % self.groups != 0 {
                return Err(KernelError::invalid(
                    what,
                    format!("{channels} is not divisible by groups = {}", self.groups),
                ));
            }
        }
        self.output_hw()?;
        product(
            "conv2d input",
            &[self.batch, self.in_channels, self.input[0], self.input[1]],
        )?;
        product(
            "conv2d weights",
            &[
                self.out_channels,
                self.in_channels,
                self.kernel[0],
                self.kernel[1],
            ],
        )?;
        let [oh, ow] = self.output_hw()?;
        product("conv2d output", &[self.batch, self.out_channels, oh, ow])?;
        Ok(())
    }

    /// Output height and width; an error when the dilated kernel does not fit in the
    /// padded input.
    pub fn output_hw(&self) -> Result<[usize; 2]> {
        let mut out = [0; 2];
        for d in 0..2 {
            let extent = (self.kernel[d].max(1) - 1)
                .checked_mul(self.dilation[d])
                .and_then(|e| e.checked_add(1))
                .ok_or(KernelError::SizeOverflow {
                    what: "conv2d kernel extent",
                })?;
            let padded = self.padding[d]
                .checked_mul(2)
                .and_then(|p| p.checked_add(self.input[d]))
                .ok_or(KernelError::SizeOverflow {
                    what: "conv2d padded input",
                })?;
            if extent > padded {
                return Err(KernelError::invalid(
                    "conv2d kernel",
                    format!(
                        "dilated kernel extent {extent} exceeds padded input {padded} in {}",
                        ["height", "width"][d]
                    ),
                ));
            }
            if self.stride[d] == 0 {
                return Err(KernelError::invalid(
                    "conv2d stride",
                    "must be at least 1, got 0",
                ));
            }
            out[d] = (padded - extent) / self.stride[d] + 1;
        }
        Ok(out)
    }

    /// Sizes of the input tensor.
    pub fn input_dims(&self) -> Dims4 {
        Dims4 {
            n: self.batch,
            c: self.in_channels,
            h: self.input[0],
            w: self.input[1],
        }
    }

    /// Sizes of the output tensor (call after [`Conv2dDesc::validate`]).
    pub fn output_dims(&self) -> Result<Dims4> {
        let [h, w] = self.output_hw()?;
        Ok(Dims4 {
            n: self.batch,
            c: self.out_channels,
            h,
            w,
        })
    }

    /// Input channels seen by one output channel.
    pub fn channels_per_group(&self) -> usize {
        self.in_channels / self.groups
    }

    /// Output channels produced by one group.
    pub fn out_channels_per_group(&self) -> usize {
        self.out_channels / self.groups
    }

    /// Elements of the OIHW weight tensor.
    pub fn weight_len(&self) -> usize {
        self.out_channels * self.channels_per_group() * self.kernel[0] * self.kernel[1]
    }

    /// Multiply-adds of the forward pass, times two (for GFLOP/s figures).
    pub fn flops(&self) -> f64 {
        let [oh, ow] = self.output_hw().unwrap_or([0, 0]);
        2.0 * self.batch as f64
            * self.out_channels as f64
            * (oh * ow) as f64
            * (self.channels_per_group() * self.kernel[0] * self.kernel[1]) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_sizes_match_pytorch() {
        let d = Conv2dDesc::new(1, 8, [9, 11], 12, [5, 3])
            .stride([2, 1])
            .padding([2, 1]);
        assert_eq!(d.output_hw().unwrap(), [5, 11]);
        let d = Conv2dDesc::new(2, 6, [10, 10], 6, [3, 3])
            .padding([2, 2])
            .dilation([2, 2]);
        assert_eq!(d.output_hw().unwrap(), [10, 10]);
        let d = Conv2dDesc::new(1, 3, [4, 4], 2, [3, 3]).stride([3, 3]);
        assert_eq!(d.output_hw().unwrap(), [1, 1]);
    }

    #[test]
    fn bad_descriptors_are_errors() {
        let ok = Conv2dDesc::new(1, 4, [5, 5], 4, [3, 3]);
        assert!(ok.validate().is_ok());
        assert!(ok.stride([0, 1]).validate().is_err());
        assert!(ok.groups(3).validate().is_err());
        assert!(ok.groups(0).validate().is_err());
        assert!(Conv2dDesc::new(1, 4, [2, 2], 4, [3, 3]).validate().is_err());
        assert!(Conv2dDesc::new(1, 4, [2, 2], 4, [3, 3])
            .padding([1, 1])
            .validate()
            .is_ok());
        assert!(Conv2dDesc::new(1, 4, [5, 5], 4, [3, 3])
            .dilation([3, 1])
            .validate()
            .is_err());
        assert!(Conv2dDesc::new(1, usize::MAX, [5, 5], 1, [1, 1])
            .validate()
            .is_err());
    }
}
