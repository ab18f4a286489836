//! Fast losses with PyTorch's `reduction="mean"`, the twins of
//! [`crate::reference`]'s: each returns the mean loss and writes the gradient of that
//! mean in the same pass over the data.
//!
//! - [`softmax_cross_entropy`]: per row, a stable log-sum-exp (the row's maximum is
//!   subtracted before the exponentials), the loss and the gradient, fused;
//!   [`softmax_cross_entropy_loss`] is its forward only, [`softmax`] the probabilities.
//! - [`bce_with_logits`]: max(x, 0) − x·t + ln(1 + e^−|x|) and (σ(x) − t)/n.
//! - [`mse`]: (p − t)² and 2(p − t)/n.
//!
//! Work is cut into items that depend on the shape alone (whole rows, or blocks of
//! elements); each item's loss is a partial sum in f64, and the partial sums are added
//! in item order: the loss is bitwise the same for every [`Parallelism`].
//!
//! # Accuracy
//!
//! Exponentials, σ and ln(1 + u) are the f32 vector functions of `eltwise::vmath`
//! (a few ulp); the per-row log-sum-exp and the final mean are in f64. The tests in
//! `kernels/tests/loss.rs` state and assert the bounds against the f64 reference.

mod pointwise;
mod xent;

use crate::arch::Isa;
use crate::error::{check_exact, product, KernelError, Result};
use crate::parallel::{for_each_item, Parallelism};
use crate::workspace::with_f64s;

/// Elements per work item: large enough that the per-item cost does not show, small
/// enough to balance the threads.
const ITEM_ELEMENTS: usize = 16 * 1024;

/// PyTorch's mean of no value is NaN; an empty batch is almost surely a caller's bug.
fn check_not_empty(what: &'static str, len: usize) -> Result<()> {
    if len == 0 {
        return Err(KernelError::invalid(
            what,
            "the mean loss of an empty batch is undefined",
        ));
    }
    Ok(())
}

fn check_call(isa: Isa, par: Parallelism) -> Result<()> {
    isa.check_available()?;
    par.validate()
}

/// Checks the shape and labels of a cross-entropy call; returns `batch × classes`.
fn check_cross_entropy(
    batch: usize,
    classes: usize,
    logits: &[f32],
    labels: &[u32],
) -> Result<usize> {
    check_not_empty("cross-entropy batch", batch)?;
    let len = product("cross-entropy logits", &[batch, classes])?;
    check_exact("cross-entropy logits", len, logits.len())?;
    check_exact("cross-entropy labels", batch, labels.len())?;
    if let Some((row, &label)) = labels
        .iter()
        .enumerate()
        .find(|&(_, &label)| label as usize >= classes)
    {
        return Err(KernelError::invalid(
            "cross-entropy label",
            format!("label {label} of row {row} is not below the class count {classes}"),
        ));
    }
    Ok(len)
}

/// Rows per work item.
fn rows_per_item(classes: usize) -> usize {
    (ITEM_ELEMENTS / classes.max(1)).max(1)
}

/// The sum of the partial sums, in item order.
fn total(partials: &[f64]) -> f64 {
    partials.iter().sum()
}

/// The mean cross-entropy; with `dlogits`, also its gradient. Inputs are checked.
fn cross_entropy_run(
    isa: Isa,
    batch: usize,
    classes: usize,
    logits: &[f32],
    labels: &[u32],
    dlogits: Option<&mut [f32]>,
    par: Parallelism,
) -> f32 {
    let rows = rows_per_item(classes);
    let chunk = rows * classes;
    let inv_batch = 1.0 / batch as f64;
    with_f64s(batch.div_ceil(rows), 0.0, |partials| {
        // `chunks_mut` of an empty slice yields nothing: classes = 0 has no gradient.
        let dchunks = dlogits
            .filter(|_| chunk > 0)
            .into_iter()
            .flat_map(|d| d.chunks_mut(chunk))
            .map(Some)
            .chain(std::iter::repeat_with(|| None));
        let items = partials
            .iter_mut()
            .zip(labels.chunks(rows))
            .zip(dchunks)
            .enumerate()
            .map(|(k, ((partial, labels), d))| {
                let start = (k * chunk).min(logits.len());
                let end = (start + labels.len() * classes).min(logits.len());
                (partial, &logits[start..end], labels, d)
            });
        for_each_item(par, items, |_, (partial, logits, labels, d)| {
            *partial = if classes == 0 {
                0.0
            } else {
                xent::cross_entropy(isa, classes, inv_batch, logits, labels, d)
            };
        });
        (total(partials) * inv_batch) as f32
    })
}

