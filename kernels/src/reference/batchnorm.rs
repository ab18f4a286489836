//! Reference batch normalization (PyTorch's `BatchNorm1d/2d`), NCHW or NHWC.
//!
//! The public functions check their inputs, widen them to f64 and call the f64 cores
//! below, which the unit tests also differentiate numerically.

use crate::error::Result;
use crate::norm::BatchNormDesc;

/// Offsets of every value of channel `c`, image by image.
fn channel_offsets(desc: &BatchNormDesc, c: usize) -> impl Iterator<Item = usize> + '_ {
    (0..desc.batch).flat_map(move |n| (0..desc.spatial).map(move |s| desc.index(n, c, s)))
}

fn widen(values: &[f32]) -> Vec<f64> {
    values.iter().map(|&v| f64::from(v)).collect()
}

fn narrow(from: &[f64], to: &mut [f32]) {
    for (to, &from) in to.iter_mut().zip(from) {
        *to = from as f32;
    }
}

/// Per channel: the mean and the sum of squared deviations from it, in two passes so
/// that a large common offset cancels exactly before anything is squared.
fn channel_moments(desc: &BatchNormDesc, x: &[f64]) -> Vec<(f64, f64)> {
    let count = desc.count_per_channel() as f64;
    (0..desc.channels)
        .map(|c| {
            let mean = channel_offsets(desc, c).map(|at| x[at]).sum::<f64>() / count;
            let squared_deviations = channel_offsets(desc, c)
                .map(|at| (x[at] - mean).powi(2))
                .sum::<f64>();
            (mean, squared_deviations)
        })
        .collect()
}

/// 1/√(var + eps).
fn inverse_std(desc: &BatchNormDesc, var: f64) -> f64 {
    1.0 / (var + f64::from(desc.eps)).sqrt()
}

/// y = gamma·(x − mean)·inv_std + beta, per channel.
fn normalize(
    desc: &BatchNormDesc,
    x: &[f64],
    gamma: &[f64],
    beta: &[f64],
    mean: &[f64],
    inv_std: &[f64],
) -> Vec<f64> {
    let mut y = vec![0.0; x.len()];
    for c in 0..desc.channels {
        for at in channel_offsets(desc, c) {
            y[at] = gamma[c] * (x[at] - mean[c]) * inv_std[c] + beta[c];
        }
    }
    y
}

/// The gradients of [`normalize`] with the batch statistics, which themselves depend
/// on x: with x̂ = (x − mean)·inv_std and m values per channel,
/// dbeta = Σ dy, dgamma = Σ dy·x̂, dx = gamma·inv_std·(dy − dbeta/m − x̂·dgamma/m).
/// Returns (dx, dgamma, dbeta).
fn backward(
    desc: &BatchNormDesc,
    x: &[f64],
    dy: &[f64],
    gamma: &[f64],
    mean: &[f64],
    inv_std: &[f64],
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let count = desc.count_per_channel() as f64;
    let mut dx = vec![0.0; x.len()];
    let mut dgamma = vec![0.0; desc.channels];
    let mut dbeta = vec![0.0; desc.channels];
    for c in 0..desc.channels {
        let x_hat = |at: usize| (x[at] - mean[c]) * inv_std[c];
        dbeta[c] = channel_offsets(desc, c).map(|at| dy[at]).sum();
        dgamma[c] = channel_offsets(desc, c).map(|at| dy[at] * x_hat(at)).sum();
        for at in channel_offsets(desc, c) {
            dx[at] =
                gamma[c] * inv_std[c] * (dy[at] - dbeta[c] / count - x_hat(at) * dgamma[c] / count);
        }
    }
    (dx, dgamma, dbeta)
}

