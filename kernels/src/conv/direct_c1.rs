//! Direct convolution of one-channel images with NHWC outputs: a network's first layer
//! on grayscale input (the seed CNN's conv1).
//!
//! With one input channel, im2col + GEMM multiplies a tall matrix by K = R·S (9): too
//! shallow for GEMM's blocking to pay off in NHWC. Here each output pixel is computed
//! in registers instead: its R·S input values are gathered once, broadcast and
//! multiplied into all output channels (two pixels at a time, so that eight independent
//! accumulator chains keep both FMA pipes busy). Backward-weights sums tap × channel
//! products over the pixels with one accumulator per tap.
//!
//! Results are independent of the thread count: the forward splits output rows; the
//! backward sums parts of the batch cut from its size alone, then adds the parts in
//! order, so every sum runs in the same order on any split.

use super::im2col::Geometry;
use super::Plan;
use crate::arch::Isa;
use crate::eltwise::dispatch::{lanes_dispatch, with_const_bool};
use crate::eltwise::lanes::{load_n, store_n, Lanes};
use crate::eltwise::{activate_slice_on, Activation};
use crate::layout::Layout;
use crate::parallel::{for_each_chunk_mut, Parallelism};
use crate::workspace::{with_f32s, with_f64s};

/// Output channels one pass over a pixel covers: four vectors.
const CHANNEL_VECTORS: usize = 4;

/// Whether the direct kernels handle `plan`: one input channel, one group, NHWC, and a
/// kernel with 1, 4, 9, 16 or 25 taps (the sizes the kernels are instantiated for).
pub(super) fn applies(plan: &Plan) -> bool {
    let d = &plan.desc;
    d.in_channels == 1
        && d.groups == 1
        && d.layout == Layout::Nhwc
        && matches!(plan.geometry.taps(), 1 | 4 | 9 | 16 | 25)
}

/// The gradient reaching the convolution's output: `dy`, or with `relu_output` (the
/// output of a fused ReLU), dy where that output is positive and 0 elsewhere.
#[derive(Clone, Copy)]
pub(super) struct OutputGradient<'a> {
    pub dy: &'a [f32],
    pub relu_output: Option<&'a [f32]>,
}

/// Kernel taps along one axis, at most: a kernel of 25 taps may be 1 × 25.
const MAX_TAPS: usize = 25;

/// Where each kernel row r reads input row oh·stride + r·dilation − padding: that row's
/// offset in the image, or `None` in the padding.
#[inline(always)]
fn row_offsets(g: &Geometry, oh: usize) -> [Option<usize>; MAX_TAPS] {
    let mut rows = [None; MAX_TAPS];
    for (r, row) in rows.iter_mut().enumerate().take(g.taps[0]) {
        *row = g.h.input_of(oh, r).map(|ih| ih * g.w.input);
    }
    rows
}

/// The input values output pixel (·, ow) reads through each tap (0 in the padding),
/// given its row's [`row_offsets`].
#[inline(always)]
fn gather<const T: usize>(
    g: &Geometry,
    image: &[f32],
    rows: &[Option<usize>; MAX_TAPS],
    ow: usize,
) -> [f32; T] {
    let mut xs = [0.0f32; T];
    let mut t = 0;
    for row in &rows[..g.taps[0]] {
        for s in 0..g.taps[1] {
            if let (Some(base), Some(iw)) = (*row, g.w.input_of(ow, s)) {
                xs[t] = image[base + iw];
            }
            t += 1;
        }
    }
    xs
}

/// Where each tap reads relative to the window's first input (top left, unpadded).
#[inline(always)]
fn tap_offsets<const T: usize>(g: &Geometry) -> [usize; T] {
    let mut offsets = [0usize; T];
    for (t, o) in offsets.iter_mut().enumerate() {
        let (r, s) = (t / g.taps[1], t % g.taps[1]);
        *o = r * g.h.dilation * g.w.input + s * g.w.dilation;
    }
    offsets
}

/// Where the window of output column `ow` starts in the image, when the whole window
/// lies inside it (no per-tap padding checks needed).
#[inline(always)]
fn window_origin(g: &Geometry, rows: &[Option<usize>; MAX_TAPS], ow: usize) -> Option<usize> {
    let first = (ow * g.w.stride).checked_sub(g.w.padding);
    let inside = first.is_some_and(|iw| iw + (g.taps[1] - 1) * g.w.dilation < g.w.input);
    match (rows[0], rows[g.taps[0] - 1], first) {
        (Some(top), Some(_), Some(iw)) if inside => Some(top + iw),
        _ => None,
    }
}

