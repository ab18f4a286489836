//! One RMSprop step (centered or not, with or without momentum) over a slice, generic
//! over [`Lanes`].

use super::sweep::sweep;
use super::RmsProp;
use crate::eltwise::dispatch::lanes_dispatch;
use crate::eltwise::lanes::{load_n, store_n, Lanes};

/// The per-step scalars of [`RmsProp`], in f32, and which terms are on.
pub(super) struct RmsPropStep {
    alpha: f32,
    one_minus_alpha: f32,
    eps: f32,
    weight_decay: f32,
    neg_lr: f32,
    momentum: f32,
    decay: bool,
    centered: bool,
    uses_momentum: bool,
    /// t = 1: the state starts from zero and is not read.
    first: bool,
}

impl RmsPropStep {
    pub(super) fn new(h: &RmsProp, t: u64) -> RmsPropStep {
        RmsPropStep {
            alpha: h.alpha,
            one_minus_alpha: (1.0 - f64::from(h.alpha)) as f32,
            eps: h.eps,
            weight_decay: h.weight_decay,
            neg_lr: -h.lr,
            momentum: h.momentum,
            decay: h.weight_decay != 0.0,
            centered: h.centered,
            uses_momentum: h.momentum > 0.0,
            first: t == 1,
        }
    }

    pub(super) fn uses_momentum(&self) -> bool {
        self.uses_momentum
    }
}

#[inline(always)]
fn rmsprop_kernel<L: Lanes>(
    c: &RmsPropStep,
    param: &mut [f32],
    grad: &[f32],
    square_avg: &mut [f32],
    grad_avg: &mut [f32],
    momentum_buf: &mut [f32],
) {
    let (alpha, one_minus_alpha) = (L::splat(c.alpha), L::splat(c.one_minus_alpha));
    let eps = L::splat(c.eps);
    let weight_decay = L::splat(c.weight_decay);
    let neg_lr = L::splat(c.neg_lr);
    let momentum = L::splat(c.momentum);
    sweep!(L, param.len(), |at, n| {
        let p: L = load_n(param, at, n);
        let mut g: L = load_n(grad, at, n);
        if c.decay {
            g = weight_decay.mul_add(p, g);
        }
        let new_sq = one_minus_alpha * (g * g);
        let sq = if c.first {
            new_sq
        } else {
            load_n::<L>(square_avg, at, n).mul_add(alpha, new_sq)
        };
        store_n(sq, square_avg, at, n);
        let avg = if c.centered {
            let new_mean = one_minus_alpha * g;
            let mean = if c.first {
                new_mean
            } else {
                load_n::<L>(grad_avg, at, n).mul_add(alpha, new_mean)
            };
            store_n(mean, grad_avg, at, n);
            mean.mul_add(-mean, sq).sqrt() + eps
        } else {
            sq.sqrt() + eps
        };
        let mut update = g / avg;
        if c.uses_momentum {
            if !c.first {
                update = load_n::<L>(momentum_buf, at, n).mul_add(momentum, update);
            }
            store_n(update, momentum_buf, at, n);
        }
        store_n(update.mul_add(neg_lr, p), param, at, n);
    });
}

lanes_dispatch! {
    /// [`rmsprop_kernel`] on `isa`.
    pub(super) fn rmsprop(
        c: &RmsPropStep,
        param: &mut [f32],
        grad: &[f32],
        square_avg: &mut [f32],
        grad_avg: &mut [f32],
        momentum_buf: &mut [f32],
    ) => rmsprop_kernel
}
