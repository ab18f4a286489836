//! The networks of the seed articles, built from plain layers (the graph fuses).

use crate::error::{Error, Result};
use crate::graph::{Graph, GraphBuilder, NodeId, Sequential};
use crate::layer::{Act, Add, BatchNorm, Conv2d, Flatten, GlobalAvgPool, Linear, MaxPool2d};
use crate::loss::Loss;
use crate::rng::Rng;
use axonal_kernels::eltwise::Activation;
use axonal_kernels::Layout;

/// The models `axonal` can build by name.
pub const MODEL_NAMES: [&str; 6] = [
    "seed_cnn",
    "seed_cnn_bn",
    "mlp",
    "resnet_mini",
    "logistic",
    "two_layer_sigmoid",
];

/// A model, the loss it trains with and the shape of one input sample.
pub struct Model {
    pub name: String,
    pub graph: Graph,
    pub loss: Loss,
    /// Classes of the output (1 for the single-output models).
    pub classes: usize,
}

/// Builds the model called `name` with weights drawn from `seed`, in the activation
/// layout that trains it fastest (the builder functions below give NCHW graphs).
pub fn build(name: &str, seed: u64) -> Result<Model> {
    let mut rng = Rng::new(seed);
    let (graph, loss, classes) = match name {
        "seed_cnn" => (seed_cnn(&mut rng)?, Loss::SoftmaxCrossEntropy, 10),
        "seed_cnn_bn" => (seed_cnn_bn(&mut rng)?, Loss::SoftmaxCrossEntropy, 10),
        "resnet_mini" => (resnet_mini(&mut rng)?, Loss::SoftmaxCrossEntropy, 10),
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
    let mut graph = graph;
    // Measured with `axonal profile --layout` (1 thread, batch 64; resnet_mini batch 32):
    // NHWC trains the CNNs 10–30% faster, its convolutions' im2col copying whole channel
    // runs. The MLP has no image activations past its input, where both are the same.
    if matches!(name, "seed_cnn" | "seed_cnn_bn" | "resnet_mini") {
        graph.set_layout(Layout::Nhwc);
    }
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
        .push("flatten", Flatten::new())
        .push("fc1", Linear::new(576, 64, rng))
        .push("relu4", Act::relu())
        .push("fc2", Linear::new(64, 10, rng))
        .build()
}

/// The seed CNN with `BatchNorm2d` after each convolution (before its ReLU).
pub fn seed_cnn_bn(rng: &mut Rng) -> Result<Graph> {
    Sequential::new(&[1, 28, 28])
        .push("conv1", Conv2d::new(1, 32, 3, rng))
        .push("bn1", BatchNorm::new(32))
        .push("relu1", Act::relu())
        .push("pool1", MaxPool2d::new(2))
        .push("conv2", Conv2d::new(32, 64, 3, rng))
        .push("bn2", BatchNorm::new(64))
        .push("relu2", Act::relu())
        .push("pool2", MaxPool2d::new(2))
        .push("conv3", Conv2d::new(64, 64, 3, rng))
        .push("bn3", BatchNorm::new(64))
        .push("relu3", Act::relu())
        .push("flatten", Flatten::new())
        .push("fc1", Linear::new(576, 64, rng))
        .push("relu4", Act::relu())
        .push("fc2", Linear::new(64, 10, rng))
        .build()
}

/// A 3×3 convolution without bias (batch norm follows), padding 1.
fn conv3x3(inputs: usize, outputs: usize, stride: usize, rng: &mut Rng) -> Conv2d {
    Conv2d::builder(inputs, outputs, 3)
        .stride(stride)
        .padding(1)
        .bias(false)
        .build(rng)
}

/// A residual basic block: conv-BN-ReLU-conv-BN, plus the input (or its 1×1 strided
/// projection with BN), then ReLU.
fn basic_block(
    g: &mut GraphBuilder,
    name: &str,
    x: NodeId,
    (inputs, outputs, stride): (usize, usize, usize),
    rng: &mut Rng,
) -> Result<NodeId> {
    let n = |part: &str| format!("{name}.{part}");
    let c1 = g.add(&n("conv1"), conv3x3(inputs, outputs, stride, rng), &[x])?;
    let b1 = g.add(&n("bn1"), BatchNorm::new(outputs), &[c1])?;
    let r1 = g.add(&n("relu1"), Act::relu(), &[b1])?;
    let c2 = g.add(&n("conv2"), conv3x3(outputs, outputs, 1, rng), &[r1])?;
    let b2 = g.add(&n("bn2"), BatchNorm::new(outputs), &[c2])?;
    let shortcut = if stride != 1 || inputs != outputs {
        let proj = Conv2d::builder(inputs, outputs, 1)
            .stride(stride)
            .bias(false)
            .build(rng);
        let p = g.add(&n("proj"), proj, &[x])?;
        g.add(&n("proj_bn"), BatchNorm::new(outputs), &[p])?
    } else {
        x
    };
    let sum = g.add(&n("add"), Add, &[b2, shortcut])?;
    g.add(&n("relu2"), Act::relu(), &[sum])
}

/// A small ResNet on 3×32×32 images: conv 3→64 + BN + ReLU, two 64-channel basic
/// blocks, a stride-2 basic block to 128 channels with a 1×1 projection, global average
/// pooling and a linear 128 → 10.
pub fn resnet_mini(rng: &mut Rng) -> Result<Graph> {
    let mut g = GraphBuilder::new(&[3, 32, 32]);
    let stem = g.add("stem.conv", conv3x3(3, 64, 1, rng), &[g.input()])?;
    let stem = g.add("stem.bn", BatchNorm::new(64), &[stem])?;
    let mut x = g.add("stem.relu", Act::relu(), &[stem])?;
    x = basic_block(&mut g, "block1", x, (64, 64, 1), rng)?;
    x = basic_block(&mut g, "block2", x, (64, 64, 1), rng)?;
    x = basic_block(&mut g, "block3", x, (64, 128, 2), rng)?;
    let pooled = g.add("pool", GlobalAvgPool::new(), &[x])?;
    let fc = g.add("fc", Linear::new(128, 10, rng), &[pooled])?;
    g.build(fc)
}

/// 784 → 256 → 128 → 10 with ReLU. Input `[1, 28, 28]` (flattened first).
pub fn mlp(rng: &mut Rng) -> Result<Graph> {
    Sequential::new(&[1, 28, 28])
        .push("flatten", Flatten::new())
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
