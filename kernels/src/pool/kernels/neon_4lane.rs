//! 4-lane path on `wide::f32x4`: NEON on aarch64, SSE on x86_64 (where it is tested).
//!
//! NCHW: a block computes 4 adjacent outputs of a row, each window position read as 4
//! inputs `stride` apart. NHWC: a block computes 4 adjacent channels of one output
//! pixel. Window edges and channel tails go to the scalar path. Every sum runs in the
//! scalar path's order, so the two agree bit for bit (except [`plane_sum`], which keeps
//! four partial sums).
//!

use super::super::geometry::{block_starts, Axis, Geometry};
use super::{for_each_window_row, scalar, Kernels};
use wide::{f32x4, u32x4};

pub(crate) const KERNELS: Kernels = Kernels {
    max_fwd_nchw,
    max_fwd_nhwc,
    avg_fwd_nchw,
    avg_fwd_nhwc,
    max_bwd_nchw,
    max_bwd_nhwc,
    avg_bwd_nchw,
    avg_bwd_nhwc,
    plane_sum,
    pixel_sums,
};

const LANES: usize = 4;

/// Inputs an NCHW block reads along a row, from its first window's first column.
fn extent(cols: Axis) -> usize {
    (LANES - 1) * cols.stride + cols.kernel
}

/// Whether every output of an NCHW plane owns two adjacent inputs of a row that no other
/// output shares: windows 2 wide at stride 2 without column padding, rows disjoint. Its
/// gradients are then one dy per input, written as interleaved pairs.
pub(crate) fn pairs(g: &Geometry) -> bool {
    g.cols.kernel == 2 && g.cols.stride == 2 && g.cols.padding == 0 && g.rows.disjoint()
}

#[inline(always)]
fn load(s: &[f32]) -> f32x4 {
    let s = &s[..LANES];
    f32x4::new([s[0], s[1], s[2], s[3]])
}

#[inline(always)]
fn load_u32(s: &[u32]) -> u32x4 {
    let s = &s[..LANES];
    u32x4::new([s[0], s[1], s[2], s[3]])
}

#[inline(always)]
fn store(dst: &mut [f32], v: f32x4) {
    dst[..LANES].copy_from_slice(&v.to_array());
}

#[inline(always)]
fn store_u32(dst: &mut [u32], v: u32x4) {
    dst[..LANES].copy_from_slice(&v.to_array());
}

/// `[row[0], row[s], row[2s], row[3s]]`.
#[inline(always)]
fn strided(row: &[f32], stride: usize) -> f32x4 {
    match stride {
        1 => load(row),
        2 => {
            let r = &row[..7];
            f32x4::new([r[0], r[2], r[4], r[6]])
        }
        s => {
            let r = &row[..3 * s + 1];
            f32x4::new([r[0], r[s], r[2 * s], r[3 * s]])
        }
    }
}

/// Plane-index offsets of the 4 lanes of an NCHW block: `[0, s, 2s, 3s]`. Fits u32
/// whenever a block fits in a row, whose indices fit u32.
fn lane_columns(stride: usize) -> u32x4 {
    let s = stride as u32;
    u32x4::new([0, s, 2 * s, 3 * s])
}

/// PyTorch's running-max step: `v` replaces the best where it is greater or NaN.
#[inline(always)]
fn take_max(best: &mut f32x4, at: &mut u32x4, v: f32x4, v_at: u32x4) {
    let take = v.simd_gt(*best) | v.is_nan();
    *best = take.select(v, *best);
    *at = take.select(v_at, *at);
}

fn max_fwd_nchw(g: &Geometry, x: &[f32], y: &mut [f32], am: &mut [u32]) {
    let ow_n = g.cols.output;
    let blocks = g.cols.blocks(LANES, extent(g.cols));
    let rows = y.chunks_exact_mut(ow_n).zip(am.chunks_exact_mut(ow_n));
    for (oh, (y_row, am_row)) in rows.enumerate() {
        max_fwd_nchw_row(g, x, oh, blocks, y_row, am_row);
    }
}

