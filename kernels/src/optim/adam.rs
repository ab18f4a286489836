//! One Adam / AdamW step over a slice, generic over [`Lanes`]: the bias corrections are
//! folded into two per-step scalars computed in f64.

use super::sweep::sweep;
use super::{Adam, WeightDecay};
use crate::eltwise::dispatch::lanes_dispatch;
use crate::eltwise::lanes::{load_n, store_n, Lanes};

/// The per-step scalars of [`Adam`], in f32, and which terms are on.
pub(super) struct AdamStep {
    beta1: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    /// −lr/(1 − β1^t).
    neg_step_size: f32,
    /// 1/√(1 − β2^t).
    inv_sqrt_bc2: f32,
    eps: f32,
    weight_decay: f32,
    /// 1 − lr·wd (AdamW).
    shrink: f32,
    l2: bool,
    decoupled: bool,
    /// t = 1: the moments start from zero and are not read.
    first: bool,
}

impl AdamStep {
    pub(super) fn new(h: &Adam, t: u64) -> AdamStep {
        let (beta1, beta2) = (f64::from(h.beta1), f64::from(h.beta2));
        let lr = f64::from(h.lr);
        // t as f64 is exact up to 2^53 steps.
        let bc1 = 1.0 - beta1.powf(t as f64);
        let bc2 = 1.0 - beta2.powf(t as f64);
        let decays = h.weight_decay != 0.0;
        AdamStep {
            beta1: h.beta1,
            one_minus_beta1: (1.0 - beta1) as f32,
            beta2: h.beta2,
            one_minus_beta2: (1.0 - beta2) as f32,
            neg_step_size: (-lr / bc1) as f32,
            inv_sqrt_bc2: (1.0 / bc2.sqrt()) as f32,
            eps: h.eps,
            weight_decay: h.weight_decay,
            shrink: (1.0 - lr * f64::from(h.weight_decay)) as f32,
            l2: decays && h.decay == WeightDecay::L2,
            decoupled: decays && h.decay == WeightDecay::Decoupled,
            first: t == 1,
        }
    }
}

#[inline(always)]
fn adam_kernel<L: Lanes>(
    c: &AdamStep,
    param: &mut [f32],
    grad: &[f32],
    exp_avg: &mut [f32],
    exp_avg_sq: &mut [f32],
) {
    let (beta1, one_minus_beta1) = (L::splat(c.beta1), L::splat(c.one_minus_beta1));
    let (beta2, one_minus_beta2) = (L::splat(c.beta2), L::splat(c.one_minus_beta2));
    let neg_step_size = L::splat(c.neg_step_size);
    let inv_sqrt_bc2 = L::splat(c.inv_sqrt_bc2);
    let eps = L::splat(c.eps);
    let weight_decay = L::splat(c.weight_decay);
    let shrink = L::splat(c.shrink);
    sweep!(L, param.len(), |at, n| {
        let mut p: L = load_n(param, at, n);
        let mut g: L = load_n(grad, at, n);
        if c.l2 {
            g = weight_decay.mul_add(p, g);
        }
        if c.decoupled {
            p = p * shrink;
        }
        let (new_m, new_v) = (one_minus_beta1 * g, one_minus_beta2 * (g * g));
        let (m, v) = if c.first {
            (new_m, new_v)
        } else {
            (
                load_n::<L>(exp_avg, at, n).mul_add(beta1, new_m),
                load_n::<L>(exp_avg_sq, at, n).mul_add(beta2, new_v),
            )
        };
        store_n(m, exp_avg, at, n);
        store_n(v, exp_avg_sq, at, n);
        let denominator = v.sqrt().mul_add(inv_sqrt_bc2, eps);
        store_n((m / denominator).mul_add(neg_step_size, p), param, at, n);
    });
}

lanes_dispatch! {
    /// [`adam_kernel`] on `isa`.
    pub(super) fn adam(
        c: &AdamStep,
        param: &mut [f32],
        grad: &[f32],
        exp_avg: &mut [f32],
        exp_avg_sq: &mut [f32],
    ) => adam_kernel
}
