//! The networks of the seed articles, built from plain layers (the graph fuses).

use crate::error::{Error, Result};
use crate::graph::{Graph, Sequential};
use crate::layer::{Act, Conv2d, Flatten, Linear, MaxPool2d};
use crate::loss::Loss;
use crate::rng::Rng;
use axonal_kernels::eltwise::Activation;

/// The models `axonal` can build by name.
pub const MODEL_NAMES: [&str; 4] = ["seed_cnn", "mlp", "logistic", "two_layer_sigmoid"];

/// A model, the loss it trains with and the shape of one input sample.
pub struct Model {
    pub name: String,
    pub graph: Graph,
    pub loss: Loss,
    /// Classes of the output (1 for the single-output models).
    pub classes: usize,
}

/// Builds the model called `name` with weights drawn from `seed`.
pub fn build(name: &str, seed: u64) -> Result<Model> {
    let mut rng = Rng::new(seed);
    let (graph, loss, classes) = match name {
        "seed_cnn" => (seed_cnn(&mut rng)?, Loss::SoftmaxCrossEntropy, 10),
        "mlp" => (mlp(&mut rng)?, Loss::SoftmaxCrossEntropy, 10),
        "logistic" => (logistic(&mut rng)?, Loss::BceWithLogits, 1),
        "two_layer_sigmoid" => (two_layer_sigmoid(8, 16, &mut rng)?, Loss::Mse, 1),
        _ => {
            return Err(Error::invalid(
                "model",
                format!("unknown model {name:?}; known: {}", MODEL_NAMES.join(", ")),
            ))
        }
    };
    Ok(Model {
        name: name.to_string(),
        graph,
        loss,
        classes,
    })
}

/// conv 1→32 3×3, ReLU, max-pool 2; conv 32→64 3×3, ReLU, max-pool 2; conv 64→64 3×3,
/// ReLU; flatten; linear 576→64, ReLU; linear 64→10. Input `[1, 28, 28]`.
pub fn seed_cnn(rng: &mut Rng) -> Result<Graph> {
    Sequential::new(&[1, 28, 28])
        .push("conv1", Conv2d::new(1, 32, 3, rng))
        .push("relu1", Act::relu())
        .push("pool1", MaxPool2d::new(2))
        .push("conv2", Conv2d::new(32, 64, 3, rng))
        .push("relu2", Act::relu())
        .push("pool2", MaxPool2d::new(2))
        .push("conv3", Conv2d::new(64, 64, 3, rng))
        .push("relu3", Act::relu())
        .push("flatten", crate::layer::Flatten)
        .push("fc1", Linear::new(576, 64, rng))
        .push("relu4", Act::relu())
        .push("fc2", Linear::new(64, 10, rng))
        .build()
}

/// 784 → 256 → 128 → 10 with ReLU. Input `[1, 28, 28]` (flattened first).
pub fn mlp(rng: &mut Rng) -> Result<Graph> {
    Sequential::new(&[1, 28, 28])
        .push("flatten", Flatten)
        .push("fc1", Linear::new(784, 256, rng))
        .push("relu1", Act::relu())
        .push("fc2", Linear::new(256, 128, rng))
        .push("relu2", Act::relu())
        .push("fc3", Linear::new(128, 10, rng))
        .build()
}

/// Logistic regression, 2 → 1: the logit of a binary classifier (trained with BCE
/// with logits, so the sigmoid lives in the loss).
pub fn logistic(rng: &mut Rng) -> Result<Graph> {
    Sequential::new(&[2])
        .push("fc", Linear::new(2, 1, rng))
        .build()
}

/// n → h → 1 with sigmoids, trained with MSE.
pub fn two_layer_sigmoid(inputs: usize, hidden: usize, rng: &mut Rng) -> Result<Graph> {
    Sequential::new(&[inputs])
        .push("fc1", Linear::new(inputs, hidden, rng))
        .push("sigmoid1", Act(Activation::Sigmoid))
        .push("fc2", Linear::new(hidden, 1, rng))
        .push("sigmoid2", Act(Activation::Sigmoid))
        .build()
}
