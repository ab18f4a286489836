//! Naive, obviously-correct versions of every kernel: the oracle of the tests.
//!
//! They favour clarity over speed: plain loops in the order of the textbook formula,
//! sums accumulated in f64 and rounded to f32 once. They check their inputs like every
//! public kernel and are themselves tested against PyTorch's golden vectors
//! (`shared/golden`, see `kernels/tests/golden_*.rs`).
//!
//! Conventions: inputs come first, outputs last; outputs are overwritten (gradients too:
//! nothing accumulates into a caller's buffer unless a parameter says so); every
//! function returns `Result<()>` or the value it computes.

mod activation;
mod batchnorm;
mod conv;
mod gemm;
mod loss;
mod optim;
mod pool;
mod rnn;

pub use activation::*;
pub use batchnorm::*;
pub use conv::*;
pub use gemm::*;
pub use loss::*;
pub use optim::*;
pub use pool::*;
pub use rnn::*;
