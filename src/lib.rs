//! axonal: a thin layer graph over the kernels in [`axonal_kernels`].
//!
//! Build a network from plain layers ([`Sequential`] or [`GraphBuilder`]), run
//! [`Graph::forward`] and [`Graph::backward`], compute a [`Loss`] and step an
//! [`Optimizer`]. The graph fuses what the kernels can do in one pass and plans its
//! buffers once, so training steps after the first allocate nothing.

pub mod checkpoint;
pub mod data;
pub mod error;
pub mod graph;
pub mod init;
pub mod layer;
pub mod loss;
pub mod models;
pub mod optim;
pub mod param;
pub mod rng;
pub mod tensor;
pub mod train;

pub use axonal_kernels as kernels;
pub use error::{Error, Result};
pub use graph::{Graph, GraphBuilder, NodeId, NodeInfo, PassEvent, Sequential};
pub use layer::{Context, Layer};
pub use loss::{Loss, Target};
pub use optim::Optimizer;
pub use param::Param;
pub use rng::Rng;
pub use tensor::Tensor;
