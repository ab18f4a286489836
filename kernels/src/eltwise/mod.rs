//! Element-wise kernels: bias and activation, forward and backward.

mod activation;
mod bias;

pub use activation::Activation;
pub use bias::BiasShape;
