//! Row kernels of softmax and cross-entropy, generic over [`Lanes`].
//!
//! A row is swept three times while it sits in L1: its maximum, then e = exp(z − max)
//! (stored in the output when there is one) and Σe, then the scaling of e. The single
//! exponential per element is the costly part; the sweeps are cheap.

use crate::eltwise::dispatch::lanes_dispatch;
use crate::eltwise::lanes::{lane_max, lane_sum_f64, Lanes};
use crate::eltwise::vmath;

/// The maximum of a row (−∞ for an empty one).
#[inline(always)]
fn row_max<L: Lanes>(row: &[f32]) -> f32 {
    let mut acc = L::splat(f32::NEG_INFINITY);
    let mut vectors = row.chunks_exact(L::LANES);
    for v in &mut vectors {
        acc = L::load(v).max(acc);
    }
    let mut max = lane_max(acc);
    for &z in vectors.remainder() {
        if z > max {
            max = z;
        }
    }
    max
}

/// Σ exp(z − max) over the row, in f32 lanes added in f64 at the end; the terms are
/// written to `out` when given (the same length as `row`).
#[inline(always)]
fn exp_sum<L: Lanes>(row: &[f32], max: f32, mut out: Option<&mut [f32]>) -> f64 {
    let shift = L::splat(max);
    let mut acc = L::splat(0.0);
    let whole = row.len() - row.len() % L::LANES;
    for at in (0..whole).step_by(L::LANES) {
        let e = vmath::exp(L::load(&row[at..]) - shift);
        if let Some(out) = out.as_deref_mut() {
            e.store(&mut out[at..]);
        }
        acc = acc + e;
    }
    let rest = row.len() - whole;
    if rest > 0 {
        let e = vmath::exp(L::load_partial(&row[whole..]) - shift);
        // The zero padding of the partial vector would add exp(−max).
        let e = L::select(L::lanes_below(rest), e, L::splat(0.0));
        if let Some(out) = out {
            e.store_partial(&mut out[whole..]);
        }
        acc = acc + e;
    }
    lane_sum_f64(acc)
}

/// values ← values·factor.
#[inline(always)]
fn scale<L: Lanes>(values: &mut [f32], factor: f32) {
    let f = L::splat(factor);
    let mut vectors = values.chunks_exact_mut(L::LANES);
    for v in &mut vectors {
        (L::load(v) * f).store(v);
    }
    let rest = vectors.into_remainder();
    if !rest.is_empty() {
        (L::load_partial(rest) * f).store_partial(rest);
    }
}

/// Σ over the rows of −log softmax(row)[label], in f64 in row order; with `dlogits`,
/// also writes (softmax(row) − onehot(label))·`inv_batch`. Labels are below `classes`.
#[inline(always)]
fn cross_entropy_rows<L: Lanes>(
    classes: usize,
    inv_batch: f64,
    logits: &[f32],
    labels: &[u32],
    mut dlogits: Option<&mut [f32]>,
) -> f64 {
    let mut total = 0.0f64;
    for (r, (row, &label)) in logits.chunks_exact(classes).zip(labels).enumerate() {
        let label = label as usize;
        let max = row_max::<L>(row);
        let sum = match dlogits.as_deref_mut() {
            Some(d) => {
                let d = &mut d[r * classes..(r + 1) * classes];
                let sum = exp_sum::<L>(row, max, Some(&mut *d));
                let e_label = f64::from(d[label]);
                scale::<L>(d, (inv_batch / sum) as f32);
                // In f64: p − 1 cancels when the label's probability is near 1.
                d[label] = ((e_label / sum - 1.0) * inv_batch) as f32;
                sum
            }
            None => exp_sum::<L>(row, max, None),
        };
        total += f64::from(max) + sum.ln() - f64::from(row[label]);
    }
    total
}

/// Row-wise softmax of `logits` into `probs`.
#[inline(always)]
fn softmax_rows<L: Lanes>(classes: usize, logits: &[f32], probs: &mut [f32]) {
    for (row, out) in logits
        .chunks_exact(classes)
        .zip(probs.chunks_exact_mut(classes))
    {
        let max = row_max::<L>(row);
        let sum = exp_sum::<L>(row, max, Some(out));
        scale::<L>(out, (1.0 / sum) as f32);
    }
}

lanes_dispatch! {
    /// [`cross_entropy_rows`] on `isa`.
    pub(super) fn cross_entropy(
        classes: usize,
        inv_batch: f64,
        logits: &[f32],
        labels: &[u32],
        dlogits: Option<&mut [f32]>,
    ) -> f64 => cross_entropy_rows
}

lanes_dispatch! {
    /// [`softmax_rows`] on `isa`.
    pub(super) fn softmax(classes: usize, logits: &[f32], probs: &mut [f32]) => softmax_rows
}
