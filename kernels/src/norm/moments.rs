//! Per-channel statistics from block partial sums, combined in f64 in a fixed order.
//!
//! Each block (a piece of a run, or a block of rows) reports its values as sums of
//! deviations from a shift — its own f32 mean from a first pass over the block, while
//! the block is still in cache: Σd and Σd², d = x − shift. Against the shift the block's
//! mean and sum of squared deviations follow without cancellation (the "corrected
//! two-pass" formulas), and blocks are merged with Chan et al.'s pairwise update. So data
//! with a large common offset (mean 1e4, std 1) loses nothing to it, while each value is
//! read from memory once.

use super::kernel::{Affine, GradAffine};

/// Count, mean and sum of squared deviations from the mean, in f64.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Moments {
    count: f64,
    mean: f64,
    m2: f64,
}

impl Moments {
    /// Merges a block of `count` values with Σd = `s1` and Σd² = `s2`, d = x − `shift`.
    pub fn add_block(&mut self, count: usize, shift: f32, s1: f32, s2: f32) {
        if count == 0 {
            return;
        }
        let n = count as f64;
        let s1 = f64::from(s1);
        let mean = f64::from(shift) + s1 / n;
        let m2 = (f64::from(s2) - s1 * s1 / n).max(0.0);
        if self.count == 0.0 {
            *self = Moments { count: n, mean, m2 };
            return;
        }
        let total = self.count + n;
        let delta = mean - self.mean;
        self.mean += delta * n / total;
        self.m2 += m2 + delta * delta * self.count * n / total;
        self.count = total;
    }
}

/// What the training forward writes for one channel, besides y.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ChannelResult {
    pub mean: f32,
    pub inv_std: f32,
    pub running_mean: f32,
    pub running_var: f32,
}

/// The per-channel parameters of a training forward.
#[derive(Debug, Clone, Copy)]
pub(super) struct TrainParams {
    pub gamma: f32,
    pub beta: f32,
    pub eps: f32,
    pub momentum: f32,
    pub running_mean: f32,
    pub running_var: f32,
}

/// The normalization constants and the outputs of a channel with moments `m` (at least
/// 2 values), running statistics updated as PyTorch does (unbiased variance).
pub(super) fn finish_training(m: &Moments, p: TrainParams) -> (Affine, ChannelResult) {
    let var = m.m2 / m.count;
    let inv_std = 1.0 / (var + f64::from(p.eps)).sqrt();
    let mean_hi = m.mean as f32;
    let affine = Affine {
        mean_hi,
        mean_lo: (m.mean - f64::from(mean_hi)) as f32,
        scale: (f64::from(p.gamma) * inv_std) as f32,
        beta: p.beta,
    };
    let momentum = f64::from(p.momentum);
    let unbiased = m.m2 / (m.count - 1.0);
    let result = ChannelResult {
        mean: mean_hi,
        inv_std: inv_std as f32,
        running_mean: ((1.0 - momentum) * f64::from(p.running_mean) + momentum * m.mean) as f32,
        running_var: ((1.0 - momentum) * f64::from(p.running_var) + momentum * unbiased) as f32,
    };
    (affine, result)
}

/// The inference constants of a channel: y = (x − running_mean)·gamma/√(running_var +
/// eps) + beta.
pub(super) fn inference_affine(
    gamma: f32,
    beta: f32,
    running_mean: f32,
    running_var: f32,
    eps: f32,
) -> Affine {
    let inv_std = 1.0 / (f64::from(running_var) + f64::from(eps)).sqrt();
    Affine {
        mean_hi: running_mean,
        mean_lo: 0.0,
        scale: (f64::from(gamma) * inv_std) as f32,
        beta,
    }
}

/// dgamma, dbeta and the dx constants of a channel of `count` values, from Σg and
/// Σg·(x − mean): dbeta = Σg, dgamma = inv_std·Σg·(x − mean), and
/// dx = a·g + b·(x − mean) + c with a = gamma·inv_std, b = −a·inv_std·dgamma/m,
/// c = −a·dbeta/m (the reference's formula with x̂ expanded).
pub(super) fn finish_backward(
    count: usize,
    gamma: f32,
    mean: f32,
    inv_std: f32,
    sum_g: f64,
    sum_gx: f64,
) -> (f32, f32, GradAffine) {
    let m = count as f64;
    let inv_std64 = f64::from(inv_std);
    let dbeta = sum_g;
    let dgamma = inv_std64 * sum_gx;
    let a = f64::from(gamma) * inv_std64;
    let grad = GradAffine {
        mean,
        a: a as f32,
        b: (-a * inv_std64 * dgamma / m) as f32,
        c: (-a * dbeta / m) as f32,
    };
    (dgamma as f32, dbeta as f32, grad)
}