/// Output row `oh` of an NCHW plane; `blocks` is `g.cols.blocks(LANES, extent(g.cols))`.
fn max_fwd_nchw_row(
    g: &Geometry,
    x: &[f32],
    oh: usize,
    blocks: Option<(usize, usize)>,
    y_row: &mut [f32],
    am_row: &mut [u32],
) {
    let ow_n = g.cols.output;
    let Some((first, last)) = blocks else {
        scalar::max_fwd_pixels(g, x, oh, 0..ow_n, 0..1, y_row, am_row);
        return;
    };
    let (w, s) = (g.cols.input, g.cols.stride);
    let lanes = lane_columns(s);
    let rows = g.rows.real(oh);
    scalar::max_fwd_pixels(g, x, oh, 0..first, 0..1, y_row, am_row);
    for start in block_starts(first, last, LANES) {
        let c0 = start * s - g.cols.padding;
        let mut best = f32x4::splat(f32::NEG_INFINITY);
        let mut at = u32x4::splat((rows.start * w + c0) as u32) + lanes;
        for ih in rows.clone() {
            let row = &x[ih * w + c0..(ih + 1) * w];
            for kw in 0..g.cols.kernel {
                let v_at = u32x4::splat((ih * w + c0 + kw) as u32) + lanes;
                take_max(&mut best, &mut at, strided(&row[kw..], s), v_at);
            }
        }
        store(&mut y_row[start..], best);
        store_u32(&mut am_row[start..], at);
    }
    scalar::max_fwd_pixels(g, x, oh, last + LANES..ow_n, 0..1, y_row, am_row);
}

fn avg_fwd_nchw(g: &Geometry, count_include_pad: bool, x: &[f32], y: &mut [f32]) {
    let ow_n = g.cols.output;
    let blocks = g.cols.blocks(LANES, extent(g.cols));
    for (oh, y_row) in y.chunks_exact_mut(ow_n).enumerate() {
        avg_fwd_nchw_row(g, count_include_pad, x, oh, blocks, y_row);
    }
}

/// Output row `oh` of an NCHW plane; `blocks` as in [`max_fwd_nchw_row`].
fn avg_fwd_nchw_row(
    g: &Geometry,
    count_include_pad: bool,
    x: &[f32],
    oh: usize,
    blocks: Option<(usize, usize)>,
    y_row: &mut [f32],
) {
    let ow_n = g.cols.output;
    let Some((first, last)) = blocks else {
        scalar::avg_fwd_pixels(g, count_include_pad, x, oh, 0..ow_n, 0..1, y_row);
        return;
    };
    let (w, s) = (g.cols.input, g.cols.stride);
    let divisor = f32x4::splat(g.interior_divisor(oh, count_include_pad));
    scalar::avg_fwd_pixels(g, count_include_pad, x, oh, 0..first, 0..1, y_row);
    for start in block_starts(first, last, LANES) {
        let c0 = start * s - g.cols.padding;
        let mut sum = f32x4::ZERO;
        for ih in g.rows.real(oh) {
            let row = &x[ih * w + c0..(ih + 1) * w];
            for kw in 0..g.cols.kernel {
                sum += strided(&row[kw..], s);
            }
        }
        store(&mut y_row[start..], sum / divisor);
    }
    let tail = last + LANES..ow_n;
    scalar::avg_fwd_pixels(g, count_include_pad, x, oh, tail, 0..1, y_row);
}

fn max_fwd_nhwc(g: &Geometry, x: &[f32], oh: usize, y_row: &mut [f32], am_row: &mut [u32]) {
    let (w, ch) = (g.cols.input, g.channels);
    let vec_end = ch - ch % LANES;
    let rows = g.rows.real(oh);
    for ow in 0..g.cols.output {
        let cols = g.cols.real(ow);
        let first = (rows.start * w + cols.start) as u32;
        for c in (0..vec_end).step_by(LANES) {
            let mut best = f32x4::splat(f32::NEG_INFINITY);
            let mut at = u32x4::splat(first);
            for ih in rows.clone() {
                for iw in cols.clone() {
                    let p = ih * w + iw;
                    let v_at = u32x4::splat(p as u32);
                    take_max(&mut best, &mut at, load(&x[p * ch + c..]), v_at);
                }
            }
            store(&mut y_row[ow * ch + c..], best);
            store_u32(&mut am_row[ow * ch + c..], at);
        }
        scalar::max_fwd_pixels(g, x, oh, ow..ow + 1, vec_end..ch, y_row, am_row);
    }
}

