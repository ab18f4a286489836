//! The training and inference forwards: statistics, then y, per work item.

use super::dispatch::{run_on, LaneJob};
use super::kernel::{
    rows_normalize, rows_shifted_sums, rows_sum, run_normalize, run_shifted_sums, run_sum, Affine,
    RowAffine,
};
use super::moments::{finish_training, inference_affine, ChannelResult, Moments, TrainParams};
use super::plan::{row_blocks, runs_per_item, Regime, PIECE};
use super::BatchNormDesc;
use crate::arch::Isa;
use crate::eltwise::lanes::Lanes;
use crate::parallel::{for_each_chunk_mut, Parallelism};

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

impl Training<'_> {
    fn params(&self, desc: &BatchNormDesc, c: usize) -> TrainParams {
        TrainParams {
            gamma: self.gamma[c],
            beta: self.beta[c],
            eps: desc.eps,
            momentum: self.momentum,
            running_mean: self.running_mean[c],
            running_var: self.running_var[c],
        }
    }
}

pub(super) fn training(
    isa: Isa,
    desc: &BatchNormDesc,
    t: Training<'_>,
    relu: bool,
    par: Parallelism,
) {
    let results = match Regime::of(desc) {
        Regime::Runs { run } => {
            let moments = run_moments(isa, desc, t.x, run, par);
            let (affines, results): (Vec<Affine>, Vec<ChannelResult>) = moments
                .iter()
                .enumerate()
                .map(|(c, m)| finish_training(m, t.params(desc, c)))
                .unzip();
            normalize_runs(isa, t.x, t.y, &affines, run, relu, par);
            results
        }
        Regime::Rows { rows } => {
            let moments = row_moments(isa, desc, t.x, rows, par);
            let (affines, results): (Vec<Affine>, Vec<ChannelResult>) = moments
                .iter()
                .enumerate()
                .map(|(c, m)| finish_training(m, t.params(desc, c)))
                .unzip();
            normalize_rows(isa, desc, t.x, t.y, &affines, rows, relu, par);
            results
        }
    };
    for (c, r) in results.iter().enumerate() {
        t.saved_mean[c] = r.mean;
        t.saved_inv_std[c] = r.inv_std;
        t.running_mean[c] = r.running_mean;
        t.running_var[c] = r.running_var;
    }
}

/// Per-channel moments of an NCHW tensor with runs of `run` values: the runs report
/// their shifted sums piece by piece, in memory order and in parallel, merged per
/// channel in image order.
fn run_moments(
    isa: Isa,
    desc: &BatchNormDesc,
    x: &[f32],
    run: usize,
    par: Parallelism,
) -> Vec<Moments> {
    let pieces = run.div_ceil(PIECE);
    let per_item = runs_per_item(run);
    let mut partials = vec![0.0f32; x.len() / run * pieces * 3];
    for_each_chunk_mut(par, &mut partials, per_item * pieces * 3, |i, slots| {
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
    let mut moments = vec![Moments::default(); desc.channels];
    for (r, slots) in partials.chunks_exact(pieces * 3).enumerate() {
        let m = &mut moments[r % desc.channels];
        for (p, slot) in slots.chunks_exact(3).enumerate() {
            let count = PIECE.min(run - p * PIECE);
            m.add_block(count, slot[0], slot[1], slot[2]);
        }
    }
    moments
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

/// Per-channel moments of an NHWC tensor (or spatial = 1): blocks of rows report their
/// shifted sums in parallel, merged in block order.
fn row_moments(
    isa: Isa,
    desc: &BatchNormDesc,
    x: &[f32],
    rows: usize,
    par: Parallelism,
) -> Vec<Moments> {
    let channels = desc.channels;
    let block = rows * channels;
    let blocks = row_blocks(x.len(), channels, rows);
    let mut partials = vec![0.0f32; blocks * 3 * channels];
    for_each_chunk_mut(par, &mut partials, 3 * channels, |b, slot| {
        let end = ((b + 1) * block).min(x.len());
        run_on(
            isa,
            RowStatsJob {
                x: &x[b * block..end],
                slot,
            },
        )
    });
    let mut moments = vec![Moments::default(); channels];
    for (b, slot) in partials.chunks_exact(3 * channels).enumerate() {
        let count = rows.min(x.len() / channels - b * rows);
        let (shift, sums) = slot.split_at(channels);
        let (s1, s2) = sums.split_at(channels);
        for (c, m) in moments.iter_mut().enumerate() {
            m.add_block(count, shift[c], s1[c], s2[c]);
        }
    }
    moments
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

/// y = affine(x) over an NHWC tensor (or spatial = 1), blocks of rows in parallel.
#[allow(clippy::too_many_arguments)]
fn normalize_rows(
    isa: Isa,
    desc: &BatchNormDesc,
    x: &[f32],
    y: &mut [f32],
    affines: &[Affine],
    rows: usize,
    relu: bool,
    par: Parallelism,
) {
    let column = |f: fn(&Affine) -> f32| affines.iter().map(f).collect::<Vec<f32>>();
    let (hi, lo) = (column(|a| a.mean_hi), column(|a| a.mean_lo));
    let (scale, beta) = (column(|a| a.scale), column(|a| a.beta));
    let p = RowAffine {
        mean_hi: &hi,
        mean_lo: &lo,
        scale: &scale,
        beta: &beta,
    };
    let block = rows * desc.channels;
    for_each_chunk_mut(par, y, block, |b, out| {
        let x = &x[b * block..b * block + out.len()];
        run_on(
            isa,
            RowNormalizeJob {
                x,
                out,
                p: &p,
                relu,
            },
        )
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
        if self.relu {
            rows_normalize::<L, true>(self.x, self.out, self.p);
        } else {
            rows_normalize::<L, false>(self.x, self.out, self.p);
        }
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
    let affines: Vec<Affine> = (0..desc.channels)
        .map(|c| {
            inference_affine(
                t.gamma[c],
                t.beta[c],
                t.running_mean[c],
                t.running_var[c],
                desc.eps,
            )
        })
        .collect();
    match Regime::of(desc) {
        Regime::Runs { run } => normalize_runs(isa, t.x, t.y, &affines, run, relu, par),
        Regime::Rows { rows } => normalize_rows(isa, desc, t.x, t.y, &affines, rows, relu, par),
    }
}

/// y = affine(x) over an NCHW tensor with runs of `run` values, in memory order,
/// groups of runs in parallel.
fn normalize_runs(
    isa: Isa,
    x: &[f32],
    y: &mut [f32],
    affines: &[Affine],
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
            affines,
            relu,
        };
        run_on(isa, job)
    });
}

/// Consecutive NCHW runs from `first_run`, each normalized with its channel's constants.
struct RunsNormalizeJob<'a> {
    x: &'a [f32],
    out: &'a mut [f32],
    first_run: usize,
    run: usize,
    affines: &'a [Affine],
    relu: bool,
}

impl LaneJob for RunsNormalizeJob<'_> {
    type Output = ();
    #[inline(always)]
    fn run<L: Lanes>(self) {
        let channels = self.affines.len();
        let runs = self.x.chunks(self.run).zip(self.out.chunks_mut(self.run));
        for (i, (x, out)) in runs.enumerate() {
            let affine = self.affines[(self.first_run + i) % channels];
            if self.relu {
                run_normalize::<L, true>(x, out, affine);
            } else {
                run_normalize::<L, false>(x, out, affine);
            }
        }
    }
}