/// Training-mode forward: normalizes each channel with the batch's own mean and biased
/// variance, y = gamma·(x − mean)/√(var + eps) + beta, and updates the running
/// statistics as PyTorch does, running_mean ← (1 − momentum)·running_mean +
/// momentum·mean and running_var ← (1 − momentum)·running_var + momentum·var·m/(m − 1)
/// (the unbiased variance, m values per channel). Writes the batch mean and
/// 1/√(var + eps) to `saved_mean` and `saved_inv_std` for [`batch_norm_backward`].
///
/// Statistics are computed in f64 in two passes, so data far from zero (mean 1e4,
/// std 1) is normalized to f64 accuracy.
///
/// Errors: invalid `desc`; non-finite `momentum`; fewer than 2 values per channel
/// (PyTorch: "Expected more than 1 value per channel when training"); `x`, `y` not
/// `desc.len()` long; a per-channel slice not `desc.channels` long.
// The flat argument list mirrors PyTorch's `native_batch_norm` (inputs, running
// statistics, outputs): grouping it would hide which buffers are read and which written.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_forward_training(
    desc: &BatchNormDesc,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    momentum: f32,
    running_mean: &mut [f32],
    running_var: &mut [f32],
    y: &mut [f32],
    saved_mean: &mut [f32],
    saved_inv_std: &mut [f32],
) -> Result<()> {
    desc.check_lengths(
        &[("batch-norm x", x.len()), ("batch-norm y", y.len())],
        &[
            ("batch-norm gamma", gamma.len()),
            ("batch-norm beta", beta.len()),
            ("batch-norm running_mean", running_mean.len()),
            ("batch-norm running_var", running_var.len()),
            ("batch-norm saved_mean", saved_mean.len()),
            ("batch-norm saved_inv_std", saved_inv_std.len()),
        ],
    )?;
    desc.check_training(momentum)?;
    let count = desc.count_per_channel();
    let x = widen(x);
    let moments = channel_moments(desc, &x);
    let mean: Vec<f64> = moments.iter().map(|&(mean, _)| mean).collect();
    let inv_std: Vec<f64> = moments
        .iter()
        .map(|&(_, ssd)| inverse_std(desc, ssd / count as f64))
        .collect();
    narrow(
        &normalize(desc, &x, &widen(gamma), &widen(beta), &mean, &inv_std),
        y,
    );
    narrow(&mean, saved_mean);
    narrow(&inv_std, saved_inv_std);
    let momentum = f64::from(momentum);
    for (c, &(mean, ssd)) in moments.iter().enumerate() {
        let unbiased_var = ssd / (count - 1) as f64;
        running_mean[c] = ((1.0 - momentum) * f64::from(running_mean[c]) + momentum * mean) as f32;
        running_var[c] =
            ((1.0 - momentum) * f64::from(running_var[c]) + momentum * unbiased_var) as f32;
    }
    Ok(())
}

/// Inference-mode forward: y = gamma·(x − running_mean)/√(running_var + eps) + beta.
///
/// Errors: invalid `desc`; `x`, `y` not `desc.len()` long; a per-channel slice not
/// `desc.channels` long.
pub fn batch_norm_forward_inference(
    desc: &BatchNormDesc,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    running_mean: &[f32],
    running_var: &[f32],
    y: &mut [f32],
) -> Result<()> {
    desc.check_lengths(
        &[("batch-norm x", x.len()), ("batch-norm y", y.len())],
        &[
            ("batch-norm gamma", gamma.len()),
            ("batch-norm beta", beta.len()),
            ("batch-norm running_mean", running_mean.len()),
            ("batch-norm running_var", running_var.len()),
        ],
    )?;
    let inv_std: Vec<f64> = running_var
        .iter()
        .map(|&var| inverse_std(desc, f64::from(var)))
        .collect();
    let y64 = normalize(
        desc,
        &widen(x),
        &widen(gamma),
        &widen(beta),
        &widen(running_mean),
        &inv_std,
    );
    narrow(&y64, y);
    Ok(())
}

