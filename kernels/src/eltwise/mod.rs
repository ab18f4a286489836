//! Element-wise kernels: bias and activation, forward and backward.

mod activation;
mod bias;
mod scalar;

pub use activation::Activation;
pub use bias::BiasShape;
pub use scalar::activate;
