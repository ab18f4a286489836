//! axonal: a thin layer graph over the kernels in [`axonal_kernels`].
//!
//! The graph, layers, optimizers and data loading are being built on top of the
//! kernels crate; for now this crate re-exports the kernels so that users have one
//! name to depend on.

pub use axonal_kernels as kernels;
