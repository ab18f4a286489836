//! The training and inference forwards: statistics, then y, per work item.

use super::dispatch::{run_on, LaneJob};
use super::kernel::{
    rows_normalize, rows_shifted_sums, rows_sum, run_normalize, run_shifted_sums, run_sum, Affine,
    RowAffine,
};
use super::moments::{finish_training, inference_affine, Moments, TrainParams};
use super::plan::{row_blocks, runs_per_item, Regime, PIECE};
use super::BatchNormDesc;
use crate::arch::Isa;
use crate::eltwise::dispatch::with_const_bool;
use crate::eltwise::lanes::Lanes;
use crate::parallel::{for_each_chunk_mut, Parallelism};
use crate::workspace::with_f32s;

/// The slices of a training forward (lengths checked by the caller).
pub(super) struct Training<'a> {
    pub x: &'a [f32],
    pub gamma: &'a [f32],
    pub beta: &'a [f32],
    pub momentum: f32,
    pub running_mean: &'a mut [f32],
    pub running_var: &'a mut [f32],
    pub y: &'a mut [f32],
    pub saved_mean: &'a mut [f32],
    pub saved_inv_std: &'a mut [f32],
}

pub(super) fn training(
    isa: Isa,
    desc: &BatchNormDesc,
    t: Training<'_>,
    relu: bool,
    par: Parallelism,
) {
    let channels = desc.channels;
    // The per-channel constants, as columns (mean_hi, mean_lo, scale, beta), in reused
    // per-thread storage so that a call allocates nothing in steady state.
    with_f32s(4 * channels, 0.0, |table| {
        let (hi, rest) = table.split_at_mut(channels);
        let (lo, rest) = rest.split_at_mut(channels);
        let (scale, beta) = rest.split_at_mut(channels);
        // Each channel's moments are final once merged: its constants and outputs are
        // written there and then (each reads only its own running statistics).
        let finish = |c: usize, m: &Moments| {
            let params = TrainParams {
                gamma: t.gamma[c],
                beta: t.beta[c],
                eps: desc.eps,
                momentum: t.momentum,
                running_mean: t.running_mean[c],
                running_var: t.running_var[c],
            };
            let (a, r) = finish_training(m, params);
            (hi[c], lo[c], scale[c], beta[c]) = (a.mean_hi, a.mean_lo, a.scale, a.beta);
            t.saved_mean[c] = r.mean;
            t.saved_inv_std[c] = r.inv_std;
            t.running_mean[c] = r.running_mean;
            t.running_var[c] = r.running_var;
        };
        let regime = Regime::of(desc);
        match regime {
            Regime::Runs { run } => run_moments(isa, desc, t.x, run, par, finish),
            Regime::Rows { rows } => row_moments(isa, desc, t.x, rows, par, finish),
        }
        let p = RowAffine {
            mean_hi: hi,
            mean_lo: lo,
            scale,
            beta,
        };
        normalize(isa, desc, regime, t.x, t.y, &p, relu, par);
    });
}

/// Per-channel moments of an NCHW tensor with runs of `run` values, handed to
/// `finish(channel, moments)`: the runs report their shifted sums piece by piece, in
/// memory order and in parallel, merged per channel in image order.
fn run_moments(
    isa: Isa,
    desc: &BatchNormDesc,
    x: &[f32],
    run: usize,
    par: Parallelism,
    mut finish: impl FnMut(usize, &Moments),
) {
    let pieces = run.div_ceil(PIECE);
    let per_item = runs_per_item(run);
    // Every slot is written by its job; the fill is never read.
    with_f32s(x.len() / run * pieces * 3, 0.0, |partials| {
        for_each_chunk_mut(par, partials, per_item * pieces * 3, |i, slots| {
            let start = i * per_item * run;
            let len = slots.len() / (pieces * 3) * run;
            run_on(
                isa,
                RunStatsJob {
                    x: &x[start..start + len],
                    run,
                    slots,
                },
            )
        });
        // Run r belongs to channel r % channels: channel c's runs, in image order, are
        // every channels-th run from c.
        let stride = pieces * 3;
        for c in 0..desc.channels {
            let mut m = Moments::default();
            for slots in partials[c * stride..].chunks(stride).step_by(desc.channels) {
                for (p, slot) in slots.chunks_exact(3).enumerate() {
                    let count = PIECE.min(run - p * PIECE);
                    m.add_block(count, slot[0], slot[1], slot[2]);
                }
            }
            finish(c, &m);
        }
    });
}