/// Backward of [`batch_norm_forward_training`] from its saved statistics: with
/// x̂ = (x − saved_mean)·saved_inv_std and m values per channel,
/// dbeta = Σ dy, dgamma = Σ dy·x̂ and
/// dx = gamma·saved_inv_std·(dy − dbeta/m − x̂·dgamma/m), summed in f64.
///
/// The saved statistics are f32, as PyTorch's are: for data whose mean is large
/// against its spread (mean 1e4, std 1), the rounding of `saved_mean` (up to 5e-4
/// there) shifts x̂ and bounds the accuracy of the gradients.
///
/// Errors: invalid `desc`; `x`, `dy`, `dx` not `desc.len()` long; a per-channel slice
/// not `desc.channels` long.
// Flat for the same reason as the training forward.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_backward(
    desc: &BatchNormDesc,
    x: &[f32],
    dy: &[f32],
    gamma: &[f32],
    saved_mean: &[f32],
    saved_inv_std: &[f32],
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) -> Result<()> {
    desc.check_lengths(
        &[
            ("batch-norm x", x.len()),
            ("batch-norm dy", dy.len()),
            ("batch-norm dx", dx.len()),
        ],
        &[
            ("batch-norm gamma", gamma.len()),
            ("batch-norm saved_mean", saved_mean.len()),
            ("batch-norm saved_inv_std", saved_inv_std.len()),
            ("batch-norm dgamma", dgamma.len()),
            ("batch-norm dbeta", dbeta.len()),
        ],
    )?;
    let (dx64, dgamma64, dbeta64) = backward(
        desc,
        &widen(x),
        &widen(dy),
        &widen(gamma),
        &widen(saved_mean),
        &widen(saved_inv_std),
    );
    narrow(&dx64, dx);
    narrow(&dgamma64, dgamma);
    narrow(&dbeta64, dbeta);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::KernelError;
    use crate::layout::Layout;

    /// Deterministic values spread over [−scale, scale].
    fn wave(len: usize, seed: f64, scale: f64) -> Vec<f32> {
        (0..len)
            .map(|i| (scale * ((i as f64 + seed) * 1.618_033_988_749).sin()) as f32)
            .collect()
    }

    /// Σ dy·y of the training forward, all in f64: the scalar whose gradient
    /// [`backward`] computes.
    fn training_objective(
        desc: &BatchNormDesc,
        x: &[f64],
        gamma: &[f64],
        beta: &[f64],
        dy: &[f64],
    ) -> f64 {
        let m = desc.count_per_channel() as f64;
        let moments = channel_moments(desc, x);
        let mean: Vec<f64> = moments.iter().map(|p| p.0).collect();
        let inv_std: Vec<f64> = moments.iter().map(|p| inverse_std(desc, p.1 / m)).collect();
        let y = normalize(desc, x, gamma, beta, &mean, &inv_std);
        y.iter().zip(dy).map(|(y, dy)| y * dy).sum()
    }

    /// Central difference of `f` in coordinate `i` of `v`.
    fn central_difference(v: &[f64], i: usize, f: impl Fn(&[f64]) -> f64) -> f64 {
        let h = 1e-6;
        let (mut plus, mut minus) = (v.to_vec(), v.to_vec());
        plus[i] += h;
        minus[i] -= h;
        (f(&plus) - f(&minus)) / (2.0 * h)
    }

    fn assert_near(got: f64, expected: f64, tol: f64, what: &str) {
        assert!(
            (got - expected).abs() <= tol * (1.0 + expected.abs()),
            "{what}: got {got:e}, expected {expected:e}"
        );
    }

    #[test]
    fn backward_matches_central_differences() {
        for layout in [Layout::Nchw, Layout::Nhwc] {
            let desc = BatchNormDesc::new(3, 2, 4).layout(layout);
            let x = widen(&wave(desc.len(), 0.0, 2.0));
            let dy = widen(&wave(desc.len(), 9.0, 1.0));
            let gamma = vec![1.5, -0.7];
            let beta = vec![0.2, 0.3];
            let m = desc.count_per_channel() as f64;
            let moments = channel_moments(&desc, &x);
            let mean: Vec<f64> = moments.iter().map(|p| p.0).collect();
            let inv_std: Vec<f64> = moments
                .iter()
                .map(|p| inverse_std(&desc, p.1 / m))
                .collect();
            let (dx, dgamma, dbeta) = backward(&desc, &x, &dy, &gamma, &mean, &inv_std);
            for (i, &dx_i) in dx.iter().enumerate() {
                let fd =
                    central_difference(&x, i, |x| training_objective(&desc, x, &gamma, &beta, &dy));
                assert_near(dx_i, fd, 1e-7, &format!("{layout:?} dx[{i}]"));
            }
            for c in 0..2 {
                let fd =
                    central_difference(&gamma, c, |g| training_objective(&desc, &x, g, &beta, &dy));
                assert_near(dgamma[c], fd, 1e-7, &format!("{layout:?} dgamma[{c}]"));
                let fd =
                    central_difference(&beta, c, |b| training_objective(&desc, &x, &gamma, b, &dy));
                assert_near(dbeta[c], fd, 1e-7, &format!("{layout:?} dbeta[{c}]"));
            }
        }
    }

    #[test]
    fn training_forward_by_hand() {
        // One channel, values 1, 2, 3, 6: mean 3, biased variance 3.5, unbiased 14/3.
        let desc = BatchNormDesc::new(2, 1, 2).eps(0.5);
        let x = [1.0f32, 2.0, 3.0, 6.0];
        let (mut rm, mut rv) = ([1.0f32], [2.0f32]);
        let mut y = [f32::NAN; 4];
        let (mut mean, mut inv_std) = ([f32::NAN], [f32::NAN]);
        batch_norm_forward_training(
            &desc,
            &x,
            &[2.0],
            &[1.0],
            0.25,
            &mut rm,
            &mut rv,
            &mut y,
            &mut mean,
            &mut inv_std,
        )
        .unwrap();
        // inv_std = 1/√(3.5 + 0.5) = 0.5, so y = 2·(x − 3)·0.5 + 1 = x − 2.
        assert_eq!(y, [-1.0, 0.0, 1.0, 4.0]);
        assert_eq!((mean, inv_std), ([3.0], [0.5]));
        assert_eq!(rm, [0.75 * 1.0 + 0.25 * 3.0]);
        assert_eq!(rv, [(0.75 * 2.0 + 0.25 * 14.0 / 3.0) as f32]);
    }

    #[test]
    fn data_far_from_zero_is_normalized_exactly() {
        // Mean 1e4, std about 1: a one-pass E[x²] − E[x]² in f32 would lose everything.
        let desc = BatchNormDesc::new(4, 3, 25);
        let x: Vec<f32> = wave(desc.len(), 3.0, 1.7)
            .iter()
            .map(|&v| 1e4 + v)
            .collect();
        // The exact statistics, from the deviations from 1e4 (exact in f64).
        let m = desc.count_per_channel() as f64;
        let dev = |c: usize| channel_offsets(&desc, c).map(|at| f64::from(x[at]) - 1e4);
        let ones = vec![1.0f32; 3];
        let zeros = vec![0.0f32; 3];
        let (mut rm, mut rv) = (zeros.clone(), ones.clone());
        let mut y = vec![f32::NAN; desc.len()];
        let (mut mean, mut inv_std) = (vec![f32::NAN; 3], vec![f32::NAN; 3]);
        batch_norm_forward_training(
            &desc,
            &x,
            &ones,
            &zeros,
            0.1,
            &mut rm,
            &mut rv,
            &mut y,
            &mut mean,
            &mut inv_std,
        )
        .unwrap();
        let momentum = f64::from(0.1f32);
        for c in 0..3 {
            let dev_mean = dev(c).sum::<f64>() / m;
            let ssd: f64 = dev(c).map(|d| (d - dev_mean).powi(2)).sum();
            let exact_inv_std = 1.0 / (ssd / m + f64::from(desc.eps)).sqrt();
            // Each f32 output is the exact value rounded once.
            assert_within_half_ulp(mean[c], 1e4 + dev_mean, "saved mean");
            assert_within_half_ulp(inv_std[c], exact_inv_std, "saved inv_std");
            assert_within_half_ulp(rm[c], momentum * (1e4 + dev_mean), "running mean");
            let exact_rv = (1.0 - momentum) + momentum * ssd / (m - 1.0);
            assert_within_half_ulp(rv[c], exact_rv, "running var");
            for at in channel_offsets(&desc, c) {
                let exact = (f64::from(x[at]) - 1e4 - dev_mean) * exact_inv_std;
                assert_within_half_ulp(y[at], exact, "y");
            }
        }
    }

    /// Asserts that `got` is within f32's rounding error (EPSILON/2 relative) of `exact`,
    /// with a hair of slack for the f64 rounding of the exact value itself.
    fn assert_within_half_ulp(got: f32, exact: f64, what: &str) {
        let half_ulp =
            f64::from(f32::EPSILON) / 2.0 * exact.abs().max(f64::from(f32::MIN_POSITIVE));
        assert!(
            (f64::from(got) - exact).abs() <= half_ulp * (1.0 + 1e-6),
            "{what}: got {got:e}, exact {exact:e}"
        );
    }

    #[test]
    fn inference_uses_the_running_statistics() {
        let desc = BatchNormDesc::new(1, 2, 2).eps(1.0);
        let x = [1.0f32, 2.0, 3.0, 4.0];
        let mut y = [f32::NAN; 4];
        batch_norm_forward_inference(
            &desc,
            &x,
            &[1.0, 3.0],
            &[0.0, 1.0],
            &[1.0, 2.0],
            &[3.0, 0.0],
            &mut y,
        )
        .unwrap();
        // Channel 0: (x − 1)/√4; channel 1: 3·(x − 2)/√1 + 1.
        assert_eq!(y, [0.0, 0.5, 4.0, 7.0]);
    }

    /// Copies an NCHW tensor of `desc`'s sizes into NHWC order.
    fn to_nhwc(desc: &BatchNormDesc, v: &[f32]) -> Vec<f32> {
        let nhwc = desc.layout(Layout::Nhwc);
        let mut out = vec![0.0; v.len()];
        for n in 0..desc.batch {
            for c in 0..desc.channels {
                for s in 0..desc.spatial {
                    out[nhwc.index(n, c, s)] = v[desc.index(n, c, s)];
                }
            }
        }
        out
    }

    /// Every output of training forward, inference and backward, in one vector each.
    fn run_all(desc: &BatchNormDesc, x: &[f32], dy: &[f32]) -> Vec<Vec<f32>> {
        let c = desc.channels;
        let gamma = wave(c, 1.0, 2.0);
        let beta = wave(c, 2.0, 1.0);
        let (mut rm, mut rv) = (vec![0.5; c], vec![1.5; c]);
        let mut y = vec![f32::NAN; x.len()];
        let (mut mean, mut inv_std) = (vec![f32::NAN; c], vec![f32::NAN; c]);
        batch_norm_forward_training(
            desc,
            x,
            &gamma,
            &beta,
            0.1,
            &mut rm,
            &mut rv,
            &mut y,
            &mut mean,
            &mut inv_std,
        )
        .unwrap();
        let mut y_eval = vec![f32::NAN; x.len()];
        batch_norm_forward_inference(desc, x, &gamma, &beta, &rm, &rv, &mut y_eval).unwrap();
        let mut dx = vec![f32::NAN; x.len()];
        let (mut dgamma, mut dbeta) = (vec![f32::NAN; c], vec![f32::NAN; c]);
        batch_norm_backward(
            desc,
            x,
            dy,
            &gamma,
            &mean,
            &inv_std,
            &mut dx,
            &mut dgamma,
            &mut dbeta,
        )
        .unwrap();
        vec![y, y_eval, dx, rm, rv, mean, inv_std, dgamma, dbeta]
    }

    #[test]
    fn nhwc_matches_nchw() {
        let nchw = BatchNormDesc::new(3, 4, 6);
        let x = wave(nchw.len(), 0.5, 3.0);
        let dy = wave(nchw.len(), 4.0, 1.0);
        let a = run_all(&nchw, &x, &dy);
        let b = run_all(
            &nchw.layout(Layout::Nhwc),
            &to_nhwc(&nchw, &x),
            &to_nhwc(&nchw, &dy),
        );
        // The same sums in the same order (image by image), so the results are identical.
        for (i, (a, b)) in a.iter().zip(&b).enumerate() {
            let a = if i < 3 { to_nhwc(&nchw, a) } else { a.clone() };
            assert_eq!(&a, b, "output {i}");
        }
    }

    #[test]
    fn one_value_per_channel_cannot_train() {
        let desc = BatchNormDesc::new(1, 2, 1);
        let mut out = [[0.0f32; 2]; 5];
        let [rm, rv, y, mean, inv_std] = &mut out;
        let err = batch_norm_forward_training(
            &desc,
            &[1.0, 2.0],
            &[1.0; 2],
            &[0.0; 2],
            0.1,
            rm,
            rv,
            y,
            mean,
            inv_std,
        );
        assert!(matches!(err, Err(KernelError::InvalidParameter { .. })));
        // Inference has no such limit.
        batch_norm_forward_inference(&desc, &[1.0, 2.0], &[1.0; 2], &[0.0; 2], rm, rv, y).unwrap();
    }

    #[test]
    fn bad_sizes_and_parameters_are_errors() {
        let desc = BatchNormDesc::new(2, 2, 2);
        let x = [0.5f32; 8];
        let two = [1.0f32; 2];
        let mut y = [0.0f32; 8];
        let mut per_channel = [[0.0f32; 2]; 4];
        let [rm, rv, mean, inv_std] = &mut per_channel;
        let mut train = |desc: &BatchNormDesc, x: &[f32], gamma: &[f32], momentum: f32| {
            batch_norm_forward_training(
                desc, x, gamma, &two, momentum, rm, rv, &mut y, mean, inv_std,
            )
        };
        assert!(train(&desc, &x, &two, 0.1).is_ok());
        assert!(train(&desc, &x[..7], &two, 0.1).is_err());
        assert!(train(&desc, &x, &[1.0; 3], 0.1).is_err());
        assert!(train(&desc, &x, &two, f32::NAN).is_err());
        assert!(train(&desc.eps(0.0), &x, &two, 0.1).is_err());
        assert!(train(&BatchNormDesc::new(2, 0, 2), &[], &[], 0.1).is_err());

        let mut y = [0.0f32; 8];
        assert!(batch_norm_forward_inference(&desc, &x, &two, &two, &two, &[1.0], &mut y).is_err());
        assert!(
            batch_norm_forward_inference(&desc, &x, &two, &two, &two, &two, &mut [0.0; 9]).is_err()
        );

        let (mut dx, mut dgamma, mut dbeta) = ([0.0f32; 8], [0.0f32; 2], [0.0f32; 2]);
        assert!(batch_norm_backward(
            &desc,
            &x,
            &x,
            &two,
            &two,
            &two,
            &mut dx,
            &mut dgamma,
            &mut dbeta
        )
        .is_ok());
        assert!(batch_norm_backward(
            &desc,
            &x,
            &x[..4],
            &two,
            &two,
            &two,
            &mut dx,
            &mut dgamma,
            &mut dbeta
        )
        .is_err());
        assert!(batch_norm_backward(
            &desc,
            &x,
            &x,
            &two,
            &two,
            &two,
            &mut dx,
            &mut [0.0; 1],
            &mut dbeta
        )
        .is_err());
    }
}
