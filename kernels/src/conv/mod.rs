//! 2-D convolution: forward, backward-data and backward-weights.

mod desc;

pub use desc::Conv2dDesc;