/// The input value of tap `t` of one output pixel's window: read straight from the
/// image when the whole window lies inside it, from the window gathered with its
/// padding otherwise.
#[derive(Clone, Copy)]
enum Window<'a, const T: usize> {
    Inside {
        image: &'a [f32],
        origin: usize,
        offsets: &'a [usize; T],
    },
    Padded([f32; T]),
}

impl<const T: usize> Window<'_, T> {
    #[inline(always)]
    fn tap(&self, t: usize) -> f32 {
        match self {
            Window::Inside {
                image,
                origin,
                offsets,
            } => image[origin + offsets[t]],
            Window::Padded(xs) => xs[t],
        }
    }
}

/// The window of output column `ow` in the output row whose [`row_offsets`] are `rows`.
#[inline(always)]
fn window<'a, const T: usize>(
    g: &Geometry,
    image: &'a [f32],
    rows: &[Option<usize>; MAX_TAPS],
    offsets: &'a [usize; T],
    ow: usize,
) -> Window<'a, T> {
    match window_origin(g, rows, ow) {
        Some(origin) => Window::Inside {
            image,
            origin,
            offsets,
        },
        None => Window::Padded(gather::<T>(g, image, rows, ow)),
    }
}

/// Stores `v`, or max(v, 0) with `RELU`, into `n` values of `out` from `at`.
#[inline(always)]
fn store_output<L: Lanes, const RELU: bool>(v: L, out: &mut [f32], at: usize, n: usize) {
    let v = if RELU { v.max(L::splat(0.0)) } else { v };
    if n == L::LANES {
        v.store(&mut out[at..at + n]);
    } else {
        store_n(v, out, at, n);
    }
}

/// The four vectors of channels from `k0` of two output pixels whose tap values are
/// `x0(t)` and `x1(t)`: bias + Σ taps x·wᵀ, with `wt` the weights tap-major (T × `k`).
#[inline(always)]
fn pair_block<L: Lanes, const T: usize>(
    x0: impl Fn(usize) -> f32,
    x1: impl Fn(usize) -> f32,
    (wt, k, k0): (&[f32], usize, usize),
    bias: [L; CHANNEL_VECTORS],
) -> [[L; CHANNEL_VECTORS]; 2] {
    let lanes = L::LANES;
    // Named accumulators, not an array, so that all eight stay in registers.
    let [mut a0, mut a1, mut a2, mut a3] = bias;
    let [mut c0, mut c1, mut c2, mut c3] = bias;
    for (t, w) in wt.chunks_exact(k).enumerate().take(T) {
        let w = &w[k0..k0 + CHANNEL_VECTORS * lanes];
        let (w0, w1, w2, w3) = (
            L::load(w),
            L::load(&w[lanes..]),
            L::load(&w[2 * lanes..]),
            L::load(&w[3 * lanes..]),
        );
        let (x0, x1) = (L::splat(x0(t)), L::splat(x1(t)));
        a0 = x0.mul_add(w0, a0);
        a1 = x0.mul_add(w1, a1);
        a2 = x0.mul_add(w2, a2);
        a3 = x0.mul_add(w3, a3);
        c0 = x1.mul_add(w0, c0);
        c1 = x1.mul_add(w1, c1);
        c2 = x1.mul_add(w2, c2);
        c3 = x1.mul_add(w3, c3);
    }
    [[a0, a1, a2, a3], [c0, c1, c2, c3]]
}

