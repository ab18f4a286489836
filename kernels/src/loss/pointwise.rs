//! Element-wise losses (logistic with logits, squared error), generic over [`Lanes`]:
//! the gradient is written and the loss summed in the same sweep.
//!
//! The loss terms are summed in f32 lanes over blocks of [`BLOCK`] elements, and the
//! block sums in f64: the terms are non-negative, so each block sum is accurate to about
//! `BLOCK / LANES` ulp, and the f64 total adds nothing more that matters.

use crate::eltwise::dispatch::lanes_dispatch;
use crate::eltwise::lanes::{lane_sum_f64, load_n as load, store_n as store, Lanes};
use crate::eltwise::vmath;

/// Elements per f32 partial sum; work items are whole multiples of it.
pub(super) const BLOCK: usize = 64;

/// Runs `$term(at, n)` (a vector of `n ≤ LANES` elements from `at`, returning its loss
/// terms with padding lanes zero) over `0..$len`, and sums the terms as the module
/// docs say. A macro so that the body inlines into the caller's `target_feature`.
macro_rules! blocked_sum {
    ($L:ty, $len:expr, |$at:ident, $n:ident| $term:expr) => {{
        let len: usize = $len;
        let lanes = <$L as Lanes>::LANES;
        let mut total = 0.0f64;
        let mut start = 0;
        while start < len {
            let end = (start + BLOCK).min(len);
            let mut acc = <$L>::splat(0.0);
            let mut $at = start;
            while $at < end {
                let $n = lanes.min(end - $at);
                acc = acc + $term;
                $at += $n;
            }
            total += lane_sum_f64(acc);
            start = end;
        }
        total
    }};
}

/// Σ max(x, 0) − x·t + ln(1 + e^−|x|); writes (σ(x) − t)·`inv_n` to `d`.
#[inline(always)]
fn bce_chunk<L: Lanes>(inv_n: f32, x: &[f32], t: &[f32], d: &mut [f32]) -> f64 {
    let zero = L::splat(0.0);
    let one = L::splat(1.0);
    let scale = L::splat(inv_n);
    blocked_sum!(L, x.len(), |at, n| {
        let xv: L = load(x, at, n);
        let tv: L = load(t, at, n);
        let u = vmath::exp(-xv.abs());
        let r = one / (one + u);
        // σ(x) = 1/(1 + e^−x) for x ≥ 0 and e^x/(1 + e^x) below: no overflow either way.
        let sigmoid = L::select(zero.le(xv), r, u * r);
        store((sigmoid - tv) * scale, d, at, n);
        let term = xv.max(zero) - xv * tv + vmath::log1p_unit(u);
        L::select(L::lanes_below(n), term, zero)
    })
}

/// Σ (p − t)²; writes (p − t)·`two_over_n` to `d`.
#[inline(always)]
fn mse_chunk<L: Lanes>(two_over_n: f32, p: &[f32], t: &[f32], d: &mut [f32]) -> f64 {
    let scale = L::splat(two_over_n);
    blocked_sum!(L, p.len(), |at, n| {
        // Padding lanes are 0 − 0: they add nothing.
        let diff = load::<L>(p, at, n) - load::<L>(t, at, n);
        store(diff * scale, d, at, n);
        diff * diff
    })
}

lanes_dispatch! {
    /// [`bce_chunk`] on `isa`.
    pub(super) fn bce(inv_n: f32, x: &[f32], t: &[f32], d: &mut [f32]) -> f64 => bce_chunk
}

lanes_dispatch! {
    /// [`mse_chunk`] on `isa`.
    pub(super) fn mse(two_over_n: f32, p: &[f32], t: &[f32], d: &mut [f32]) -> f64 => mse_chunk
}
