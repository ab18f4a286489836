//! The backward, in two passes over memory: per-channel sums of g and g·(x − mean)
//! (g = dy, or dy masked by the ReLU output), then dx.

use super::dispatch::{run_on, LaneJob};
use super::kernel::{
    rows_grad_apply, rows_grad_sums, run_grad_apply, run_grad_sums, GradAffine, RowGradAffine,
};
use super::moments::finish_backward;
use super::plan::{row_blocks, runs_per_item, Regime, PIECE};
use super::BatchNormDesc;
use crate::arch::Isa;
use crate::eltwise::dispatch::with_const_bool;
use crate::eltwise::lanes::Lanes;
use crate::parallel::{for_each_chunk_mut, Parallelism};
use crate::workspace::with_f32s;

/// The slices of a backward (lengths checked by the caller); `y` is the ReLU output
/// when the forward was fused with ReLU.
pub(super) struct Backward<'a> {
    pub x: &'a [f32],
    pub y: Option<&'a [f32]>,
    pub dy: &'a [f32],
    pub gamma: &'a [f32],
    pub saved_mean: &'a [f32],
    pub saved_inv_std: &'a [f32],
    pub dx: &'a mut [f32],
    pub dgamma: &'a mut [f32],
    pub dbeta: &'a mut [f32],
}

pub(super) fn backward(isa: Isa, desc: &BatchNormDesc, t: Backward<'_>, par: Parallelism) {
    let count = desc.count_per_channel();
    if t.dx.is_empty() {
        t.dgamma.fill(0.0);
        t.dbeta.fill(0.0);
        return;
    }
    let relu = t.y.is_some();
    let y = t.y.unwrap_or(&[]);
    let channels = desc.channels;
    // The dx constants, as columns (mean, a, b, c), in reused per-thread storage so that
    // a call allocates nothing in steady state.
    with_f32s(4 * channels, 0.0, |table| {
        let (mean, rest) = table.split_at_mut(channels);
        let (a, rest) = rest.split_at_mut(channels);
        let (b, c) = rest.split_at_mut(channels);
        // Each channel's sums are final once merged: dgamma, dbeta and the constants
        // are written there and then.
        let finish = |ch: usize, sum_g: f64, sum_gx: f64| {
            let (dgamma, dbeta, grad) = finish_backward(
                count,
                t.gamma[ch],
                t.saved_mean[ch],
                t.saved_inv_std[ch],
                sum_g,
                sum_gx,
            );
            t.dgamma[ch] = dgamma;
            t.dbeta[ch] = dbeta;
            (mean[ch], a[ch], b[ch], c[ch]) = (grad.mean, grad.a, grad.b, grad.c);
        };
        let (x, dy) = (t.x, t.dy);
        let regime = Regime::of(desc);
        match regime {
            Regime::Runs { run } => {
                run_grad_sums_all(isa, x, y, dy, t.saved_mean, run, relu, par, finish)
            }
            Regime::Rows { rows } => {
                row_grad_sums_all(isa, x, y, dy, t.saved_mean, rows, relu, par, finish)
            }
        }
        let p = RowGradAffine { mean, a, b, c };
        match regime {
            Regime::Runs { run } => {
                let per_item = runs_per_item(run);
                for_each_chunk_mut(par, t.dx, per_item * run, |i, out| {
                    let start = i * per_item * run;
                    let range = start..start + out.len();
                    let job = RunsGradApplyJob {
                        x: &x[range.clone()],
                        y: if relu { &y[range.clone()] } else { &[] },
                        dy: &dy[range],
                        out,
                        first_run: i * per_item,
                        run,
                        p: &p,
                        relu,
                    };
                    run_on(isa, job)
                });
            }
            Regime::Rows { rows } => {
                let block = rows * channels;
                for_each_chunk_mut(par, t.dx, block, |i, out| {
                    let range = i * block..i * block + out.len();
                    let job = RowGradApplyJob {
                        x: &x[range.clone()],
                        y: if relu { &y[range.clone()] } else { &[] },
                        dy: &dy[range],
                        out,
                        p: &p,
                        relu,
                    };
                    run_on(isa, job)
                });
            }
        }
    });
}

/// Per-channel Σg and Σg·(x − mean) of an NCHW tensor with runs of `run` values,
/// handed to `finish(channel, Σg, Σg·(x − mean))`: per piece of each run in f32, in
/// parallel, then per channel in f64 in image order.
#[allow(clippy::too_many_arguments)]
fn run_grad_sums_all(
    isa: Isa,
    x: &[f32],
    y: &[f32],
    dy: &[f32],
    mean: &[f32],
    run: usize,
    relu: bool,
    par: Parallelism,
    mut finish: impl FnMut(usize, f64, f64),
) {
    let channels = mean.len();
    let pieces = run.div_ceil(PIECE);
    let per_item = runs_per_item(run);
    // Every slot is written by its job; the fill is never read.
    with_f32s(x.len() / run * pieces * 2, 0.0, |partials| {
        for_each_chunk_mut(par, partials, per_item * pieces * 2, |i, slots| {
            let start = i * per_item * run;
            let range = start..start + slots.len() / (pieces * 2) * run;
            let job = RunGradSumsJob {
                x: &x[range.clone()],
                y: if relu { &y[range.clone()] } else { &[] },
                dy: &dy[range],
                first_run: i * per_item,
                run,
                mean,
                slots,
                relu,
            };
            run_on(isa, job)
        });
        // Run r belongs to channel r % channels: channel c's runs, in image order, are
        // every channels-th run from c.
        let stride = pieces * 2;
        for c in 0..channels {
            let (mut sg, mut sgx) = (0.0f64, 0.0f64);
            for slots in partials[c * stride..].chunks(stride).step_by(channels) {
                for slot in slots.chunks_exact(2) {
                    sg += f64::from(slot[0]);
                    sgx += f64::from(slot[1]);
                }
            }
            finish(c, sg, sgx);
        }
    });
}