/// Consecutive runs' statistics: per piece of each run, (its f32 mean, Σd, Σd²).
struct RunStatsJob<'a> {
    x: &'a [f32],
    run: usize,
    slots: &'a mut [f32],
}

impl LaneJob for RunStatsJob<'_> {
    type Output = ();
    #[inline(always)]
    fn run<L: Lanes>(self) {
        let pieces = self.x.chunks(self.run).flat_map(|r| r.chunks(PIECE));
        for (piece, slot) in pieces.zip(self.slots.chunks_exact_mut(3)) {
            let shift = run_sum::<L>(piece) / piece.len() as f32;
            let (s1, s2) = run_shifted_sums::<L>(piece, shift);
            slot.copy_from_slice(&[shift, s1, s2]);
        }
    }
}

/// Per-channel moments of an NHWC tensor (or spatial = 1), handed to
/// `finish(channel, moments)`: blocks of rows report their shifted sums in parallel,
/// merged in block order.
fn row_moments(
    isa: Isa,
    desc: &BatchNormDesc,
    x: &[f32],
    rows: usize,
    par: Parallelism,
    mut finish: impl FnMut(usize, &Moments),
) {
    let channels = desc.channels;
    let block = rows * channels;
    let blocks = row_blocks(x.len(), channels, rows);
    // Zeroed: the jobs add their sums to the slots.
    with_f32s(blocks * 3 * channels, 0.0, |partials| {
        for_each_chunk_mut(par, partials, 3 * channels, |b, slot| {
            let end = ((b + 1) * block).min(x.len());
            run_on(
                isa,
                RowStatsJob {
                    x: &x[b * block..end],
                    slot,
                },
            )
        });
        for c in 0..channels {
            let mut m = Moments::default();
            for (b, slot) in partials.chunks_exact(3 * channels).enumerate() {
                let count = rows.min(x.len() / channels - b * rows);
                m.add_block(count, slot[c], slot[channels + c], slot[2 * channels + c]);
            }
            finish(c, &m);
        }
    });
}

/// One row block's statistics: `slot` = its per-channel mean (the shift), Σd, Σd².
struct RowStatsJob<'a> {
    x: &'a [f32],
    slot: &'a mut [f32],
}

impl LaneJob for RowStatsJob<'_> {
    type Output = ();
    #[inline(always)]
    fn run<L: Lanes>(self) {
        let channels = self.slot.len() / 3;
        let (shift, sums) = self.slot.split_at_mut(channels);
        let (s1, s2) = sums.split_at_mut(channels);
        rows_sum::<L>(self.x, shift);
        let count = (self.x.len() / channels) as f32;
        for s in shift.iter_mut() {
            *s /= count;
        }
        rows_shifted_sums::<L>(self.x, shift, s1, s2);
    }
}

/// y = affine(x), on whichever regime the tensor is cut into.
#[allow(clippy::too_many_arguments)]
fn normalize(
    isa: Isa,
    desc: &BatchNormDesc,
    regime: Regime,
    x: &[f32],
    y: &mut [f32],
    p: &RowAffine<'_>,
    relu: bool,
    par: Parallelism,
) {
    match regime {
        Regime::Runs { run } => normalize_runs(isa, x, y, p, run, relu, par),
        Regime::Rows { rows } => normalize_rows(isa, desc, x, y, p, rows, relu, par),
    }
}

