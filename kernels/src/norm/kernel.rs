//! The loops of the batch-norm kernels, generic over [`Lanes`].
//!
//! Two shapes of data: a *run* is a contiguous stretch of one channel (NCHW: one image's
//! plane, or a piece of it), whose per-channel constants are broadcast; a *row block* is
//! whole rows of `channels` values (NHWC, or spatial = 1), whose constants and
//! accumulators are per-channel arrays loaded lane by lane. A partial vector at the end
//! of a run or row is zero-padded on load and masked wherever a padding lane would count.
//!
//! With `RELU`, the forward stores max(y, 0) and the backward reads g = dy where y > 0
//! (else 0) in place of dy: no masked-dy temporary is ever written.
//!
//! Every function is `#[inline(always)]` and free of closures (see `dispatch.rs`).

use crate::eltwise::dispatch::with_const_bool;
use crate::eltwise::lanes::Lanes;

/// The widest path (AVX2) has 8 lanes.
const MAX_LANES: usize = 8;

/// The sum of the lanes of `v`, in lane order.
#[inline(always)]
fn hsum<L: Lanes>(v: L) -> f32 {
    let mut lanes = [0.0f32; MAX_LANES];
    v.store(&mut lanes);
    let mut sum = 0.0;
    for &lane in &lanes[..L::LANES] {
        sum += lane;
    }
    sum
}

/// `k` values from `s[at..]`: a whole vector when `k == LANES`, else zero-padded.
#[inline(always)]
fn load<L: Lanes>(s: &[f32], at: usize, k: usize) -> L {
    if k == L::LANES {
        L::load(&s[at..])
    } else {
        L::load_partial(&s[at..at + k])
    }
}

/// Stores the first `k` lanes of `v` at `d[at..]`.
#[inline(always)]
fn store<L: Lanes>(v: L, d: &mut [f32], at: usize, k: usize) {
    if k == L::LANES {
        v.store(&mut d[at..])
    } else {
        v.store_partial(&mut d[at..at + k])
    }
}

/// dy, or dy where y > 0 (else 0) with `RELU`.
#[inline(always)]
fn gradient<L: Lanes, const RELU: bool>(dy: &[f32], y: &[f32], at: usize, k: usize) -> L {
    let g = load::<L>(dy, at, k);
    if RELU {
        let zero = L::splat(0.0);
        L::select(load::<L>(y, at, k).gt(zero), g, zero)
    } else {
        g
    }
}

/// y = ((x − mean_hi) − mean_lo)·scale + beta, then max(·, 0) with `RELU`.
#[inline(always)]
fn affine<L: Lanes, const RELU: bool>(x: L, hi: L, lo: L, scale: L, beta: L) -> L {
    let y = ((x - hi) - lo).mul_add(scale, beta);
    if RELU {
        let zero = L::splat(0.0);
        L::select(y.gt(zero), y, zero)
    } else {
        y
    }
}

/// One channel's constants for normalizing: y = ((x − mean_hi) − mean_lo)·scale + beta.
/// The mean is split into two f32 so that data far from zero keeps its accuracy: x −
/// mean_hi is exact when x is near the mean.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Affine {
    pub mean_hi: f32,
    pub mean_lo: f32,
    pub scale: f32,
    pub beta: f32,
}

/// One channel's constants for the backward: dx = a·g + b·(x − mean) + c.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct GradAffine {
    pub mean: f32,
    pub a: f32,
    pub b: f32,
    pub c: f32,
}

/// Σ x over a run.
#[inline(always)]
pub(super) fn run_sum<L: Lanes>(x: &[f32]) -> f32 {
    let (mut acc0, mut acc1) = (L::splat(0.0), L::splat(0.0));
    let mut pairs = x.chunks_exact(2 * L::LANES);
    for v in &mut pairs {
        acc0 = acc0 + L::load(v);
        acc1 = acc1 + L::load(&v[L::LANES..]);
    }
    let rest = pairs.remainder();
    let mut at = 0;
    while at < rest.len() {
        let k = L::LANES.min(rest.len() - at);
        acc0 = acc0 + load::<L>(rest, at, k);
        at += k;
    }
    hsum(acc0 + acc1)
}

