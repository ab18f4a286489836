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
use crate::eltwise::lanes::Lanes;
use crate::parallel::{for_each_chunk_mut, Parallelism};

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
    let finish = |c: usize, sum_g: f64, sum_gx: f64| {
        finish_backward(
            count,
            t.gamma[c],
            t.saved_mean[c],
            t.saved_inv_std[c],
            sum_g,
            sum_gx,
        )
    };
    let results: Vec<(f32, f32)> = match Regime::of(desc) {
        Regime::Runs { run } => {
            let channels = desc.channels;
            let pieces = run.div_ceil(PIECE);
            let per_item = runs_per_item(run);
            let mut partials = vec![0.0f32; t.x.len() / run * pieces * 2];
            for_each_chunk_mut(par, &mut partials, per_item * pieces * 2, |i, slots| {
                let start = i * per_item * run;
                let range = start..start + slots.len() / (pieces * 2) * run;
                let job = RunGradSumsJob {
                    x: &t.x[range.clone()],
                    y: if relu { &y[range.clone()] } else { &[] },
                    dy: &t.dy[range],
                    first_run: i * per_item,
                    run,
                    mean: t.saved_mean,
                    slots,
                    relu,
                };
                run_on(isa, job)
            });
            let mut sums = vec![(0.0f64, 0.0f64); channels];
            for (r, slots) in partials.chunks_exact(pieces * 2).enumerate() {
                let s = &mut sums[r % channels];
                for slot in slots.chunks_exact(2) {
                    s.0 += f64::from(slot[0]);
                    s.1 += f64::from(slot[1]);
                }
            }
            let (results, grads): (Vec<(f32, f32)>, Vec<GradAffine>) = sums
                .iter()
                .enumerate()
                .map(|(c, &(sg, sgx))| {
                    let (dgamma, dbeta, grad) = finish(c, sg, sgx);
                    ((dgamma, dbeta), grad)
                })
                .unzip();
            let (x, dy) = (t.x, t.dy);
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
                    grads: &grads,
                    relu,
                };
                run_on(isa, job)
            });
            results
        }
        Regime::Rows { rows } => {
            let channels = desc.channels;
            let block = rows * channels;
            let blocks = row_blocks(t.x.len(), channels, rows);
            let mut partials = vec![0.0f32; blocks * 2 * channels];
            for_each_chunk_mut(par, &mut partials, 2 * channels, |b, slot| {
                let range = b * block..((b + 1) * block).min(t.x.len());
                let job = RowGradSumsJob {
                    x: &t.x[range.clone()],
                    y: if relu { &y[range.clone()] } else { &[] },
                    dy: &t.dy[range],
                    mean: t.saved_mean,
                    slot,
                    relu,
                };
                run_on(isa, job)
            });
            let mut sums = vec![(0.0f64, 0.0f64); channels];
            for slot in partials.chunks_exact(2 * channels) {
                let (sg, sgx) = slot.split_at(channels);
                for (c, s) in sums.iter_mut().enumerate() {
                    s.0 += f64::from(sg[c]);
                    s.1 += f64::from(sgx[c]);
                }
            }
            let mut grads = Vec::with_capacity(channels);
            let results = sums
                .iter()
                .enumerate()
                .map(|(c, &(sg, sgx))| {
                    let (dgamma, dbeta, grad) = finish(c, sg, sgx);
                    grads.push(grad);
                    (dgamma, dbeta)
                })
                .collect();
            let column = |f: fn(&GradAffine) -> f32| grads.iter().map(f).collect::<Vec<f32>>();
            let (mean, a) = (column(|g| g.mean), column(|g| g.a));
            let (b, c) = (column(|g| g.b), column(|g| g.c));
            let p = RowGradAffine {
                mean: &mean,
                a: &a,
                b: &b,
                c: &c,
            };
            let (x, dy) = (t.x, t.dy);
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
            results
        }
    };
    for (c, (dgamma, dbeta)) in results.into_iter().enumerate() {
        t.dgamma[c] = dgamma;
        t.dbeta[c] = dbeta;
    }
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
struct RunsGradApplyJob<'a> {
    x: &'a [f32],
    y: &'a [f32],
    dy: &'a [f32],
    out: &'a mut [f32],
    first_run: usize,
    run: usize,
    grads: &'a [GradAffine],
    relu: bool,
}

impl LaneJob for RunsGradApplyJob<'_> {
    type Output = ();
    #[inline(always)]
    fn run<L: Lanes>(self) {
        let channels = self.grads.len();
        let outs = self.out.chunks_mut(self.run);
        for (r, out) in outs.enumerate() {
            let grad = self.grads[(self.first_run + r) % channels];
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
        if self.relu {
            rows_grad_sums::<L, true>(self.x, self.y, self.dy, self.mean, sg, sgx);
        } else {
            rows_grad_sums::<L, false>(self.x, self.y, self.dy, self.mean, sg, sgx);
        }
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
        if self.relu {
            rows_grad_apply::<L, true>(self.x, self.y, self.dy, self.out, self.p);
        } else {
            rows_grad_apply::<L, false>(self.x, self.y, self.dy, self.out, self.p);
        }
    }
}