/// y = affine(x) over an NHWC tensor (or spatial = 1), blocks of rows in parallel.
#[allow(clippy::too_many_arguments)]
fn normalize_rows(
    isa: Isa,
    desc: &BatchNormDesc,
    x: &[f32],
    y: &mut [f32],
    p: &RowAffine<'_>,
    rows: usize,
    relu: bool,
    par: Parallelism,
) {
    let block = rows * desc.channels;
    for_each_chunk_mut(par, y, block, |b, out| {
        let x = &x[b * block..b * block + out.len()];
        run_on(isa, RowNormalizeJob { x, out, p, relu })
    });
}

struct RowNormalizeJob<'a, 'b> {
    x: &'a [f32],
    out: &'a mut [f32],
    p: &'a RowAffine<'b>,
    relu: bool,
}

impl LaneJob for RowNormalizeJob<'_, '_> {
    type Output = ();
    #[inline(always)]
    fn run<L: Lanes>(self) {
        with_const_bool!(self.relu, rows_normalize::<L>(self.x, self.out, self.p));
    }
}

/// The slices of an inference forward (lengths checked by the caller).
pub(super) struct Inference<'a> {
    pub x: &'a [f32],
    pub gamma: &'a [f32],
    pub beta: &'a [f32],
    pub running_mean: &'a [f32],
    pub running_var: &'a [f32],
    pub y: &'a mut [f32],
}

pub(super) fn inference(
    isa: Isa,
    desc: &BatchNormDesc,
    t: Inference<'_>,
    relu: bool,
    par: Parallelism,
) {
    let channels = desc.channels;
    // The constants as columns in reused per-thread storage (no allocation per call).
    with_f32s(4 * channels, 0.0, |table| {
        let (hi, rest) = table.split_at_mut(channels);
        let (lo, rest) = rest.split_at_mut(channels);
        let (scale, beta) = rest.split_at_mut(channels);
        for c in 0..channels {
            let a = inference_affine(
                t.gamma[c],
                t.beta[c],
                t.running_mean[c],
                t.running_var[c],
                desc.eps,
            );
            (hi[c], lo[c], scale[c], beta[c]) = (a.mean_hi, a.mean_lo, a.scale, a.beta);
        }
        let p = RowAffine {
            mean_hi: hi,
            mean_lo: lo,
            scale,
            beta,
        };
        normalize(isa, desc, Regime::of(desc), t.x, t.y, &p, relu, par);
    });
}

/// y = affine(x) over an NCHW tensor with runs of `run` values, in memory order,
/// groups of runs in parallel.
fn normalize_runs(
    isa: Isa,
    x: &[f32],
    y: &mut [f32],
    p: &RowAffine<'_>,
    run: usize,
    relu: bool,
    par: Parallelism,
) {
    let per_item = runs_per_item(run);
    for_each_chunk_mut(par, y, per_item * run, |i, out| {
        let job = RunsNormalizeJob {
            x: &x[i * per_item * run..][..out.len()],
            out,
            first_run: i * per_item,
            run,
            p,
            relu,
        };
        run_on(isa, job)
    });
}

/// Consecutive NCHW runs from `first_run`, each normalized with its channel's constants.
struct RunsNormalizeJob<'a, 'b> {
    x: &'a [f32],
    out: &'a mut [f32],
    first_run: usize,
    run: usize,
    p: &'a RowAffine<'b>,
    relu: bool,
}

impl LaneJob for RunsNormalizeJob<'_, '_> {
    type Output = ();
    #[inline(always)]
    fn run<L: Lanes>(self) {
        let p = self.p;
        let channels = p.scale.len();
        let runs = self.x.chunks(self.run).zip(self.out.chunks_mut(self.run));
        for (i, (x, out)) in runs.enumerate() {
            let c = (self.first_run + i) % channels;
            let affine = Affine {
                mean_hi: p.mean_hi[c],
                mean_lo: p.mean_lo[c],
                scale: p.scale[c],
                beta: p.beta[c],
            };
            if self.relu {
                run_normalize::<L, true>(x, out, affine);
            } else {
                run_normalize::<L, false>(x, out, affine);
            }
        }
    }
}
