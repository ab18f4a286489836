//! Losses: each returns the loss and writes its gradient with respect to the network
//! output in the same pass.

use crate::error::{Error, Result};
use crate::tensor::Tensor;
use axonal_kernels::loss::{bce_with_logits, mse, softmax_cross_entropy};
use axonal_kernels::Parallelism;

/// What the network output is compared with.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// One class index per row (cross-entropy).
    Labels(&'a [u32]),
    /// One value per output element (BCE with logits, MSE).
    Values(&'a [f32]),
}

/// A loss with PyTorch's definition and mean reduction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// `cross_entropy(logits, labels)` on `[batch, classes]` logits.
    SoftmaxCrossEntropy,
    /// `binary_cross_entropy_with_logits`.
    BceWithLogits,
    /// `mse_loss`.
    Mse,
}

impl Loss {
    /// The mean loss over the batch, writing ∂loss/∂output to `grad` (output-shaped).
    pub fn forward_backward(
        self,
        output: &Tensor,
        target: Target<'_>,
        grad: &mut [f32],
        par: Parallelism,
    ) -> Result<f32> {
        match (self, target) {
            (Loss::SoftmaxCrossEntropy, Target::Labels(labels)) => {
                let [batch, classes] = matrix("cross-entropy", output.shape())?;
                Ok(softmax_cross_entropy(
                    batch,
                    classes,
                    output.data(),
                    labels,
                    grad,
                    par,
                )?)
            }
            (Loss::BceWithLogits, Target::Values(t)) => {
                Ok(bce_with_logits(output.data(), t, grad, par)?)
            }
            (Loss::Mse, Target::Values(t)) => Ok(mse(output.data(), t, grad, par)?),
            (loss, _) => Err(Error::invalid(
                "loss target",
                format!("{loss:?} takes {}", loss.target_kind()),
            )),
        }
    }

    fn target_kind(self) -> &'static str {
        match self {
            Loss::SoftmaxCrossEntropy => "class labels",
            Loss::BceWithLogits | Loss::Mse => "one target value per output",
        }
    }
}

fn matrix(what: &str, shape: &[usize]) -> Result<[usize; 2]> {
    match *shape {
        [n, c] => Ok([n, c]),
        _ => Err(Error::shape(
            format!("{what} logits"),
            "[batch, classes]",
            format!("{shape:?}"),
        )),
    }
}

/// The number of rows whose largest output is at the label (the first on ties).
pub fn correct_predictions(output: &Tensor, labels: &[u32]) -> usize {
    let classes = output.shape().last().copied().unwrap_or(0).max(1);
    output
        .data()
        .chunks_exact(classes)
        .zip(labels)
        .filter(|(row, &label)| argmax(row) == label as usize)
        .count()
}

fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}
