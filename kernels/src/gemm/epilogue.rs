//! What happens to a GEMM result before it is written: scaling, the old C, a bias and
//! an activation — applied per output tile while it is hot, so that "linear + bias +
//! ReLU" writes C once.

use crate::eltwise::Activation;
use crate::error::{check_exact, Result};

/// A bias added to every element of a row or of a column of C.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Bias<'a> {
    #[default]
    None,
    /// `m` values: row i gets `bias[i]` (conv forward in NCHW: one bias per output channel).
    PerRow(&'a [f32]),
    /// `n` values: column j gets `bias[j]` (a linear layer on row-major activations).
    PerCol(&'a [f32]),
}

/// C ← activation(alpha·op(A)·op(B) + beta·C + bias).
///
/// With `beta == 0`, C is not read (NaN already in C does not leak), as in BLAS.
///
/// ```
/// use axonal_kernels::eltwise::Activation;
/// use axonal_kernels::gemm::{Bias, Epilogue};
/// let bias = [0.5f32; 4];
/// let epilogue = Epilogue::default()
///     .bias(Bias::PerCol(&bias))
///     .activation(Activation::Relu);
/// assert_eq!(epilogue.beta, 0.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Epilogue<'a> {
    pub alpha: f32,
    pub beta: f32,
    pub bias: Bias<'a>,
    pub activation: Activation,
}

impl Default for Epilogue<'_> {
    /// C ← op(A)·op(B): alpha 1, beta 0, no bias, identity.
    fn default() -> Self {
        Epilogue {
            alpha: 1.0,
            beta: 0.0,
            bias: Bias::None,
            activation: Activation::Identity,
        }
    }
}

impl<'a> Epilogue<'a> {
    pub fn alpha(mut self, alpha: f32) -> Self {
        self.alpha = alpha;
        self
    }

    pub fn beta(mut self, beta: f32) -> Self {
        self.beta = beta;
        self
    }

    pub fn bias(mut self, bias: Bias<'a>) -> Self {
        self.bias = bias;
        self
    }

    pub fn activation(mut self, activation: Activation) -> Self {
        self.activation = activation;
        self
    }

    /// Checks the bias length against an `m × n` C and the activation's parameters.
    pub fn validate(&self, m: usize, n: usize) -> Result<()> {
        match self.bias {
            Bias::None => {}
            Bias::PerRow(bias) => check_exact("gemm bias per row (m)", m, bias.len())?,
            Bias::PerCol(bias) => check_exact("gemm bias per column (n)", n, bias.len())?,
        }
        self.activation.validate()
    }

    /// The epilogue of the transposed problem Cᵀ = op(B)ᵀ·op(A)ᵀ.
    pub(crate) fn transposed(self) -> Self {
        let bias = match self.bias {
            Bias::None => Bias::None,
            Bias::PerRow(b) => Bias::PerCol(b),
            Bias::PerCol(b) => Bias::PerRow(b),
        };
        Epilogue { bias, ..self }
    }
}
