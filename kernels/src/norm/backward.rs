//! The backward, in two passes over memory: per-channel sums of g and g·(x − mean)
//! (g = dy, or dy masked by the ReLU output), then dx.

use super::dispatch::{run_on, LaneJob};
use super::kernel::{
    rows_grad_apply, rows_grad_sums, run_grad_apply, run_grad_sums, GradAffine, RowGradAffine,
};
use super::moments::finish_backward;
use super::plan::{per_channel, row_blocks, run_of, Regime, PIECE};
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
            let (x, dy) = (t.x, t.dy);
            per_channel(par, t.dx, desc.channels, run, |c, outs| {
                let job = ChannelGradJob {
                    x,
                    y,
                    dy,
                    channels: desc.channels,
                    c,
                    mean: t.saved_mean[c],
                    outs,
                    finish: &finish,
                    relu,
                };
                run_on(isa, job)
            })
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

/// The constants of channel c from Σg and Σg·(x − mean): (dgamma, dbeta, dx constants).
type Finish<'a> = &'a (dyn Fn(usize, f64, f64) -> (f32, f32, GradAffine) + Sync);

/// One channel of an NCHW backward: its sums run by run, then its runs of dx.
struct ChannelGradJob<'a, 'b> {
    x: &'a [f32],
    y: &'a [f32],
    dy: &'a [f32],
    channels: usize,
    c: usize,
    /// The channel's saved mean.
    mean: f32,
    outs: &'b mut [&'a mut [f32]],
    finish: Finish<'b>,
    relu: bool,
}

impl<'a> ChannelGradJob<'a, '_> {
    /// (x, y, dy) of image `n`; y is empty without ReLU.
    #[inline(always)]
    fn inputs(&self, run: usize, n: usize) -> (&'a [f32], &'a [f32], &'a [f32]) {
        let (channels, c) = (self.channels, self.c);
        let y = if self.relu {
            run_of(self.y, channels, run, n, c)
        } else {
            &[][..]
        };
        (
            run_of(self.x, channels, run, n, c),
            y,
            run_of(self.dy, channels, run, n, c),
        )
    }
}

impl LaneJob for ChannelGradJob<'_, '_> {
    type Output = (f32, f32);
    #[inline(always)]
    fn run<L: Lanes>(self) -> (f32, f32) {
        let run = self.outs.first().map_or(0, |r| r.len());
        let (mut sum_g, mut sum_gx) = (0.0f64, 0.0f64);
        for n in 0..self.outs.len() {
            let (x, y, dy) = self.inputs(run, n);
            let mut at = 0;
            while at < run {
                let end = (at + PIECE).min(run);
                let yp = if self.relu { &y[at..end] } else { y };
                let (g, gx) = if self.relu {
                    run_grad_sums::<L, true>(&x[at..end], yp, &dy[at..end], self.mean)
                } else {
                    run_grad_sums::<L, false>(&x[at..end], yp, &dy[at..end], self.mean)
                };
                sum_g += f64::from(g);
                sum_gx += f64::from(gx);
                at = end;
            }
        }
        let (dgamma, dbeta, grad) = (self.finish)(self.c, sum_g, sum_gx);
        for n in 0..self.outs.len() {
            let (x, y, dy) = self.inputs(run, n);
            let out = &mut *self.outs[n];
            if self.relu {
                run_grad_apply::<L, true>(x, y, dy, out, grad);
            } else {
                run_grad_apply::<L, false>(x, y, dy, out, grad);
            }
        }
        (dgamma, dbeta)
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