/// `cross_entropy(logits, labels)` on the process's ISA path: the mean over the batch of
/// −log `softmax(row)[label]` for row-major `batch × classes` logits; writes its
/// gradient (softmax − one-hot)/batch to `dlogits`.
///
/// Errors: `batch` of 0; `batch × classes` overflows; `logits` or `dlogits` not
/// `batch × classes` long; `labels` not `batch` long; a label not below `classes`;
/// `Threads(0)`.
pub fn softmax_cross_entropy(
    batch: usize,
    classes: usize,
    logits: &[f32],
    labels: &[u32],
    dlogits: &mut [f32],
    par: Parallelism,
) -> Result<f32> {
    softmax_cross_entropy_on(
        Isa::selected()?,
        batch,
        classes,
        logits,
        labels,
        dlogits,
        par,
    )
}

/// [`softmax_cross_entropy`] on an explicit ISA path (an error if this CPU cannot run it).
pub fn softmax_cross_entropy_on(
    isa: Isa,
    batch: usize,
    classes: usize,
    logits: &[f32],
    labels: &[u32],
    dlogits: &mut [f32],
    par: Parallelism,
) -> Result<f32> {
    check_call(isa, par)?;
    let len = check_cross_entropy(batch, classes, logits, labels)?;
    check_exact("cross-entropy dlogits", len, dlogits.len())?;
    Ok(cross_entropy_run(
        isa,
        batch,
        classes,
        logits,
        labels,
        Some(dlogits),
        par,
    ))
}

/// The loss of [`softmax_cross_entropy`] without its gradient (evaluation), on the
/// process's ISA path. The value is bitwise the one [`softmax_cross_entropy`] returns
/// on the same path.
///
/// Errors: as [`softmax_cross_entropy`], less `dlogits`.
pub fn softmax_cross_entropy_loss(
    batch: usize,
    classes: usize,
    logits: &[f32],
    labels: &[u32],
    par: Parallelism,
) -> Result<f32> {
    softmax_cross_entropy_loss_on(Isa::selected()?, batch, classes, logits, labels, par)
}

/// [`softmax_cross_entropy_loss`] on an explicit ISA path.
pub fn softmax_cross_entropy_loss_on(
    isa: Isa,
    batch: usize,
    classes: usize,
    logits: &[f32],
    labels: &[u32],
    par: Parallelism,
) -> Result<f32> {
    check_call(isa, par)?;
    check_cross_entropy(batch, classes, logits, labels)?;
    Ok(cross_entropy_run(
        isa, batch, classes, logits, labels, None, par,
    ))
}

/// Row-wise softmax of row-major `batch × classes` logits into `probs`, on the
/// process's ISA path. An empty batch is fine (nothing to do).
///
/// Errors: `batch × classes` overflows; `logits` or `probs` not `batch × classes` long;
/// `Threads(0)`.
pub fn softmax(
    batch: usize,
    classes: usize,
    logits: &[f32],
    probs: &mut [f32],
    par: Parallelism,
) -> Result<()> {
    softmax_on(Isa::selected()?, batch, classes, logits, probs, par)
}

