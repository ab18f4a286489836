//! Training and evaluation loops over a [`Dataset`].

use crate::data::{Augment, Dataset, Epoch};
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::layer::Context;
use crate::loss::{correct_predictions, Loss, Target};
use crate::optim::Optimizer;
use crate::rng::Rng;

/// Loss and accuracy over some samples.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Metrics {
    /// Mean loss per sample.
    pub loss: f64,
    /// Fraction of samples whose largest output is the label.
    pub accuracy: f64,
    pub samples: usize,
}

/// Reused buffers of a training loop.
#[derive(Debug, Default)]
pub struct Batch {
    pub labels: Vec<u32>,
    targets: Vec<f32>,
}

/// Runs the loss on the graph's output against `batch.labels` and writes its gradient
/// into the graph: class labels for cross-entropy, the labels as 0/1 target values for
/// BCE and MSE. Returns (mean loss, correct predictions).
pub fn apply_loss(
    graph: &mut Graph,
    loss: Loss,
    batch: &mut Batch,
    par: axonal_kernels::Parallelism,
) -> Result<(f32, usize)> {
    let (labels, targets) = (&batch.labels, &mut batch.targets);
    let (output, grad) = graph.output_and_grad();
    let value = match loss {
        Loss::SoftmaxCrossEntropy => {
            loss.forward_backward(output, Target::Labels(labels), grad, par)?
        }
        Loss::BceWithLogits | Loss::Mse => {
            targets.clear();
            targets.extend(labels.iter().map(|&l| l as f32));
            if targets.len() != output.len() {
                return Err(Error::shape("loss targets", output.len(), targets.len()));
            }
            loss.forward_backward(output, Target::Values(targets), grad, par)?
        }
    };
    // A single output predicts class 1 above the decision threshold: 0 for a logit
    // (BCE), ½ for a regressed probability (MSE).
    let threshold = if loss == Loss::Mse { 0.5 } else { 0.0 };
    let correct = match loss {
        Loss::SoftmaxCrossEntropy => correct_predictions(output, labels),
        _ => output
            .data()
            .iter()
            .zip(labels)
            .filter(|(&y, &l)| (y > threshold) == (l == 1))
            .count(),
    };
    Ok((value, correct))
}

/// One optimizer step on the samples at `indices`: forward, loss, backward, update.
/// Returns (mean loss, correct predictions).
#[allow(clippy::too_many_arguments)]
pub fn train_step(
    graph: &mut Graph,
    loss: Loss,
    optimizer: &mut Optimizer,
    ctx: &Context,
    data: &Dataset,
    indices: &[usize],
    augment: &Augment,
    rng: &mut Rng,
    batch: &mut Batch,
) -> Result<(f32, usize)> {
    // The whole step runs inside the thread pool: see `parallel::install`.
    axonal_kernels::parallel::install(ctx.par, || {
        let input = graph.input_mut(indices.len())?;
        data.fill(indices, input, &mut batch.labels, augment, rng)?;
        graph.forward(ctx)?;
        let result = apply_loss(graph, loss, batch, ctx.par)?;
        graph.backward(ctx)?;
        optimizer.step(graph, ctx.par)?;
        Ok(result)
    })
}

/// One epoch of training in shuffled mini-batches; `on_step` sees each step's
/// (step index, mean loss, batch size).
#[allow(clippy::too_many_arguments)]
pub fn train_epoch(
    graph: &mut Graph,
    loss: Loss,
    optimizer: &mut Optimizer,
    ctx: &Context,
    data: &Dataset,
    batch_size: usize,
    augment: &Augment,
    rng: &mut Rng,
    on_step: &mut dyn FnMut(usize, f32, usize),
) -> Result<Metrics> {
    let mut epoch = Epoch::new(data.len(), batch_size, Some(rng))?;
    let mut batch = Batch::default();
    let (mut total, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
    let mut step = 0;
    while let Some(indices) = epoch.next_batch() {
        let mut ctx = *ctx;
        ctx.step = optimizer.steps();
        let (l, c) = train_step(
            graph, loss, optimizer, &ctx, data, indices, augment, rng, &mut batch,
        )?;
        total += f64::from(l) * indices.len() as f64;
        correct += c;
        seen += indices.len();
        on_step(step, l, indices.len());
        step += 1;
    }
    Ok(Metrics {
        loss: total / seen.max(1) as f64,
        accuracy: correct as f64 / seen.max(1) as f64,
        samples: seen,
    })
}

/// Loss and accuracy of the graph in evaluation mode over the whole dataset.
pub fn evaluate(
    graph: &mut Graph,
    loss: Loss,
    par: axonal_kernels::Parallelism,
    data: &Dataset,
    batch_size: usize,
) -> Result<Metrics> {
    let ctx = Context {
        par,
        train: false,
        step: 0,
    };
    let mut epoch = Epoch::new(data.len(), batch_size, None)?;
    let mut batch = Batch::default();
    let mut rng = Rng::new(0);
    let (mut total, mut correct) = (0.0f64, 0usize);
    while let Some(indices) = epoch.next_batch() {
        let (l, c) = axonal_kernels::parallel::install(par, || {
            let input = graph.input_mut(indices.len())?;
            let no_augment = Augment::default();
            data.fill(indices, input, &mut batch.labels, &no_augment, &mut rng)?;
            graph.forward(&ctx)?;
            apply_loss(graph, loss, &mut batch, par)
        })?;
        total += f64::from(l) * indices.len() as f64;
        correct += c;
    }
    Ok(Metrics {
        loss: total / data.len().max(1) as f64,
        accuracy: correct as f64 / data.len().max(1) as f64,
        samples: data.len(),
    })
}
