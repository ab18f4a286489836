//! Reference losses with PyTorch's `reduction="mean"`: each returns the mean loss and
//! writes the gradient of that mean.
//!
//! The public functions check their inputs, widen them to f64 and call the f64 cores
//! below, which the unit tests also differentiate numerically.

use crate::error::{check_exact, product, KernelError, Result};

fn widen(values: &[f32]) -> Vec<f64> {
    values.iter().map(|&v| f64::from(v)).collect()
}

fn narrow(from: &[f64], to: &mut [f32]) {
    for (to, &from) in to.iter_mut().zip(from) {
        *to = from as f32;
    }
}

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

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Mean cross-entropy of softmax rows and its gradient (softmax − one-hot)/batch.
/// Each row's log Σ e^z is taken after subtracting the row's maximum, so no exponential
/// overflows. The labels have been checked against the row length.
fn cross_entropy_core(classes: usize, logits: &[f64], labels: &[u32]) -> (f64, Vec<f64>) {
    let batch = labels.len() as f64;
    let mut grad = vec![0.0; logits.len()];
    let mut total = 0.0;
    for ((row, grad_row), &label) in logits
        .chunks_exact(classes)
        .zip(grad.chunks_exact_mut(classes))
        .zip(labels)
    {
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let sum_exp: f64 = row.iter().map(|&z| (z - max).exp()).sum();
        let log_sum_exp = max + sum_exp.ln();
        total += log_sum_exp - row[label as usize];
        for (g, &z) in grad_row.iter_mut().zip(row) {
            *g = (z - log_sum_exp).exp() / batch;
        }
        grad_row[label as usize] -= 1.0 / batch;
    }
    (total / batch, grad)
}

/// Mean binary cross-entropy of sigmoid(logits) against `targets`, in the stable form
/// max(x, 0) − x·t + ln(1 + e^−|x|), and its gradient (sigmoid(x) − t)/n.
fn bce_core(logits: &[f64], targets: &[f64]) -> (f64, Vec<f64>) {
    let n = logits.len() as f64;
    let total: f64 = logits
        .iter()
        .zip(targets)
        .map(|(&x, &t)| x.max(0.0) - x * t + (-x.abs()).exp().ln_1p())
        .sum();
    let grad = logits
        .iter()
        .zip(targets)
        .map(|(&x, &t)| (sigmoid(x) - t) / n)
        .collect();
    (total / n, grad)
}

/// Mean squared error over all elements and its gradient 2·(pred − target)/n.
fn mse_core(pred: &[f64], target: &[f64]) -> (f64, Vec<f64>) {
    let n = pred.len() as f64;
    let total: f64 = pred.iter().zip(target).map(|(p, t)| (p - t).powi(2)).sum();
    let grad = pred
        .iter()
        .zip(target)
        .map(|(p, t)| 2.0 * (p - t) / n)
        .collect();
    (total / n, grad)
}

/// `cross_entropy(logits, labels)`: the mean over the batch of −log `softmax(row)[label]`
/// for row-major `batch × classes` logits; writes its gradient to `dlogits`.
///
/// Errors: `batch` of 0; `batch × classes` overflows; `logits` or `dlogits` not
/// `batch × classes` long; `labels` not `batch` long; a label not below `classes`.
pub fn softmax_cross_entropy(
    batch: usize,
    classes: usize,
    logits: &[f32],
    labels: &[u32],
    dlogits: &mut [f32],
) -> Result<f32> {
    check_not_empty("cross-entropy batch", batch)?;
    let len = product("cross-entropy logits", &[batch, classes])?;
    check_exact("cross-entropy logits", len, logits.len())?;
    check_exact("cross-entropy labels", batch, labels.len())?;
    check_exact("cross-entropy dlogits", len, dlogits.len())?;
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
    let (loss, grad) = cross_entropy_core(classes, &widen(logits), labels);
    narrow(&grad, dlogits);
    Ok(loss as f32)
}

/// `binary_cross_entropy_with_logits(logits, targets)`: the mean over all elements of
/// −t·log σ(x) − (1 − t)·log(1 − σ(x)), computed in the stable form
/// max(x, 0) − x·t + log(1 + e^−|x|); writes its gradient to `dlogits`. Targets may be
/// any real numbers (soft labels), as in PyTorch.
///
/// Errors: empty `logits`; `targets` or `dlogits` not the length of `logits`.
pub fn bce_with_logits(logits: &[f32], targets: &[f32], dlogits: &mut [f32]) -> Result<f32> {
    check_not_empty("bce logits", logits.len())?;
    check_exact("bce targets", logits.len(), targets.len())?;
    check_exact("bce dlogits", logits.len(), dlogits.len())?;
    let (loss, grad) = bce_core(&widen(logits), &widen(targets));
    narrow(&grad, dlogits);
    Ok(loss as f32)
}