/// Per-channel Σg and Σg·(x − mean) of an NHWC tensor (or spatial = 1), handed to
/// `finish(channel, Σg, Σg·(x − mean))`: per block of rows in f32, in parallel, then
/// per channel in f64 in block order.
#[allow(clippy::too_many_arguments)]
fn row_grad_sums_all(
    isa: Isa,
    x: &[f32],
    y: &[f32],
    dy: &[f32],
    mean: &[f32],
    rows: usize,
    relu: bool,
    par: Parallelism,
    mut finish: impl FnMut(usize, f64, f64),
) {
    let channels = mean.len();
    let block = rows * channels;
    let blocks = row_blocks(x.len(), channels, rows);
    // Zeroed: the jobs add their sums to the slots.
    with_f32s(blocks * 2 * channels, 0.0, |partials| {
        for_each_chunk_mut(par, partials, 2 * channels, |b, slot| {
            let range = b * block..((b + 1) * block).min(x.len());
            let job = RowGradSumsJob {
                x: &x[range.clone()],
                y: if relu { &y[range.clone()] } else { &[] },
                dy: &dy[range],
                mean,
                slot,
                relu,
            };
            run_on(isa, job)
        });
        for c in 0..channels {
            let (mut sg, mut sgx) = (0.0f64, 0.0f64);
            for slot in partials.chunks_exact(2 * channels) {
                sg += f64::from(slot[c]);
                sgx += f64::from(slot[channels + c]);
            }
            finish(c, sg, sgx);
        }
    });
}

/// Consecutive NCHW runs from `first_run`: per piece of each run, (Σg, Σg·(x − mean)).
struct RunGradSumsJob<'a> {
    x: &'a [f32],
    y: &'a [f32],
    dy: &'a [f32],
    first_run: usize,
    run: usize,
    mean: &'a [f32],
    slots: &'a mut [f32],
    relu: bool,
}

impl LaneJob for RunGradSumsJob<'_> {
    type Output = ();
    #[inline(always)]
    fn run<L: Lanes>(self) {
        let channels = self.mean.len();
        let mut slots = self.slots.chunks_exact_mut(2);
        for (r, start) in (0..self.x.len()).step_by(self.run).enumerate() {
            let mean = self.mean[(self.first_run + r) % channels];
            let mut at = start;
            while at < start + self.run {
                let end = (at + PIECE).min(start + self.run);
                let (x, dy) = (&self.x[at..end], &self.dy[at..end]);
                let (g, gx) = if self.relu {
                    run_grad_sums::<L, true>(x, &self.y[at..end], dy, mean)
                } else {
                    run_grad_sums::<L, false>(x, self.y, dy, mean)
                };
                if let Some(slot) = slots.next() {
                    slot.copy_from_slice(&[g, gx]);
                }
                at = end;
            }
        }
    }
}

/// dx over consecutive NCHW runs from `first_run`, each with its channel's constants.
struct RunsGradApplyJob<'a, 'b> {
    x: &'a [f32],
    y: &'a [f32],
    dy: &'a [f32],
    out: &'a mut [f32],
    first_run: usize,
    run: usize,
    p: &'a RowGradAffine<'b>,
    relu: bool,
}

impl LaneJob for RunsGradApplyJob<'_, '_> {
    type Output = ();
    #[inline(always)]
    fn run<L: Lanes>(self) {
        let p = self.p;
        let channels = p.mean.len();
        let outs = self.out.chunks_mut(self.run);
        for (r, out) in outs.enumerate() {
            let ch = (self.first_run + r) % channels;
            let grad = GradAffine {
                mean: p.mean[ch],
                a: p.a[ch],
                b: p.b[ch],
                c: p.c[ch],
            };
            let range = r * self.run..(r + 1) * self.run;
            let (x, dy) = (&self.x[range.clone()], &self.dy[range.clone()]);
            if self.relu {
                run_grad_apply::<L, true>(x, &self.y[range], dy, out, grad);
            } else {
                run_grad_apply::<L, false>(x, self.y, dy, out, grad);
            }
        }
    }
}

/// One row block's per-channel Σg (first half of `slot`) and Σg·(x − mean).
struct RowGradSumsJob<'a> {
    x: &'a [f32],
    y: &'a [f32],
    dy: &'a [f32],
    mean: &'a [f32],
    slot: &'a mut [f32],
    relu: bool,
}

impl LaneJob for RowGradSumsJob<'_> {
    type Output = ();
    #[inline(always)]
    fn run<L: Lanes>(self) {
        let (sg, sgx) = self.slot.split_at_mut(self.mean.len());
        let (x, y, dy, mean) = (self.x, self.y, self.dy, self.mean);
        with_const_bool!(self.relu, rows_grad_sums::<L>(x, y, dy, mean, sg, sgx));
    }
}

/// One row block of dx.
struct RowGradApplyJob<'a, 'b> {
    x: &'a [f32],
    y: &'a [f32],
    dy: &'a [f32],
    out: &'a mut [f32],
    p: &'a RowGradAffine<'b>,
    relu: bool,
}

impl LaneJob for RowGradApplyJob<'_, '_> {
    type Output = ();
    #[inline(always)]
    fn run<L: Lanes>(self) {
        with_const_bool!(
            self.relu,
            rows_grad_apply::<L>(self.x, self.y, self.dy, self.out, self.p)
        );
    }
}