/// Output row `oh` of one image: `y_row` (OW × K) = relu?(bias + Σ taps x·wᵀ), with `wt`
/// the weights tap-major (T × K).
///
/// The channel blocks are the outer loop and the pixels the inner one, so that each
/// pixel's input values are broadcast inside the loop that uses them: with the pixels
/// outside, the compiler hoists the 2·T broadcasts out of the channel loop and spills
/// them to the stack.
#[inline(always)]
fn forward_row<L: Lanes, const T: usize, const RELU: bool>(
    g: &Geometry,
    image: &[f32],
    oh: usize,
    wt: &[f32],
    bias: &[f32],
    y_row: &mut [f32],
) {
    let k = bias.len();
    let lanes = L::LANES;
    let block = CHANNEL_VECTORS * lanes;
    let rows = row_offsets(g, oh);
    let offsets = tap_offsets::<T>(g);
    let mut k0 = 0;
    // Whole blocks of four vectors: no partial loads.
    while k0 + block <= k {
        let b = &bias[k0..k0 + block];
        let b = [
            L::load(b),
            L::load(&b[lanes..]),
            L::load(&b[2 * lanes..]),
            L::load(&b[3 * lanes..]),
        ];
        let mut ow = 0;
        while ow < g.w.output {
            // Two pixels at a time (the last one alone when the row is odd).
            let pair = (g.w.output - ow).min(2);
            let x0 = window::<T>(g, image, &rows, &offsets, ow);
            let x1 = window::<T>(g, image, &rows, &offsets, ow + pair - 1);
            let acc = match (x0, x1) {
                // Both windows inside the image (every pixel when there is no padding):
                // their values broadcast straight from it.
                (Window::Inside { origin: o0, .. }, Window::Inside { origin: o1, .. }) => {
                    pair_block::<L, T>(
                        |t| image[o0 + offsets[t]],
                        |t| image[o1 + offsets[t]],
                        (wt, k, k0),
                        b,
                    )
                }
                _ => pair_block::<L, T>(|t| x0.tap(t), |t| x1.tap(t), (wt, k, k0), b),
            };
            for (p, acc) in acc.iter().enumerate().take(pair) {
                let at = (ow + p) * k + k0;
                for (j, &v) in acc.iter().enumerate() {
                    store_output::<L, RELU>(v, y_row, at + j * lanes, lanes);
                }
            }
            ow += pair;
        }
        k0 += block;
    }
    // The remaining channels, vector by vector, the last one partial.
    while k0 < k {
        let n = lanes.min(k - k0);
        let b = load_n::<L>(bias, k0, n);
        for ow in 0..g.w.output {
            let x = window::<T>(g, image, &rows, &offsets, ow);
            let mut acc = b;
            for (t, w) in wt.chunks_exact(k).enumerate().take(T) {
                acc = L::splat(x.tap(t)).mul_add(load_n::<L>(w, k0, n), acc);
            }
            store_output::<L, RELU>(acc, y_row, ow * k + k0, n);
        }
        k0 += n;
    }
}

/// Every output row of the chunk `y_rows` (rows `first_row..`, each OW × K), with a
/// fused ReLU when `relu`. Inlined into the dispatcher's `target_feature` function, as
/// is everything it calls.
#[inline(always)]
fn forward_rows<L: Lanes>(
    plan: &Plan,
    x: &[f32],
    (wt, bias): (&[f32], &[f32]),
    relu: bool,
    first_row: usize,
    y_rows: &mut [f32],
) {
    with_const_bool!(
        relu,
        forward_rows_of::<L>(plan, x, (wt, bias), first_row, y_rows)
    )
}

#[inline(always)]
fn forward_rows_of<L: Lanes, const RELU: bool>(
    plan: &Plan,
    x: &[f32],
    (wt, bias): (&[f32], &[f32]),
    first_row: usize,
    y_rows: &mut [f32],
) {
    let g = &plan.geometry;
    let row_len = g.w.output * plan.desc.out_channels;
    for (i, y_row) in y_rows.chunks_exact_mut(row_len).enumerate() {
        let row = first_row + i;
        let (n, oh) = (row / g.h.output, row % g.h.output);
        let image = &x[n * plan.input_len..(n + 1) * plan.input_len];
        match g.taps() {
            1 => forward_row::<L, 1, RELU>(g, image, oh, wt, bias, y_row),
            4 => forward_row::<L, 4, RELU>(g, image, oh, wt, bias, y_row),
            9 => forward_row::<L, 9, RELU>(g, image, oh, wt, bias, y_row),
            16 => forward_row::<L, 16, RELU>(g, image, oh, wt, bias, y_row),
            _ => forward_row::<L, 25, RELU>(g, image, oh, wt, bias, y_row),
        }
    }
}

lanes_dispatch! {
    /// [`forward_rows`] on the lanes of `isa`.
    fn forward_rows_on(
        plan: &Plan,
        x: &[f32],
        weights: (&[f32], &[f32]),
        relu: bool,
        first_row: usize,
        y_rows: &mut [f32],
    ) => forward_rows
}