fn avg_fwd_nhwc(g: &Geometry, count_include_pad: bool, x: &[f32], oh: usize, y_row: &mut [f32]) {
    let (w, ch) = (g.cols.input, g.channels);
    let vec_end = ch - ch % LANES;
    let rows = g.rows.real(oh);
    for ow in 0..g.cols.output {
        let cols = g.cols.real(ow);
        let divisor = f32x4::splat(g.divisor(oh, ow, count_include_pad));
        for c in (0..vec_end).step_by(LANES) {
            let mut sum = f32x4::ZERO;
            for ih in rows.clone() {
                for iw in cols.clone() {
                    sum += load(&x[(ih * w + iw) * ch + c..]);
                }
            }
            store(&mut y_row[ow * ch + c..], sum / divisor);
        }
        let tail = vec_end..ch;
        scalar::avg_fwd_pixels(g, count_include_pad, x, oh, ow..ow + 1, tail, y_row);
    }
}

fn max_bwd_nchw(g: &Geometry, dy: &[f32], am: &[u32], dx: &mut [f32]) -> usize {
    if !pairs(g) {
        return scalar::max_bwd_nchw(g, dy, am, dx);
    }
    let mut matches = 0;
    let w = g.cols.input;
    for_each_window_row(g, dx, |oh, rows, dx| {
        for ih in rows {
            matches += max_bwd_pairs_row(g, dy, am, oh, ih, &mut dx[ih * w..(ih + 1) * w]);
        }
    });
    matches
}

/// Input row `ih`, in window row `oh`, of an NCHW plane whose windows are [`pairs`];
/// returns the matches.
fn max_bwd_pairs_row(
    g: &Geometry,
    dy: &[f32],
    am: &[u32],
    oh: usize,
    ih: usize,
    dx_row: &mut [f32],
) -> usize {
    let (w, ow_n) = (g.cols.input, g.cols.output);
    if ow_n < LANES {
        return scalar::max_bwd_pixels(g, dy, am, ih, 0..w, 0..1, dx_row);
    }
    let (dy_row, am_row) = (&dy[oh * ow_n..][..ow_n], &am[oh * ow_n..][..ow_n]);
    let lane_cols = u32x4::new([0, 2, 4, 6]);
    let mut matches = 0;
    // Outputs already counted: the last block may overlap the one before.
    let mut done = 0usize;
    for start in block_starts(0, ow_n - LANES, LANES) {
        let even = u32x4::splat((ih * w + 2 * start) as u32) + lane_cols;
        let odd = even + u32x4::splat(1);
        let (a, d) = (load_u32(&am_row[start..]), load(&dy_row[start..]));
        let (hit_even, hit_odd) = (a.simd_eq(even), a.simd_eq(odd));
        // 0 + dy turns a -0.0 gradient into +0.0, as the scalar path's sum does.
        let e = f32x4::ZERO + hit_even.select(d, f32x4::ZERO);
        let o = f32x4::ZERO + hit_odd.select(d, f32x4::ZERO);
        let fresh = (0xFu32 << done.saturating_sub(start)) & 0xF;
        matches += ((hit_even.to_bitmask() | hit_odd.to_bitmask()) & fresh).count_ones() as usize;
        store(&mut dx_row[2 * start..], e.unpack_lo(o));
        store(&mut dx_row[2 * start + LANES..], e.unpack_hi(o));
        done = start + LANES;
    }
    matches + scalar::max_bwd_pixels(g, dy, am, ih, 2 * ow_n..w, 0..1, dx_row)
}

fn avg_bwd_nchw(g: &Geometry, count_include_pad: bool, dy: &[f32], dx: &mut [f32]) {
    if !pairs(g) {
        return scalar::avg_bwd_nchw(g, count_include_pad, dy, dx);
    }
    let w = g.cols.input;
    for_each_window_row(g, dx, |oh, rows, dx| {
        for ih in rows {
            let dx_row = &mut dx[ih * w..(ih + 1) * w];
            avg_bwd_pairs_row(g, count_include_pad, dy, oh, ih, dx_row);
        }
    });
}

