//! The activation functions the kernels fuse after a bias.

use crate::error::{check_finite, Result};

/// An element-wise activation, with PyTorch's definitions.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Activation {
    /// y = x.
    #[default]
    Identity,
    /// y = max(x, 0).
    Relu,
    /// y = x for x > 0, slope·x otherwise (PyTorch's default slope is 0.01).
    LeakyRelu { slope: f32 },
    /// y = 1 / (1 + e^−x).
    Sigmoid,
    /// y = tanh x.
    Tanh,
    /// y = x·Φ(x) with the exact normal CDF (erf form).
    Gelu,
    /// y = ½x(1 + tanh(√(2/π)(x + 0.044715x³))) (PyTorch's `approximate="tanh"`).
    GeluTanh,
    /// y = x for x > 0, alpha·(e^x − 1) otherwise.
    Elu { alpha: f32 },
    /// y = x·sigmoid(x) (also called swish).
    Silu,
}

impl Activation {
    /// Checks that the parameters are finite.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Activation::LeakyRelu { slope } => check_finite("leaky-relu slope", slope),
            Activation::Elu { alpha } => check_finite("elu alpha", alpha),
            _ => Ok(()),
        }
    }

    /// The lower-case name used in golden files and the CLI.
    pub fn name(&self) -> &'static str {
        match self {
            Activation::Identity => "identity",
            Activation::Relu => "relu",
            Activation::LeakyRelu { .. } => "leaky_relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Gelu => "gelu",
            Activation::GeluTanh => "gelu_tanh",
            Activation::Elu { .. } => "elu",
            Activation::Silu => "silu",
        }
    }
}