/// (Σ d, Σ d²) over a run, d = x − shift. Two vectors per step, each with its own
/// accumulators, so that the adds do not wait on each other.
#[inline(always)]
pub(super) fn run_shifted_sums<L: Lanes>(x: &[f32], shift: f32) -> (f32, f32) {
    let (zero, s) = (L::splat(0.0), L::splat(shift));
    let (mut s1, mut s2, mut t1, mut t2) = (zero, zero, zero, zero);
    let mut pairs = x.chunks_exact(2 * L::LANES);
    for v in &mut pairs {
        let d = L::load(v) - s;
        let e = L::load(&v[L::LANES..]) - s;
        s1 = s1 + d;
        s2 = d.mul_add(d, s2);
        t1 = t1 + e;
        t2 = e.mul_add(e, t2);
    }
    let rest = pairs.remainder();
    let mut at = 0;
    while at < rest.len() {
        let k = L::LANES.min(rest.len() - at);
        let mut d = load::<L>(rest, at, k) - s;
        if k < L::LANES {
            d = L::select(L::lanes_below(k), d, zero);
        }
        s1 = s1 + d;
        s2 = d.mul_add(d, s2);
        at += k;
    }
    (hsum(s1 + t1), hsum(s2 + t2))
}

/// y = affine(x) over a run.
#[inline(always)]
pub(super) fn run_normalize<L: Lanes, const RELU: bool>(x: &[f32], y: &mut [f32], p: Affine) {
    let (hi, lo) = (L::splat(p.mean_hi), L::splat(p.mean_lo));
    let (scale, beta) = (L::splat(p.scale), L::splat(p.beta));
    let mut at = 0;
    while at < x.len() {
        let k = L::LANES.min(x.len() - at);
        let v = affine::<L, RELU>(load(x, at, k), hi, lo, scale, beta);
        store(v, y, at, k);
        at += k;
    }
}

/// (Σ g, Σ g·(x − mean)) over a run (`y` is read only with `RELU`), two vectors per
/// step as in [`run_shifted_sums`].
#[inline(always)]
pub(super) fn run_grad_sums<L: Lanes, const RELU: bool>(
    x: &[f32],
    y: &[f32],
    dy: &[f32],
    mean: f32,
) -> (f32, f32) {
    let (zero, m) = (L::splat(0.0), L::splat(mean));
    let (mut sg, mut sgx, mut tg, mut tgx) = (zero, zero, zero, zero);
    let (n, step) = (x.len(), 2 * L::LANES);
    let mut at = 0;
    while at + step <= n {
        let g = gradient::<L, RELU>(dy, y, at, L::LANES);
        let h = gradient::<L, RELU>(dy, y, at + L::LANES, L::LANES);
        sg = sg + g;
        sgx = g.mul_add(L::load(&x[at..]) - m, sgx);
        tg = tg + h;
        tgx = h.mul_add(L::load(&x[at + L::LANES..]) - m, tgx);
        at += step;
    }
    while at < n {
        let k = L::LANES.min(n - at);
        // Padding lanes load g = 0, so they add nothing to either sum.
        let g = gradient::<L, RELU>(dy, y, at, k);
        sg = sg + g;
        sgx = g.mul_add(load::<L>(x, at, k) - m, sgx);
        at += k;
    }
    (hsum(sg + tg), hsum(sgx + tgx))
}

/// dx = a·g + b·(x − mean) + c over a run.
#[inline(always)]
pub(super) fn run_grad_apply<L: Lanes, const RELU: bool>(
    x: &[f32],
    y: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    p: GradAffine,
) {
    let (m, a, b, c) = (
        L::splat(p.mean),
        L::splat(p.a),
        L::splat(p.b),
        L::splat(p.c),
    );
    let mut at = 0;
    while at < x.len() {
        let k = L::LANES.min(x.len() - at);
        let g = gradient::<L, RELU>(dy, y, at, k);
        let v = (load::<L>(x, at, k) - m).mul_add(b, g.mul_add(a, c));
        store(v, dx, at, k);
        at += k;
    }
}

/// Vectors of channels a row walk carries at once: four vectors of accumulators (eight
/// for the paired sums) stay in registers, and 32 channels are two cache lines, which
/// the walk reads once each.
const GROUP: usize = 4;

/// Whether rows of `channels` are whole vectors (the `FULL` of the row walks below).
#[inline(always)]
fn whole<L: Lanes>(channels: usize) -> bool {
    channels.is_multiple_of(L::LANES)
}

/// Lanes of the vector at `left` channels from the end of a row: all of them with
/// `FULL` (channels a multiple of the lanes), so that loads and stores need no check.
#[inline(always)]
fn whole_or<L: Lanes, const FULL: bool>(left: usize) -> usize {
    if FULL {
        L::LANES
    } else {
        L::LANES.min(left)
    }
}

/// The channel group of a row walk that starts at channel `at`.
#[derive(Clone, Copy)]
struct Group {
    at: usize,
    vectors: usize,
    /// Lanes of the last vector.
    last: usize,
}

impl Group {
    #[inline(always)]
    fn new<L: Lanes>(channels: usize, at: usize) -> Group {
        let width = (GROUP * L::LANES).min(channels - at);
        let vectors = width.div_ceil(L::LANES);
        Group {
            at,
            vectors,
            last: width - (vectors - 1) * L::LANES,
        }
    }