/// Input row `ih`, in window row `oh`, of an NCHW plane whose windows are [`pairs`].
fn avg_bwd_pairs_row(
    g: &Geometry,
    count_include_pad: bool,
    dy: &[f32],
    oh: usize,
    ih: usize,
    dx_row: &mut [f32],
) {
    let (w, ow_n) = (g.cols.input, g.cols.output);
    if ow_n < LANES {
        return scalar::avg_bwd_pixels(g, count_include_pad, dy, ih, 0..w, 0..1, dx_row);
    }
    let dy_row = &dy[oh * ow_n..][..ow_n];
    let divisor = f32x4::splat(g.interior_divisor(oh, count_include_pad));
    for start in block_starts(0, ow_n - LANES, LANES) {
        // 0 + share, as the scalar path's sum.
        let share = f32x4::ZERO + load(&dy_row[start..]) / divisor;
        store(&mut dx_row[2 * start..], share.unpack_lo(share));
        store(&mut dx_row[2 * start + LANES..], share.unpack_hi(share));
    }
    let tail = 2 * ow_n..w;
    scalar::avg_bwd_pixels(g, count_include_pad, dy, ih, tail, 0..1, dx_row);
}

fn max_bwd_nhwc(g: &Geometry, dy: &[f32], am: &[u32], ih: usize, dx_row: &mut [f32]) -> usize {
    let (w, ow_n, ch) = (g.cols.input, g.cols.output, g.channels);
    let vec_end = ch - ch % LANES;
    let ohs = g.rows.windows_of(ih);
    let mut matches = 0;
    for iw in 0..w {
        let here = u32x4::splat((ih * w + iw) as u32);
        let dx = &mut dx_row[iw * ch..][..vec_end];
        dx.fill(0.0);
        // Windows in output order, each adding to every channel block: the scalar
        // path's order. Adding +0.0 where a window picked another input leaves the sum
        // as the scalar path's conditional add does.
        for oh in ohs.clone() {
            for ow in g.cols.windows_of(iw) {
                let o = (oh * ow_n + ow) * ch;
                for c in (0..vec_end).step_by(LANES) {
                    let hit = load_u32(&am[o + c..]).simd_eq(here);
                    let sum = load(&dx[c..]) + hit.select(load(&dy[o + c..]), f32x4::ZERO);
                    store(&mut dx[c..], sum);
                    matches += hit.to_bitmask().count_ones() as usize;
                }
            }
        }
        matches += scalar::max_bwd_pixels(g, dy, am, ih, iw..iw + 1, vec_end..ch, dx_row);
    }
    matches
}

fn avg_bwd_nhwc(g: &Geometry, count_include_pad: bool, dy: &[f32], ih: usize, dx_row: &mut [f32]) {
    let (w, ow_n, ch) = (g.cols.input, g.cols.output, g.channels);
    let vec_end = ch - ch % LANES;
    let ohs = g.rows.windows_of(ih);
    for iw in 0..w {
        let dx = &mut dx_row[iw * ch..][..vec_end];
        dx.fill(0.0);
        for oh in ohs.clone() {
            for ow in g.cols.windows_of(iw) {
                let divisor = f32x4::splat(g.divisor(oh, ow, count_include_pad));
                let o = (oh * ow_n + ow) * ch;
                for c in (0..vec_end).step_by(LANES) {
                    let sum = load(&dx[c..]) + load(&dy[o + c..]) / divisor;
                    store(&mut dx[c..], sum);
                }
            }
        }
        let tail = vec_end..ch;
        scalar::avg_bwd_pixels(g, count_include_pad, dy, ih, iw..iw + 1, tail, dx_row);
    }
}

fn plane_sum(x: &[f32]) -> f32 {
    let mut acc = [f32x4::ZERO; 4];
    let mut blocks = x.chunks_exact(4 * LANES);
    for block in &mut blocks {
        for (a, part) in acc.iter_mut().zip(block.chunks_exact(LANES)) {
            *a += load(part);
        }
    }
    let mut quads = blocks.remainder().chunks_exact(LANES);
    for part in &mut quads {
        acc[0] += load(part);
    }
    let total = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    total.reduce_add() + quads.remainder().iter().sum::<f32>()
}

fn pixel_sums(channels: usize, x: &[f32], y: &mut [f32]) {
    let vec_end = channels - channels % LANES;
    for c in (0..vec_end).step_by(LANES) {
        let mut acc = f32x4::ZERO;
        for pixel in x.chunks_exact(channels) {
            acc += load(&pixel[c..]);
        }
        store(&mut y[c..], acc);
    }
    for (c, s) in y.iter_mut().enumerate().skip(vec_end) {
        *s = x
            .chunks_exact(channels)
            .fold(0.0, |sum, pixel| sum + pixel[c]);
    }
}