/// `mse_loss(pred, target)`: the mean over all elements of (pred − target)²; writes its
/// gradient to `dpred`.
///
/// Errors: empty `pred`; `target` or `dpred` not the length of `pred`.
pub fn mse(pred: &[f32], target: &[f32], dpred: &mut [f32]) -> Result<f32> {
    check_not_empty("mse pred", pred.len())?;
    check_exact("mse target", pred.len(), target.len())?;
    check_exact("mse dpred", pred.len(), dpred.len())?;
    let (loss, grad) = mse_core(&widen(pred), &widen(target));
    narrow(&grad, dpred);
    Ok(loss as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values spread over [−scale, scale].
    fn wave(len: usize, seed: f64, scale: f64) -> Vec<f64> {
        (0..len)
            .map(|i| scale * ((i as f64 + seed) * 1.618_033_988_749).sin())
            .collect()
    }

    /// Asserts that `grad` is the central-difference gradient of `loss` at `at`.
    fn assert_gradient(what: &str, at: &[f64], grad: &[f64], loss: impl Fn(&[f64]) -> f64) {
        let h = 1e-6;
        for i in 0..at.len() {
            let (mut plus, mut minus) = (at.to_vec(), at.to_vec());
            plus[i] += h;
            minus[i] -= h;
            let fd = (loss(&plus) - loss(&minus)) / (2.0 * h);
            assert!(
                (grad[i] - fd).abs() <= 1e-8 * (1.0 + fd.abs()),
                "{what}[{i}]: gradient {:e}, finite difference {fd:e}",
                grad[i]
            );
        }
    }

    #[test]
    fn gradients_match_central_differences() {
        let logits = wave(4 * 5, 0.0, 4.0);
        let labels = [0u32, 4, 2, 2];
        let (_, grad) = cross_entropy_core(5, &logits, &labels);
        assert_gradient("cross-entropy", &logits, &grad, |z| {
            cross_entropy_core(5, z, &labels).0
        });

        // Soft targets in [0, 1] and one out of it, as PyTorch allows.
        let logits = wave(9, 1.0, 6.0);
        let mut targets: Vec<f64> = wave(9, 2.0, 0.5).iter().map(|t| t + 0.5).collect();
        targets[3] = 1.5;
        let (_, grad) = bce_core(&logits, &targets);
        assert_gradient("bce", &logits, &grad, |x| bce_core(x, &targets).0);

        let pred = wave(7, 3.0, 2.0);
        let target = wave(7, 4.0, 2.0);
        let (_, grad) = mse_core(&pred, &target);
        assert_gradient("mse", &pred, &grad, |p| mse_core(p, &target).0);
    }

    #[test]
    fn values_by_hand() {
        // Equal logits: the loss is ln(classes) and the gradient (1/classes − onehot)/batch.
        let mut d = [f32::NAN; 8];
        let loss = softmax_cross_entropy(2, 4, &[3.0; 8], &[1, 3], &mut d).unwrap();
        assert_eq!(loss, 4f64.ln() as f32);
        assert_eq!(
            d,
            [0.125, -0.375, 0.125, 0.125, 0.125, 0.125, 0.125, -0.375]
        );

        let mut d = [f32::NAN; 2];
        let loss = bce_with_logits(&[0.0, 0.0], &[1.0, 0.0], &mut d).unwrap();
        assert_eq!(loss, 2f64.ln() as f32);
        assert_eq!(d, [-0.25, 0.25]);

        let mut d = [f32::NAN; 2];
        assert_eq!(mse(&[1.0, 4.0], &[0.0, 2.0], &mut d).unwrap(), 2.5);
        assert_eq!(d, [1.0, 2.0]);
    }

    #[test]
    fn extreme_logits_stay_finite_and_exact() {
        // exp(1000) overflows f64: the max subtraction keeps the loss exact.
        let mut d = [f32::NAN; 2];
        let loss = softmax_cross_entropy(1, 2, &[1000.0, 0.0], &[1], &mut d).unwrap();
        assert_eq!(loss, 1000.0);
        assert_eq!(d, [1.0, -1.0]);

        let mut d = [f32::NAN; 3];
        let loss = bce_with_logits(&[200.0, -200.0, -200.0], &[1.0, 1.0, 0.0], &mut d).unwrap();
        // Per element: e^−200 (about 0), 200, e^−200.
        assert_eq!(loss, (200.0f64 / 3.0) as f32);
        assert_eq!(d, [0.0, (-1.0f64 / 3.0) as f32, 0.0]);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let mut d = [0.0f32; 6];
        assert!(matches!(
            softmax_cross_entropy(2, 3, &[0.0; 6], &[0, 3], &mut d),
            Err(KernelError::InvalidParameter { .. })
        ));
        assert!(softmax_cross_entropy(2, 3, &[0.0; 6], &[0], &mut d).is_err());
        assert!(softmax_cross_entropy(2, 3, &[0.0; 5], &[0, 1], &mut d).is_err());
        assert!(softmax_cross_entropy(2, 3, &[0.0; 6], &[0, 1], &mut d[..5]).is_err());
        assert!(softmax_cross_entropy(0, 3, &[], &[], &mut []).is_err());
        assert!(softmax_cross_entropy(1, 0, &[], &[0], &mut []).is_err());
        assert!(matches!(
            softmax_cross_entropy(usize::MAX, 2, &[], &[], &mut []),
            Err(KernelError::SizeOverflow { .. })
        ));

        assert!(bce_with_logits(&[0.0; 3], &[0.0; 2], &mut [0.0; 3]).is_err());
        assert!(bce_with_logits(&[0.0; 3], &[0.0; 3], &mut [0.0; 4]).is_err());
        assert!(bce_with_logits(&[], &[], &mut []).is_err());
        assert!(mse(&[0.0; 3], &[0.0; 4], &mut [0.0; 3]).is_err());
        assert!(mse(&[0.0; 3], &[0.0; 3], &mut [0.0; 2]).is_err());
        assert!(mse(&[], &[], &mut []).is_err());
    }
}
