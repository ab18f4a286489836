//! Element-wise kernels: bias and activation, forward and backward.

mod activation;

pub use activation::Activation;