/// Output rows per work item: about 16 K outputs, independent of the thread count.
fn rows_per_item(plan: &Plan) -> usize {
    let row_len = plan.geometry.w.output * plan.desc.out_channels;
    (16 * 1024 / row_len.max(1)).max(1)
}

/// y = act(conv(x, w) + bias) for a plan that [`applies`]; shapes checked by the caller.
#[allow(clippy::too_many_arguments)]
pub(super) fn forward(
    isa: Isa,
    plan: &Plan,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    activation: Activation,
    y: &mut [f32],
    par: Parallelism,
) {
    let (k, taps) = (plan.desc.out_channels, plan.geometry.taps());
    with_f32s(taps * k + k, 0.0, |buffer| {
        let (wt, b) = buffer.split_at_mut(taps * k);
        // OIHW with one input channel is K × taps; the kernel wants taps × K.
        for (kk, row) in w.chunks_exact(taps).enumerate() {
            for (t, &v) in row.iter().enumerate() {
                wt[t * k + kk] = v;
            }
        }
        if let Some(bias) = bias {
            b.copy_from_slice(bias);
        }
        let (wt, b) = (&*wt, &*b);
        let row_len = plan.geometry.w.output * k;
        let rows = rows_per_item(plan);
        for_each_chunk_mut(par, y, rows * row_len, |item, y_rows| {
            let relu = activation == Activation::Relu;
            forward_rows_on(isa, plan, x, (wt, b), relu, item * rows, y_rows);
            if !matches!(activation, Activation::Identity | Activation::Relu) {
                activate_slice_on(isa, activation, y_rows).expect("a validated activation");
            }
        });
    });
}

/// dW and db sums of every output channel over the images of `x` (a part of the batch),
/// image by image: each image's inputs are gathered once per pixel (`xs`, pixels × T),
/// then every vector of channels sums tap × dy products over the pixels in
/// f32 and adds them in f64 to `sums`: the dW sums (tap-major, `T × K`), then the
/// bias sums (`K`).
#[inline(always)]
fn weights_part<L: Lanes, const T: usize>(
    plan: &Plan,
    x: &[f32],
    grad: OutputGradient<'_>,
    xs: &mut [f32],
    sums: &mut [f64],
) {
    let g = &plan.geometry;
    let k = plan.desc.out_channels;
    let (totals, bias_totals) = sums.split_at_mut(T * k);
    let pixels = g.output_pixels();
    let mut lanes = [0.0f32; 8];
    for n in 0..x.len() / plan.input_len {
        let image = &x[n * plan.input_len..(n + 1) * plan.input_len];
        let image_out = n * plan.output_len..(n + 1) * plan.output_len;
        let dy_image = &grad.dy[image_out.clone()];
        let relu_image = grad.relu_output.map(|y| &y[image_out]);
        let offsets = tap_offsets::<T>(g);
        for oh in 0..g.h.output {
            let rows = row_offsets(g, oh);
            for ow in 0..g.w.output {
                let p = oh * g.w.output + ow;
                // Written in place: a window built on the stack and copied would be
                // stored as single floats and reloaded as a vector, which stalls.
                let source = window::<T>(g, image, &rows, &offsets, ow);
                for (t, x) in xs[p * T..(p + 1) * T].iter_mut().enumerate() {
                    *x = source.tap(t);
                }
            }
        }
        let mut c = 0;
        while c < k {
            let n_lanes = L::LANES.min(k - c);
            let xs = &xs[..pixels * T];
            let at = (c, k, n_lanes);
            let (acc, bias_acc) = match relu_image {
                Some(y) => pixel_sums::<L, T, true>(xs, dy_image, y, at),
                None => pixel_sums::<L, T, false>(xs, dy_image, &[], at),
            };
            for (t, a) in acc.iter().enumerate() {
                a.store(&mut lanes[..L::LANES]);
                for (j, &v) in lanes[..n_lanes].iter().enumerate() {
                    totals[t * k + c + j] += f64::from(v);
                }
            }
            bias_acc.store(&mut lanes[..L::LANES]);
            for (j, &v) in lanes[..n_lanes].iter().enumerate() {
                bias_totals[c + j] += f64::from(v);
            }
            c += n_lanes;
        }
    }
}

