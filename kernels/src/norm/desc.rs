//! The descriptor of a batch-normalization call.

use crate::error::{check_exact, check_finite, product, KernelError, Result};
use crate::layout::Layout;

/// Batch normalization over `batch × channels × spatial` values, one statistic per
/// channel. `spatial` is height × width for `BatchNorm2d` and 1 for `BatchNorm1d`
/// (where NCHW and NHWC coincide).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchNormDesc {
    pub batch: usize,
    pub channels: usize,
    /// Values per channel per image (height × width).
    pub spatial: usize,
    pub layout: Layout,
    /// Added to the variance before the square root (PyTorch's default 1e-5).
    pub eps: f32,
}

impl BatchNormDesc {
    /// NCHW with PyTorch's `eps = 1e-5`.
    pub fn new(batch: usize, channels: usize, spatial: usize) -> Self {
        BatchNormDesc {
            batch,
            channels,
            spatial,
            layout: Layout::Nchw,
            eps: 1e-5,
        }
    }

    pub fn layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    pub fn eps(mut self, eps: f32) -> Self {
        self.eps = eps;
        self
    }

    /// Checks the sizes and that `eps` is a positive finite number.
    pub fn validate(&self) -> Result<()> {
        if self.channels == 0 {
            return Err(KernelError::invalid(
                "batch-norm channels",
                "must be at least 1, got 0",
            ));
        }
        check_finite("batch-norm eps", self.eps)?;
        if self.eps <= 0.0 {
            return Err(KernelError::invalid(
                "batch-norm eps",
                format!("must be positive, got {}", self.eps),
            ));
        }
        product(
            "batch-norm input",
            &[self.batch, self.channels, self.spatial],
        )?;
        Ok(())
    }

    /// Validates the descriptor, then that each activation-sized slice holds `len()`
    /// values and each per-channel slice `channels` values (`what` names each one).
    pub fn check_lengths(
        &self,
        activations: &[(&'static str, usize)],
        per_channel: &[(&'static str, usize)],
    ) -> Result<()> {
        self.validate()?;
        for &(what, len) in activations {
            check_exact(what, self.len(), len)?;
        }
        for &(what, len) in per_channel {
            check_exact(what, self.channels, len)?;
        }
        Ok(())
    }

    /// What training mode needs on top of [`check_lengths`](Self::check_lengths): a
    /// finite momentum and more than one value per channel (PyTorch: "Expected more than
    /// 1 value per channel when training").
    pub fn check_training(&self, momentum: f32) -> Result<()> {
        check_finite("batch-norm momentum", momentum)?;
        let count = self.count_per_channel();
        if count < 2 {
            return Err(KernelError::invalid(
                "batch-norm batch",
                format!("expected more than 1 value per channel when training, got {count}"),
            ));
        }
        Ok(())
    }

    /// Elements of the activation tensor.
    pub fn len(&self) -> usize {
        self.batch * self.channels * self.spatial
    }

    /// Whether the activation tensor is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values that each channel's statistics are taken over (batch × spatial).
    pub fn count_per_channel(&self) -> usize {
        self.batch * self.spatial
    }

    /// Offset of value `s` of channel `c` in image `n`.
    #[inline]
    pub fn index(&self, n: usize, c: usize, s: usize) -> usize {
        match self.layout {
            Layout::Nchw => (n * self.channels + c) * self.spatial + s,
            Layout::Nhwc => (n * self.spatial + s) * self.channels + c,
        }
    }
}
