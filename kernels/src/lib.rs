//! axonal-kernels: fast f32 CPU kernels for training and running convolutional networks.
//!
//! Every kernel takes raw slices plus a descriptor of their shape, checks every length
//! and returns [`KernelError`] on bad input. Hot kernels have three paths — scalar,
//! AVX2+FMA and a 4-lane `wide` path (NEON on aarch64) — chosen once per process by
//! [`arch::Isa`]. [`reference`] holds the naive, f64-accumulating twin of every kernel
//! that the tests compare against.

pub mod arch;
pub mod conv;
pub mod dropout;
pub mod eltwise;
pub mod error;
pub mod gemm;
pub mod layout;
pub mod loss;
pub mod math;
pub mod norm;
pub mod optim;
pub mod parallel;
pub mod pool;
pub mod probe;
pub mod reference;
mod workspace;

pub use arch::Isa;
pub use error::{KernelError, Result};
pub use layout::{Dims4, Layout};
pub use parallel::Parallelism;