    /// (first channel, lanes) of vector `v`; with `FULL` (channels a multiple of the
    /// lanes) every vector is whole, which the compiler then knows.
    #[inline(always)]
    fn vector<L: Lanes, const FULL: bool>(&self, v: usize) -> (usize, usize) {
        let lanes = if FULL || v + 1 != self.vectors {
            L::LANES
        } else {
            self.last
        };
        (self.at + v * L::LANES, lanes)
    }
}

/// acc\[c\] += Σ x\[r, c\] over the rows of `x` (rows of `acc.len()` values): a group
/// of channel vectors at a time down all the rows, in registers (the block is in L2, and
/// each of its cache lines is read once).
#[inline(always)]
pub(super) fn rows_sum<L: Lanes>(x: &[f32], acc: &mut [f32]) {
    with_const_bool!(whole::<L>(acc.len()), rows_sum_of::<L>(x, acc))
}

/// [`rows_sum`], with `FULL` when every vector of channels is whole.
#[inline(always)]
fn rows_sum_of<L: Lanes, const FULL: bool>(x: &[f32], acc: &mut [f32]) {
    let channels = acc.len();
    let rows = x.len() / channels;
    for at in (0..channels).step_by(GROUP * L::LANES) {
        let g = Group::new::<L>(channels, at);
        let mut sums = [L::splat(0.0); GROUP];
        for (v, sum) in sums.iter_mut().enumerate().take(g.vectors) {
            let (i, k) = g.vector::<L, FULL>(v);
            *sum = load::<L>(acc, i, k);
        }
        for r in 0..rows {
            for (v, sum) in sums.iter_mut().enumerate().take(g.vectors) {
                let (i, k) = g.vector::<L, FULL>(v);
                *sum = *sum + load::<L>(x, r * channels + i, k);
            }
        }
        for (v, sum) in sums.iter().enumerate().take(g.vectors) {
            let (i, k) = g.vector::<L, FULL>(v);
            store(*sum, acc, i, k);
        }
    }
}

/// s1\[c\] += Σ d and s2\[c\] += Σ d² over the rows, d = x\[r, c\] − shift\[c\],
/// walked as in [`rows_sum`].
#[inline(always)]
pub(super) fn rows_shifted_sums<L: Lanes>(
    x: &[f32],
    shift: &[f32],
    s1: &mut [f32],
    s2: &mut [f32],
) {
    let full = whole::<L>(shift.len());
    with_const_bool!(full, rows_shifted_sums_of::<L>(x, shift, s1, s2))
}

/// [`rows_shifted_sums`], with `FULL` when every vector of channels is whole.
#[inline(always)]
fn rows_shifted_sums_of<L: Lanes, const FULL: bool>(
    x: &[f32],
    shift: &[f32],
    s1: &mut [f32],
    s2: &mut [f32],
) {
    let channels = shift.len();
    let rows = x.len() / channels;
    for at in (0..channels).step_by(GROUP * L::LANES) {
        let g = Group::new::<L>(channels, at);
        let zero = L::splat(0.0);
        let (mut shifts, mut sums1, mut sums2) = ([zero; GROUP], [zero; GROUP], [zero; GROUP]);
        for v in 0..g.vectors {
            let (i, k) = g.vector::<L, FULL>(v);
            // Padding lanes give d = 0 − 0 and are never stored.
            shifts[v] = load::<L>(shift, i, k);
            sums1[v] = load::<L>(s1, i, k);
            sums2[v] = load::<L>(s2, i, k);
        }
        for r in 0..rows {
            for v in 0..g.vectors {
                let (i, k) = g.vector::<L, FULL>(v);
                let d = load::<L>(x, r * channels + i, k) - shifts[v];
                sums1[v] = sums1[v] + d;
                sums2[v] = d.mul_add(d, sums2[v]);
            }
        }
        for v in 0..g.vectors {
            let (i, k) = g.vector::<L, FULL>(v);
            store(sums1[v], s1, i, k);
            store(sums2[v], s2, i, k);
        }
    }
}

/// Per-channel constants as arrays (structure of arrays): a row block loads them lane
/// by lane; a run takes its channel's [`Affine`] from them.
pub(super) struct RowAffine<'a> {
    pub mean_hi: &'a [f32],
    pub mean_lo: &'a [f32],
    pub scale: &'a [f32],
    pub beta: &'a [f32],
}

/// y\[r, c\] = affine_c(x\[r, c\]) over whole rows.
#[inline(always)]
pub(super) fn rows_normalize<L: Lanes, const RELU: bool>(
    x: &[f32],
    y: &mut [f32],
    p: &RowAffine<'_>,
) {
    with_const_bool!(
        whole::<L>(p.scale.len()),
        rows_normalize_of::<L, RELU>(x, y, p)
    )
}