/// (Σ_p xs[p, t]·g[p] for each tap t, Σ_p g[p]) over the pixels p of one image, for the
/// vector of `lanes` channels from `first` (pixels `k` channels apart in `dy`); g is dy,
/// or with `MASK` dy where `y` > 0. A loop of its own per `MASK`, so that the T
/// accumulators stay in registers.
#[inline(always)]
fn pixel_sums<L: Lanes, const T: usize, const MASK: bool>(
    xs: &[f32],
    dy: &[f32],
    y: &[f32],
    (first, k, lanes): (usize, usize, usize),
) -> ([L; T], L) {
    let zero = L::splat(0.0);
    let mut acc = [zero; T];
    let mut bias_acc = zero;
    for (p, xs) in xs.chunks_exact(T).enumerate() {
        let mut d: L = load_n(dy, p * k + first, lanes);
        if MASK {
            let y: L = load_n(y, p * k + first, lanes);
            d = L::select(y.gt(zero), d, zero);
        }
        for t in 0..T {
            acc[t] = L::splat(xs[t]).mul_add(d, acc[t]);
        }
        bias_acc = bias_acc + d;
    }
    (acc, bias_acc)
}

/// [`weights_part`] for the plan's number of taps: `sums` holds the dW sums (taps × K)
/// followed by the bias sums (K).
#[inline(always)]
fn weights_part_any<L: Lanes>(
    plan: &Plan,
    x: &[f32],
    grad: OutputGradient<'_>,
    xs: &mut [f32],
    sums: &mut [f64],
) {
    match plan.geometry.taps() {
        1 => weights_part::<L, 1>(plan, x, grad, xs, sums),
        4 => weights_part::<L, 4>(plan, x, grad, xs, sums),
        9 => weights_part::<L, 9>(plan, x, grad, xs, sums),
        16 => weights_part::<L, 16>(plan, x, grad, xs, sums),
        _ => weights_part::<L, 25>(plan, x, grad, xs, sums),
    }
}

lanes_dispatch! {
    /// [`weights_part_any`] on the lanes of `isa`.
    fn weights_part_on(
        plan: &Plan,
        x: &[f32],
        grad: OutputGradient<'_>,
        xs: &mut [f32],
        sums: &mut [f64],
    ) => weights_part_any
}

/// Images whose sums one work item adds up. Parts are cut from the batch alone, and
/// their sums are added in part order, so results do not depend on the thread count;
/// each image's gradient is read once, by the thread that owns its part.
const IMAGES_PER_PART: usize = 8;

/// dW (OIHW) and, when asked, db for a plan that [`applies`]; shapes checked by the
/// caller. Threads take parts of the batch ([`IMAGES_PER_PART`] images each), every
/// part sums all the channels in f64, then the parts are added in order.
pub(super) fn backward_weights(
    isa: Isa,
    plan: &Plan,
    x: &[f32],
    grad: OutputGradient<'_>,
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    par: Parallelism,
) {
    let taps = plan.geometry.taps();
    let k = plan.desc.out_channels;
    // Per part: the dW sums (tap-major, taps × k), then the bias sums (k).
    let part_len = taps * k + k;
    let parts = plan.desc.batch.div_ceil(IMAGES_PER_PART).max(1);
    with_f64s(parts * part_len, 0.0, |sums| {
        for_each_chunk_mut(par, sums, part_len, |part, sums| {
            let first = part * IMAGES_PER_PART;
            let images = first..(first + IMAGES_PER_PART).min(plan.desc.batch);
            let x = &x[images.start * plan.input_len..images.end * plan.input_len];
            let outputs = images.start * plan.output_len..images.end * plan.output_len;
            let grad = OutputGradient {
                dy: &grad.dy[outputs.clone()],
                relu_output: grad.relu_output.map(|y| &y[outputs]),
            };
            with_f32s(plan.geometry.output_pixels() * taps, 0.0, |xs| {
                weights_part_on(isa, plan, x, grad, xs, sums);
            });
        });
        let (totals, later) = sums.split_at_mut(part_len);
        for part in later.chunks_exact(part_len) {
            for (total, &value) in totals.iter_mut().zip(part) {
                *total += value;
            }
        }
        let (totals, bias_totals) = totals.split_at(taps * k);
        // OIHW: output channel j, tap t is dw[j * taps + t].
        for (j, row) in dw.chunks_exact_mut(taps).enumerate() {
            for (t, v) in row.iter_mut().enumerate() {
                *v = totals[t * k + j] as f32;
            }
        }
        if let Some(db) = db {
            for (d, &s) in db.iter_mut().zip(bias_totals.iter()) {
                *d = s as f32;
            }
        }
    });
}
