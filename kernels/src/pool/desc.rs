//! The descriptor of a 2-D pooling window and the sizes it implies.

use crate::error::{product, KernelError, Result};
use crate::layout::{Dims4, Layout};

/// A 2-D pooling window, PyTorch's `MaxPool2d` / `AvgPool2d` semantics with
/// `ceil_mode = false`: output = ⌊(input + 2·padding − kernel) / stride⌋ + 1.
///
/// ```
/// use axonal_kernels::pool::Pool2dDesc;
/// let desc = Pool2dDesc::new(64, 32, [26, 26], [2, 2]);
/// assert_eq!(desc.output_hw().unwrap(), [13, 13]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pool2dDesc {
    pub batch: usize,
    pub channels: usize,
    /// Input height and width.
    pub input: [usize; 2],
    /// Window height and width.
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    /// Implicit padding on both sides (at most half the window, as in PyTorch).
    pub padding: [usize; 2],
    pub layout: Layout,
}

impl Pool2dDesc {
    /// Stride equal to the window (PyTorch's default), no padding, NCHW.
    pub fn new(batch: usize, channels: usize, input: [usize; 2], kernel: [usize; 2]) -> Self {
        Pool2dDesc {
            batch,
            channels,
            input,
            kernel,
            stride: kernel,
            padding: [0, 0],
            layout: Layout::Nchw,
        }
    }

    /// A window covering the whole image: global pooling, one output per channel.
    pub fn global(batch: usize, channels: usize, input: [usize; 2]) -> Self {
        Pool2dDesc::new(batch, channels, input, input).stride([1, 1])
    }

    pub fn stride(mut self, stride: [usize; 2]) -> Self {
        self.stride = stride;
        self
    }

    pub fn padding(mut self, padding: [usize; 2]) -> Self {
        self.padding = padding;
        self
    }

    pub fn layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    /// Checks every field and that the sizes fit in memory.
    pub fn validate(&self) -> Result<()> {
        for d in 0..2 {
            let dim = ["height", "width"][d];
            if self.kernel[d] == 0 || self.stride[d] == 0 || self.input[d] == 0 {
                return Err(KernelError::invalid(
                    "pool2d",
                    format!(
                        "kernel, stride and input {dim} must be at least 1, got {}, {}, {}",
                        self.kernel[d], self.stride[d], self.input[d]
                    ),
                ));
            }
            if self.padding[d] > self.kernel[d] / 2 {
                return Err(KernelError::invalid(
                    "pool2d padding",
                    format!(
                        "{dim} padding {} exceeds half the window {}",
                        self.padding[d], self.kernel[d]
                    ),
                ));
            }
        }
        if self.channels == 0 {
            return Err(KernelError::invalid(
                "pool2d channels",
                "must be at least 1, got 0",
            ));
        }
        let [oh, ow] = self.output_hw()?;
        product(
            "pool2d input",
            &[self.batch, self.channels, self.input[0], self.input[1]],
        )?;
        product("pool2d output", &[self.batch, self.channels, oh, ow])?;
        Ok(())
    }

    /// Output height and width; an error when the window does not fit in the padded input.
    pub fn output_hw(&self) -> Result<[usize; 2]> {
        let mut out = [0; 2];
        for (d, size) in out.iter_mut().enumerate() {
            let padded = self.padding[d]
                .checked_mul(2)
                .and_then(|p| p.checked_add(self.input[d]))
                .ok_or(KernelError::SizeOverflow {
                    what: "pool2d padded input",
                })?;
            if self.kernel[d] > padded || self.stride[d] == 0 {
                return Err(KernelError::invalid(
                    "pool2d kernel",
                    format!(
                        "window {} does not fit the padded input {padded} (stride {})",
                        self.kernel[d], self.stride[d]
                    ),
                ));
            }
            *size = (padded - self.kernel[d]) / self.stride[d] + 1;
        }
        Ok(out)
    }

    /// Sizes of the input tensor.
    pub fn input_dims(&self) -> Dims4 {
        Dims4 {
            n: self.batch,
            c: self.channels,
            h: self.input[0],
            w: self.input[1],
        }
    }

    /// Sizes of the output tensor.
    pub fn output_dims(&self) -> Result<Dims4> {
        let [h, w] = self.output_hw()?;
        Ok(Dims4 {
            n: self.batch,
            c: self.channels,
            h,
            w,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_sizes_match_pytorch() {
        let d = Pool2dDesc::new(2, 4, [9, 9], [3, 3])
            .stride([2, 2])
            .padding([1, 1]);
        assert_eq!(d.output_hw().unwrap(), [5, 5]);
        assert_eq!(
            Pool2dDesc::new(2, 64, [11, 11], [2, 2])
                .output_hw()
                .unwrap(),
            [5, 5]
        );
        assert_eq!(
            Pool2dDesc::global(3, 16, [7, 7]).output_hw().unwrap(),
            [1, 1]
        );
    }

    #[test]
    fn bad_descriptors_are_errors() {
        let ok = Pool2dDesc::new(1, 1, [4, 4], [2, 2]);
        assert!(ok.validate().is_ok());
        assert!(ok.stride([0, 2]).validate().is_err());
        assert!(ok.padding([2, 0]).validate().is_err());
        assert!(Pool2dDesc::new(1, 1, [1, 1], [2, 2]).validate().is_err());
        assert!(Pool2dDesc::new(1, 0, [4, 4], [2, 2]).validate().is_err());
    }
}