/// [`rows_normalize`], with `FULL` when every vector of channels is whole.
#[inline(always)]
fn rows_normalize_of<L: Lanes, const RELU: bool, const FULL: bool>(
    x: &[f32],
    y: &mut [f32],
    p: &RowAffine<'_>,
) {
    let channels = p.scale.len();
    for (row, out) in x.chunks_exact(channels).zip(y.chunks_exact_mut(channels)) {
        let mut at = 0;
        while at < channels {
            let k = whole_or::<L, FULL>(channels - at);
            let v = affine::<L, RELU>(
                load(row, at, k),
                load(p.mean_hi, at, k),
                load(p.mean_lo, at, k),
                load(p.scale, at, k),
                load(p.beta, at, k),
            );
            store(v, out, at, k);
            at += k;
        }
    }
}

/// sg\[c\] += Σ g and sgx\[c\] += Σ g·(x − mean\[c\]) over whole rows, walked as in
/// [`rows_sum`].
#[inline(always)]
pub(super) fn rows_grad_sums<L: Lanes, const RELU: bool>(
    x: &[f32],
    y: &[f32],
    dy: &[f32],
    mean: &[f32],
    sg: &mut [f32],
    sgx: &mut [f32],
) {
    let full = whole::<L>(mean.len());
    with_const_bool!(full, rows_grad_sums_of::<L, RELU>(x, y, dy, mean, sg, sgx))
}

/// [`rows_grad_sums`], with `FULL` when every vector of channels is whole.
#[inline(always)]
fn rows_grad_sums_of<L: Lanes, const RELU: bool, const FULL: bool>(
    x: &[f32],
    y: &[f32],
    dy: &[f32],
    mean: &[f32],
    sg: &mut [f32],
    sgx: &mut [f32],
) {
    let channels = mean.len();
    let rows = x.len() / channels;
    for at in (0..channels).step_by(GROUP * L::LANES) {
        let g = Group::new::<L>(channels, at);
        let zero = L::splat(0.0);
        let (mut means, mut sums_g, mut sums_gx) = ([zero; GROUP], [zero; GROUP], [zero; GROUP]);
        for v in 0..g.vectors {
            let (i, k) = g.vector::<L, FULL>(v);
            means[v] = load::<L>(mean, i, k);
            sums_g[v] = load::<L>(sg, i, k);
            sums_gx[v] = load::<L>(sgx, i, k);
        }
        for r in 0..rows {
            for v in 0..g.vectors {
                let (i, k) = g.vector::<L, FULL>(v);
                let p = r * channels + i;
                let grad = gradient::<L, RELU>(dy, y, p, k);
                sums_g[v] = sums_g[v] + grad;
                sums_gx[v] = grad.mul_add(load::<L>(x, p, k) - means[v], sums_gx[v]);
            }
        }
        for v in 0..g.vectors {
            let (i, k) = g.vector::<L, FULL>(v);
            store(sums_g[v], sg, i, k);
            store(sums_gx[v], sgx, i, k);
        }
    }
}

/// Per-channel backward constants as arrays: a row block loads them lane by lane; a
/// run takes its channel's [`GradAffine`] from them.
pub(super) struct RowGradAffine<'a> {
    pub mean: &'a [f32],
    pub a: &'a [f32],
    pub b: &'a [f32],
    pub c: &'a [f32],
}

/// dx\[r, c\] = a\[c\]·g + b\[c\]·(x − mean\[c\]) + c\[c\] over whole rows.
#[inline(always)]
pub(super) fn rows_grad_apply<L: Lanes, const RELU: bool>(
    x: &[f32],
    y: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    p: &RowGradAffine<'_>,
) {
    let full = whole::<L>(p.mean.len());
    with_const_bool!(full, rows_grad_apply_of::<L, RELU>(x, y, dy, dx, p))
}

/// [`rows_grad_apply`], with `FULL` when every vector of channels is whole.
#[inline(always)]
fn rows_grad_apply_of<L: Lanes, const RELU: bool, const FULL: bool>(
    x: &[f32],
    y: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    p: &RowGradAffine<'_>,
) {
    let channels = p.mean.len();
    let mut start = 0;
    while start < x.len() {
        let (xr, dyr) = (&x[start..], &dy[start..]);
        let yr = if RELU { &y[start..] } else { y };
        let out = &mut dx[start..];
        let mut at = 0;
        while at < channels {
            let k = whole_or::<L, FULL>(channels - at);
            let g = gradient::<L, RELU>(dyr, yr, at, k);
            let xc = load::<L>(xr, at, k) - load::<L>(p.mean, at, k);
            let v = xc.mul_add(
                load(p.b, at, k),
                g.mul_add(load(p.a, at, k), load(p.c, at, k)),
            );
            store(v, out, at, k);
            at += k;
        }
        start += channels;
    }
}
