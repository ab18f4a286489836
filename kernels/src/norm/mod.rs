//! Batch normalization: training, inference, backward.

mod desc;

pub use desc::BatchNormDesc;