/// [`softmax`] on an explicit ISA path.
pub fn softmax_on(
    isa: Isa,
    batch: usize,
    classes: usize,
    logits: &[f32],
    probs: &mut [f32],
    par: Parallelism,
) -> Result<()> {
    check_call(isa, par)?;
    let len = product("softmax logits", &[batch, classes])?;
    check_exact("softmax logits", len, logits.len())?;
    check_exact("softmax probs", len, probs.len())?;
    if len == 0 {
        return Ok(());
    }
    let chunk = rows_per_item(classes) * classes;
    let items = logits.chunks(chunk).zip(probs.chunks_mut(chunk));
    for_each_item(par, items, |_, (logits, probs)| {
        xent::softmax(isa, classes, logits, probs)
    });
    Ok(())
}

/// Signature of the element-wise loss kernels: (scale, a, b, gradient) → Σ loss terms.
type PointwiseFn = fn(Isa, f32, &[f32], &[f32], &mut [f32]) -> f64;

/// Runs an element-wise loss over fixed blocks and returns the mean loss.
fn pointwise_run(
    isa: Isa,
    kernel: PointwiseFn,
    scale: f32,
    a: &[f32],
    b: &[f32],
    d: &mut [f32],
    par: Parallelism,
) -> f32 {
    with_f64s(a.len().div_ceil(ITEM_ELEMENTS), 0.0, |partials| {
        let items = partials
            .iter_mut()
            .zip(a.chunks(ITEM_ELEMENTS))
            .zip(b.chunks(ITEM_ELEMENTS))
            .zip(d.chunks_mut(ITEM_ELEMENTS));
        for_each_item(par, items, |_, (((partial, a), b), d)| {
            *partial = kernel(isa, scale, a, b, d);
        });
        (total(partials) / a.len() as f64) as f32
    })
}

/// `binary_cross_entropy_with_logits(logits, targets)` on the process's ISA path: the
/// mean over all elements of max(x, 0) − x·t + log(1 + e^−|x|); writes its gradient
/// (σ(x) − t)/n to `dlogits`. Targets may be any real numbers (soft labels).
///
/// Errors: empty `logits`; `targets` or `dlogits` not the length of `logits`;
/// `Threads(0)`.
pub fn bce_with_logits(
    logits: &[f32],
    targets: &[f32],
    dlogits: &mut [f32],
    par: Parallelism,
) -> Result<f32> {
    bce_with_logits_on(Isa::selected()?, logits, targets, dlogits, par)
}

/// [`bce_with_logits`] on an explicit ISA path.
pub fn bce_with_logits_on(
    isa: Isa,
    logits: &[f32],
    targets: &[f32],
    dlogits: &mut [f32],
    par: Parallelism,
) -> Result<f32> {
    check_call(isa, par)?;
    check_not_empty("bce logits", logits.len())?;
    check_exact("bce targets", logits.len(), targets.len())?;
    check_exact("bce dlogits", logits.len(), dlogits.len())?;
    let inv_n = (1.0 / logits.len() as f64) as f32;
    Ok(pointwise_run(
        isa,
        pointwise::bce,
        inv_n,
        logits,
        targets,
        dlogits,
        par,
    ))
}

/// `mse_loss(pred, target)` on the process's ISA path: the mean over all elements of
/// (pred − target)²; writes its gradient 2·(pred − target)/n to `dpred`.
///
/// Errors: empty `pred`; `target` or `dpred` not the length of `pred`; `Threads(0)`.
pub fn mse(pred: &[f32], target: &[f32], dpred: &mut [f32], par: Parallelism) -> Result<f32> {
    mse_on(Isa::selected()?, pred, target, dpred, par)
}

/// [`mse`] on an explicit ISA path.
pub fn mse_on(
    isa: Isa,
    pred: &[f32],
    target: &[f32],
    dpred: &mut [f32],
    par: Parallelism,
) -> Result<f32> {
    check_call(isa, par)?;
    check_not_empty("mse pred", pred.len())?;
    check_exact("mse target", pred.len(), target.len())?;
    check_exact("mse dpred", pred.len(), dpred.len())?;
    let two_over_n = (2.0 / pred.len() as f64) as f32;
    Ok(pointwise_run(
        isa,
        pointwise::mse,
        two_over_n,
        pred,
        target,
        dpred,
        par,
    ))
}
