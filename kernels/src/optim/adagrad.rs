//! One Adagrad step over a slice, generic over [`Lanes`]: the decayed learning rate is
//! a per-step scalar computed in f64.

use super::sweep::sweep;
use super::Adagrad;
use crate::eltwise::dispatch::lanes_dispatch;
use crate::eltwise::lanes::{load_n, store_n, Lanes};

/// The per-step scalars of [`Adagrad`], in f32.
pub(super) struct AdagradStep {
    /// −lr/(1 + (t − 1)·lr_decay).
    neg_clr: f32,
    eps: f32,
    weight_decay: f32,
    initial: f32,
    decay: bool,
    /// t = 1: the sum starts from `initial` and is not read.
    first: bool,
}

impl AdagradStep {
    pub(super) fn new(h: &Adagrad, t: u64) -> AdagradStep {
        let clr = f64::from(h.lr) / (1.0 + (t - 1) as f64 * f64::from(h.lr_decay));
        AdagradStep {
            neg_clr: -clr as f32,
            eps: h.eps,
            weight_decay: h.weight_decay,
            initial: h.initial_accumulator_value,
            decay: h.weight_decay != 0.0,
            first: t == 1,
        }
    }
}

#[inline(always)]
fn adagrad_kernel<L: Lanes>(c: &AdagradStep, param: &mut [f32], grad: &[f32], sum: &mut [f32]) {
    let neg_clr = L::splat(c.neg_clr);
    let eps = L::splat(c.eps);
    let weight_decay = L::splat(c.weight_decay);
    let initial = L::splat(c.initial);
    sweep!(L, param.len(), |at, n| {
        let p: L = load_n(param, at, n);
        let mut g: L = load_n(grad, at, n);
        if c.decay {
            g = weight_decay.mul_add(p, g);
        }
        let previous = if c.first {
            initial
        } else {
            load_n::<L>(sum, at, n)
        };
        let s = g.mul_add(g, previous);
        store_n(s, sum, at, n);
        store_n((g / (s.sqrt() + eps)).mul_add(neg_clr, p), param, at, n);
    });
}

lanes_dispatch! {
    /// [`adagrad_kernel`] on `isa`.
    pub(super) fn adagrad(c: &AdagradStep, param: &mut [f32], grad: &[f32], sum: &mut [f32]) => adagrad_kernel
}
