//! One SGD step (momentum, dampening, Nesterov, L2 weight decay) over a slice, generic
//! over [`Lanes`].

use super::sweep::sweep;
use super::Sgd;
use crate::eltwise::dispatch::lanes_dispatch;
use crate::eltwise::lanes::{load_n, store_n, Lanes};

/// The per-step scalars of [`Sgd`], in f32, and which terms are on.
pub(super) struct SgdStep {
    neg_lr: f32,
    momentum: f32,
    one_minus_dampening: f32,
    weight_decay: f32,
    decay: bool,
    uses_momentum: bool,
    nesterov: bool,
    /// t = 1: the buffer starts as the gradient and is not read.
    first: bool,
}

impl SgdStep {
    pub(super) fn new(h: &Sgd, t: u64) -> SgdStep {
        SgdStep {
            neg_lr: -h.lr,
            momentum: h.momentum,
            one_minus_dampening: (1.0 - f64::from(h.dampening)) as f32,
            weight_decay: h.weight_decay,
            decay: h.weight_decay != 0.0,
            uses_momentum: h.momentum != 0.0,
            nesterov: h.nesterov,
            first: t == 1,
        }
    }

    pub(super) fn uses_momentum(&self) -> bool {
        self.uses_momentum
    }
}

#[inline(always)]
fn sgd_kernel<L: Lanes>(c: &SgdStep, param: &mut [f32], grad: &[f32], buf: &mut [f32]) {
    let neg_lr = L::splat(c.neg_lr);
    let momentum = L::splat(c.momentum);
    let one_minus_dampening = L::splat(c.one_minus_dampening);
    let weight_decay = L::splat(c.weight_decay);
    sweep!(L, param.len(), |at, n| {
        let p: L = load_n(param, at, n);
        let mut g: L = load_n(grad, at, n);
        if c.decay {
            g = weight_decay.mul_add(p, g);
        }
        if c.uses_momentum {
            let b = if c.first {
                g
            } else {
                load_n::<L>(buf, at, n).mul_add(momentum, one_minus_dampening * g)
            };
            store_n(b, buf, at, n);
            g = if c.nesterov {
                b.mul_add(momentum, g)
            } else {
                b
            };
        }
        store_n(g.mul_add(neg_lr, p), param, at, n);
    });
}

lanes_dispatch! {
    /// [`sgd_kernel`] on `isa`.
    pub(super) fn sgd(c: &SgdStep, param: &mut [f32], grad: &[f32], buf: &mut [f32]) => sgd_kernel
}
