//! axonal: a thin layer graph over the kernels in [`axonal_kernels`].
//!
//! Build a network from plain layers ([`Sequential`] or [`GraphBuilder`]), run
//! [`Graph::forward`] and [`Graph::backward`], compute a [`Loss`] and step an
//! [`Optimizer`]. The graph fuses what the kernels can do in one pass and plans its
//! buffers once, so training steps after the first allocate nothing.
//!
//! ```
//! use axonal::kernels::optim::Adam;
//! use axonal::layer::{Act, Linear};
//! use axonal::optim::{Method, Optimizer};
//! use axonal::{Context, Loss, Rng, Sequential, Target};
//!
//! let mut rng = Rng::new(0);
//! // Plain layers; the graph runs fc1 and its ReLU as one GEMM with a fused epilogue.
//! let mut graph = Sequential::new(&[4])
//!     .push("fc1", Linear::new(4, 8, &mut rng))
//!     .push("relu", Act::relu())
//!     .push("fc2", Linear::new(8, 3, &mut rng))
//!     .build()?;
//! let mut adam = Optimizer::new(Method::Adam(Adam::new(1e-2)))?;
//! let ctx = Context::default();
//! let labels = [0u32, 2];
//! let mut losses = Vec::new();
//! for _ in 0..20 {
//!     graph.input_mut(2)?.copy_from_slice(&[1.0, 0.0, 0.5, -1.0, -0.5, 1.0, 0.0, 2.0]);
//!     graph.forward(&ctx)?;
//!     let (logits, grad) = graph.output_and_grad();
//!     losses.push(Loss::SoftmaxCrossEntropy.forward_backward(logits, Target::Labels(&labels), grad, ctx.par)?);
//!     graph.backward(&ctx)?;
//!     adam.step(&mut graph, ctx.par)?;
//! }
//! assert!(losses[19] < losses[0]);
//! # Ok::<(), axonal::Error>(())
//! ```

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
