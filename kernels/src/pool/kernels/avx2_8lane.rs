//! AVX2 path: 8-lane blocks, `core::arch` intrinsics.
//!
//! NCHW: a block computes 8 adjacent outputs of a row. At stride 2 (the common 2 × 2
//! pooling) each pair of window columns costs two loads and two in-lane shuffles that
//! split even and odd inputs; the lanes come out with their 64-bit pairs swapped, which
//! one permute undoes per block. NHWC: a block computes 8 adjacent channels of a pixel.
//! Window edges and channel tails go to the scalar path, rows too narrow for 8 lanes to
//! the 4-lane path. Every sum runs in the scalar path's order, so results agree bit for
//! bit with it (except [`plane_sum`], which keeps 32 partial sums).
//!
//! The table's entries check for AVX2 and FMA, then call `#[target_feature]` kernels;
//! `unsafe` is only that call and the loads and stores of bounds-checked slices.

use super::super::geometry::{block_starts, Axis, Geometry};
use super::{neon_4lane, scalar, Kernels};
use crate::arch::Isa;
use std::arch::x86_64::*;

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

const LANES: usize = 8;

/// A safe table entry that checks the CPU, then runs a `#[target_feature]` kernel.
macro_rules! entry {
    ($name:ident => $kernel:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)?) => {
        fn $name($($arg: $ty),*) $(-> $ret)? {
            assert!(
                Isa::Avx2.is_available(),
                "the AVX2 pooling kernels need AVX2 and FMA"
            );
            // SAFETY: the CPU runs AVX2 and FMA (checked above), all that the kernel
            // needs beyond its safe signature.
            unsafe { $kernel($($arg),*) }
        }
    };
}

entry!(max_fwd_nchw => max_fwd_nchw_avx2(g: &Geometry, x: &[f32], y: &mut [f32], am: &mut [u32]));
entry!(max_fwd_nhwc => max_fwd_nhwc_avx2(
    g: &Geometry, x: &[f32], oh: usize, y: &mut [f32], am: &mut [u32]
));
entry!(avg_fwd_nchw => avg_fwd_nchw_avx2(
    g: &Geometry, count_include_pad: bool, x: &[f32], y: &mut [f32]
));
entry!(avg_fwd_nhwc => avg_fwd_nhwc_avx2(
    g: &Geometry, count_include_pad: bool, x: &[f32], oh: usize, y: &mut [f32]
));
entry!(max_bwd_nchw => max_bwd_nchw_avx2(
    g: &Geometry, dy: &[f32], am: &[u32], dx: &mut [f32]
) -> usize);
entry!(max_bwd_nhwc => max_bwd_nhwc_avx2(
    g: &Geometry, dy: &[f32], am: &[u32], ih: usize, dx: &mut [f32]
) -> usize);
entry!(avg_bwd_nchw => avg_bwd_nchw_avx2(
    g: &Geometry, count_include_pad: bool, dy: &[f32], dx: &mut [f32]
));
entry!(avg_bwd_nhwc => avg_bwd_nhwc_avx2(
    g: &Geometry, count_include_pad: bool, dy: &[f32], ih: usize, dx: &mut [f32]
));
entry!(plane_sum => plane_sum_avx2(x: &[f32]) -> f32);
entry!(pixel_sums => pixel_sums_avx2(channels: usize, x: &[f32], y: &mut [f32]));

/// Inputs an NCHW block reads along a row, from its first window's first column.
fn extent(cols: Axis) -> usize {
    let reach = (LANES - 1) * cols.stride + cols.kernel;
    // Stride 2 loads 16 inputs per pair of window columns: an odd-width window's last
    // "pair" reads one input past the window.
    if cols.stride == 2 && cols.kernel % 2 == 1 {
        reach + 1
    } else {
        reach
    }
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn load(s: &[f32]) -> __m256 {
    let s = &s[..LANES];
    // SAFETY: `s` holds 8 floats.
    unsafe { _mm256_loadu_ps(s.as_ptr()) }
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn load_u32(s: &[u32]) -> __m256i {
    let s = &s[..LANES];
    // SAFETY: `s` holds 8 u32, 32 bytes.
    unsafe { _mm256_loadu_si256(s.as_ptr().cast()) }
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn store(dst: &mut [f32], v: __m256) {
    let dst = &mut dst[..LANES];
    // SAFETY: `dst` holds 8 floats.
    unsafe { _mm256_storeu_ps(dst.as_mut_ptr(), v) }
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn store_u32(dst: &mut [u32], v: __m256i) {
    let dst = &mut dst[..LANES];
    // SAFETY: `dst` holds 8 u32, 32 bytes.
    unsafe { _mm256_storeu_si256(dst.as_mut_ptr().cast(), v) }
}

/// A plane index (which the public API checks fits u32) broadcast to 8 lanes.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn splat_index(i: usize) -> __m256i {
    _mm256_set1_epi32(i as u32 as i32)
}

/// PyTorch's running-max step: `v` replaces the best where it is greater or NaN.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn take_max(best: &mut __m256, at: &mut __m256i, v: __m256, v_at: __m256i) {
    let take = _mm256_or_ps(
        _mm256_cmp_ps::<_CMP_GT_OQ>(v, *best),
        _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v),
    );
    *best = _mm256_blendv_ps(*best, v, take);
    let at_bits = _mm256_blendv_ps(_mm256_castsi256_ps(*at), _mm256_castsi256_ps(v_at), take);
    *at = _mm256_castps_si256(at_bits);
}

/// How a block's lanes map to its outputs.
#[derive(Clone, Copy, PartialEq)]
enum LaneOrder {
    /// Lane j is output j.
    Natural,
    /// The 64-bit lane pairs come as outputs 0-1, 4-5, 2-3, 6-7 (stride-2 shuffles).
    PairsSwapped,
}

impl LaneOrder {
    fn of(stride: usize) -> LaneOrder {
        if stride == 2 {
            LaneOrder::PairsSwapped
        } else {
            LaneOrder::Natural
        }
    }
}

/// Column offsets of a block's lanes, in its lane order, from its first input column.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn lane_columns(stride: usize) -> __m256i {
    match stride {
        2 => _mm256_setr_epi32(0, 2, 8, 10, 4, 6, 12, 14),
        // Fits i32: 7·stride < the row width whenever a block fits in a row, and a row
        // of an indexable plane is shorter than 2³².
        s => _mm256_mullo_epi32(
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
            _mm256_set1_epi32(s as u32 as i32),
        ),
    }
}

/// Puts a block's lanes in output order.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn unshuffle(v: __m256i, order: LaneOrder) -> __m256i {
    match order {
        LaneOrder::Natural => v,
        LaneOrder::PairsSwapped => _mm256_permute4x64_epi64::<0b11_01_10_00>(v),
    }
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn unshuffle_ps(v: __m256, order: LaneOrder) -> __m256 {
    _mm256_castsi256_ps(unshuffle(_mm256_castps_si256(v), order))
}

/// Calls `visit(inputs, indices)` for each position of the windows of the NCHW block of
/// output row `oh` starting at output `start`, in scan order (window rows, then columns),
/// lanes in `LaneOrder::of(stride)`. The block lies in `g.cols.blocks(LANES, extent)`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn scan_nchw_block(
    g: &Geometry,
    x: &[f32],
    oh: usize,
    start: usize,
    mut visit: impl FnMut(__m256, __m256i),
) {
    let (w, s, k) = (g.cols.input, g.cols.stride, g.cols.kernel);
    let c0 = start * s - g.cols.padding;
    let cols = lane_columns(s);
    for ih in g.rows.real(oh) {
        let row = &x[ih * w + c0..(ih + 1) * w];
        let base = ih * w + c0;
        match s {
            1 => {
                for kw in 0..k {
                    visit(
                        load(&row[kw..]),
                        _mm256_add_epi32(cols, splat_index(base + kw)),
                    );
                }
            }
            2 => {
                for kw in (0..k).step_by(2) {
                    let pair = &row[kw..kw + 2 * LANES];
                    let (lo, hi) = (load(pair), load(&pair[LANES..]));
                    let at = _mm256_add_epi32(cols, splat_index(base + kw));
                    visit(_mm256_shuffle_ps::<0b10_00_10_00>(lo, hi), at);
                    if kw + 1 < k {
                        let odd_at = _mm256_add_epi32(at, _mm256_set1_epi32(1));
                        visit(_mm256_shuffle_ps::<0b11_01_11_01>(lo, hi), odd_at);
                    }
                }
            }
            _ => {
                for kw in 0..k {
                    let r = &row[kw..kw + 7 * s + 1];
                    let v = _mm256_setr_ps(
                        r[0],
                        r[s],
                        r[2 * s],
                        r[3 * s],
                        r[4 * s],
                        r[5 * s],
                        r[6 * s],
                        r[7 * s],
                    );
                    visit(v, _mm256_add_epi32(cols, splat_index(base + kw)));
                }
            }
        }
    }
}

#[target_feature(enable = "avx2,fma")]
fn max_fwd_nchw_avx2(g: &Geometry, x: &[f32], y: &mut [f32], am: &mut [u32]) {
    let (w, ow_n) = (g.cols.input, g.cols.output);
    let blocks = g.cols.blocks(LANES, extent(g.cols));
    let narrow = g.cols.blocks(neon_4lane::LANES, neon_4lane::extent(g.cols));
    let order = LaneOrder::of(g.cols.stride);
    let rows = y.chunks_exact_mut(ow_n).zip(am.chunks_exact_mut(ow_n));
    for (oh, (y_row, am_row)) in rows.enumerate() {
        let Some((first, last)) = blocks else {
            neon_4lane::max_fwd_nchw_row(g, x, oh, narrow, y_row, am_row);
            continue;
        };
        let first_row = g.rows.real(oh).start;
        scalar::max_fwd_pixels(g, x, oh, 0..first, 0..1, y_row, am_row);
        for start in block_starts(first, last, LANES) {
            let c0 = start * g.cols.stride - g.cols.padding;
            let mut best = _mm256_set1_ps(f32::NEG_INFINITY);
            // Each lane's first window position, where a window of -inf points.
            let cols = lane_columns(g.cols.stride);
            let mut at = _mm256_add_epi32(cols, splat_index(first_row * w + c0));
            scan_nchw_block(g, x, oh, start, |v, v_at| {
                take_max(&mut best, &mut at, v, v_at)
            });
            store(&mut y_row[start..], unshuffle_ps(best, order));
            store_u32(&mut am_row[start..], unshuffle(at, order));
        }
        scalar::max_fwd_pixels(g, x, oh, last + LANES..ow_n, 0..1, y_row, am_row);
    }
}

#[target_feature(enable = "avx2,fma")]
fn avg_fwd_nchw_avx2(g: &Geometry, count_include_pad: bool, x: &[f32], y: &mut [f32]) {
    let ow_n = g.cols.output;
    let blocks = g.cols.blocks(LANES, extent(g.cols));
    let narrow = g.cols.blocks(neon_4lane::LANES, neon_4lane::extent(g.cols));
    let order = LaneOrder::of(g.cols.stride);
    for (oh, y_row) in y.chunks_exact_mut(ow_n).enumerate() {
        let Some((first, last)) = blocks else {
            neon_4lane::avg_fwd_nchw_row(g, count_include_pad, x, oh, narrow, y_row);
            continue;
        };
        let divisor = _mm256_set1_ps(g.interior_divisor(oh, count_include_pad));
        scalar::avg_fwd_pixels(g, count_include_pad, x, oh, 0..first, 0..1, y_row);
        for start in block_starts(first, last, LANES) {
            let mut sum = _mm256_setzero_ps();
            scan_nchw_block(g, x, oh, start, |v, _| sum = _mm256_add_ps(sum, v));
            store(
                &mut y_row[start..],
                unshuffle_ps(_mm256_div_ps(sum, divisor), order),
            );
        }
        let tail = last + LANES..ow_n;
        scalar::avg_fwd_pixels(g, count_include_pad, x, oh, tail, 0..1, y_row);
    }
}

#[target_feature(enable = "avx2,fma")]
fn max_fwd_nhwc_avx2(g: &Geometry, x: &[f32], oh: usize, y_row: &mut [f32], am_row: &mut [u32]) {
    let (w, ch) = (g.cols.input, g.channels);
    let vec_end = ch - ch % LANES;
    let rows = g.rows.real(oh);
    for ow in 0..g.cols.output {
        let cols = g.cols.real(ow);
        let first = rows.start * w + cols.start;
        for c in (0..vec_end).step_by(LANES) {
            let mut best = _mm256_set1_ps(f32::NEG_INFINITY);
            let mut at = splat_index(first);
            for ih in rows.clone() {
                for iw in cols.clone() {
                    let p = ih * w + iw;
                    take_max(&mut best, &mut at, load(&x[p * ch + c..]), splat_index(p));
                }
            }
            store(&mut y_row[ow * ch + c..], best);
            store_u32(&mut am_row[ow * ch + c..], at);
        }
        scalar::max_fwd_pixels(g, x, oh, ow..ow + 1, vec_end..ch, y_row, am_row);
    }
}

#[target_feature(enable = "avx2,fma")]
fn avg_fwd_nhwc_avx2(
    g: &Geometry,
    count_include_pad: bool,
    x: &[f32],
    oh: usize,
    y_row: &mut [f32],
) {
    let (w, ch) = (g.cols.input, g.channels);
    let vec_end = ch - ch % LANES;
    let rows = g.rows.real(oh);
    for ow in 0..g.cols.output {
        let cols = g.cols.real(ow);
        let divisor = _mm256_set1_ps(g.divisor(oh, ow, count_include_pad));
        for c in (0..vec_end).step_by(LANES) {
            let mut sum = _mm256_setzero_ps();
            for ih in rows.clone() {
                for iw in cols.clone() {
                    sum = _mm256_add_ps(sum, load(&x[(ih * w + iw) * ch + c..]));
                }
            }
            store(&mut y_row[ow * ch + c..], _mm256_div_ps(sum, divisor));
        }
        let tail = vec_end..ch;
        scalar::avg_fwd_pixels(g, count_include_pad, x, oh, ow..ow + 1, tail, y_row);
    }
}

#[target_feature(enable = "avx2,fma")]
fn max_bwd_nchw_avx2(g: &Geometry, dy: &[f32], am: &[u32], dx: &mut [f32]) -> usize {
    if !neon_4lane::pairs(g) {
        return scalar::max_bwd_nchw(g, dy, am, dx);
    }
    let mut matches = 0;
    for (ih, dx_row) in dx.chunks_exact_mut(g.cols.input).enumerate() {
        matches += max_bwd_pairs_row(g, dy, am, ih, dx_row);
    }
    matches
}

/// Input row `ih` of an NCHW plane whose windows are `pairs`; returns the matches.
#[target_feature(enable = "avx2,fma")]
fn max_bwd_pairs_row(g: &Geometry, dy: &[f32], am: &[u32], ih: usize, dx_row: &mut [f32]) -> usize {
    let (w, ow_n) = (g.cols.input, g.cols.output);
    if ow_n < LANES {
        return neon_4lane::max_bwd_pairs_row(g, dy, am, ih, dx_row);
    }
    // Disjoint rows: at most one window covers the row.
    let Some(oh) = g.rows.windows_of(ih).next() else {
        dx_row.fill(0.0);
        return 0;
    };
    let (dy_row, am_row) = (&dy[oh * ow_n..][..ow_n], &am[oh * ow_n..][..ow_n]);
    let lane_cols = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    let (one, zero) = (_mm256_set1_epi32(1), _mm256_setzero_ps());
    let mut matches = 0;
    // Outputs already counted: the last block may overlap the one before.
    let mut done = 0usize;
    for start in block_starts(0, ow_n - LANES, LANES) {
        let even = _mm256_add_epi32(lane_cols, splat_index(ih * w + 2 * start));
        let odd = _mm256_add_epi32(even, one);
        let (a, d) = (load_u32(&am_row[start..]), load(&dy_row[start..]));
        let hit_even = _mm256_castsi256_ps(_mm256_cmpeq_epi32(a, even));
        let hit_odd = _mm256_castsi256_ps(_mm256_cmpeq_epi32(a, odd));
        // 0 + dy turns a -0.0 gradient into +0.0, as the scalar path's sum does.
        let e = _mm256_add_ps(zero, _mm256_and_ps(hit_even, d));
        let o = _mm256_add_ps(zero, _mm256_and_ps(hit_odd, d));
        let hits = (_mm256_movemask_ps(hit_even) | _mm256_movemask_ps(hit_odd)) as u32;
        let fresh = (0xFFu32 << done.saturating_sub(start)) & 0xFF;
        matches += (hits & fresh).count_ones() as usize;
        // Interleave even and odd columns: unpack within 128-bit halves, then gather
        // the halves.
        let (lo, hi) = (_mm256_unpacklo_ps(e, o), _mm256_unpackhi_ps(e, o));
        store(
            &mut dx_row[2 * start..],
            _mm256_permute2f128_ps::<0x20>(lo, hi),
        );
        store(
            &mut dx_row[2 * start + LANES..],
            _mm256_permute2f128_ps::<0x31>(lo, hi),
        );
        done = start + LANES;
    }
    matches + scalar::max_bwd_pixels(g, dy, am, ih, 2 * ow_n..w, 0..1, dx_row)
}

#[target_feature(enable = "avx2,fma")]
fn avg_bwd_nchw_avx2(g: &Geometry, count_include_pad: bool, dy: &[f32], dx: &mut [f32]) {
    if !neon_4lane::pairs(g) {
        return scalar::avg_bwd_nchw(g, count_include_pad, dy, dx);
    }
    let (w, ow_n) = (g.cols.input, g.cols.output);
    for (ih, dx_row) in dx.chunks_exact_mut(w).enumerate() {
        if ow_n < LANES {
            neon_4lane::avg_bwd_pairs_row(g, count_include_pad, dy, ih, dx_row);
            continue;
        }
        let Some(oh) = g.rows.windows_of(ih).next() else {
            dx_row.fill(0.0);
            continue;
        };
        let dy_row = &dy[oh * ow_n..][..ow_n];
        let divisor = _mm256_set1_ps(g.interior_divisor(oh, count_include_pad));
        for start in block_starts(0, ow_n - LANES, LANES) {
            // 0 + share, as the scalar path's sum.
            let share = _mm256_div_ps(load(&dy_row[start..]), divisor);
            let share = _mm256_add_ps(_mm256_setzero_ps(), share);
            let (lo, hi) = (
                _mm256_unpacklo_ps(share, share),
                _mm256_unpackhi_ps(share, share),
            );
            store(
                &mut dx_row[2 * start..],
                _mm256_permute2f128_ps::<0x20>(lo, hi),
            );
            store(
                &mut dx_row[2 * start + LANES..],
                _mm256_permute2f128_ps::<0x31>(lo, hi),
            );
        }
        let tail = 2 * ow_n..w;
        scalar::avg_bwd_pixels(g, count_include_pad, dy, ih, tail, 0..1, dx_row);
    }
}

#[target_feature(enable = "avx2,fma")]
fn max_bwd_nhwc_avx2(g: &Geometry, dy: &[f32], am: &[u32], ih: usize, dx_row: &mut [f32]) -> usize {
    let (w, ow_n, ch) = (g.cols.input, g.cols.output, g.channels);
    let vec_end = ch - ch % LANES;
    let ohs = g.rows.windows_of(ih);
    let mut matches = 0;
    for iw in 0..w {
        let ows = g.cols.windows_of(iw);
        let here = splat_index(ih * w + iw);
        for c in (0..vec_end).step_by(LANES) {
            let mut acc = _mm256_setzero_ps();
            for oh in ohs.clone() {
                for ow in ows.clone() {
                    let o = (oh * ow_n + ow) * ch + c;
                    let hit = _mm256_castsi256_ps(_mm256_cmpeq_epi32(load_u32(&am[o..]), here));
                    // Adding +0.0 where the window picked another input leaves the sum
                    // as the scalar path's conditional add does.
                    acc = _mm256_add_ps(acc, _mm256_and_ps(hit, load(&dy[o..])));
                    matches += _mm256_movemask_ps(hit).count_ones() as usize;
                }
            }
            store(&mut dx_row[iw * ch + c..], acc);
        }
        matches += scalar::max_bwd_pixels(g, dy, am, ih, iw..iw + 1, vec_end..ch, dx_row);
    }
    matches
}

#[target_feature(enable = "avx2,fma")]
fn avg_bwd_nhwc_avx2(
    g: &Geometry,
    count_include_pad: bool,
    dy: &[f32],
    ih: usize,
    dx_row: &mut [f32],
) {
    let (w, ow_n, ch) = (g.cols.input, g.cols.output, g.channels);
    let vec_end = ch - ch % LANES;
    let ohs = g.rows.windows_of(ih);
    for iw in 0..w {
        let ows = g.cols.windows_of(iw);
        for c in (0..vec_end).step_by(LANES) {
            let mut acc = _mm256_setzero_ps();
            for oh in ohs.clone() {
                for ow in ows.clone() {
                    let divisor = _mm256_set1_ps(g.divisor(oh, ow, count_include_pad));
                    let share = _mm256_div_ps(load(&dy[(oh * ow_n + ow) * ch + c..]), divisor);
                    acc = _mm256_add_ps(acc, share);
                }
            }
            store(&mut dx_row[iw * ch + c..], acc);
        }
        let tail = vec_end..ch;
        scalar::avg_bwd_pixels(g, count_include_pad, dy, ih, iw..iw + 1, tail, dx_row);
    }
}

#[target_feature(enable = "avx2,fma")]
fn plane_sum_avx2(x: &[f32]) -> f32 {
    // Four independent chains hide the add latency.
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut blocks = x.chunks_exact(4 * LANES);
    for block in &mut blocks {
        for (a, part) in acc.iter_mut().zip(block.chunks_exact(LANES)) {
            *a = _mm256_add_ps(*a, load(part));
        }
    }
    let mut octets = blocks.remainder().chunks_exact(LANES);
    for part in &mut octets {
        acc[0] = _mm256_add_ps(acc[0], load(part));
    }
    let total = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let half = _mm_add_ps(
        _mm256_castps256_ps128(total),
        _mm256_extractf128_ps::<1>(total),
    );
    let pair = _mm_add_ps(half, _mm_movehl_ps(half, half));
    let one = _mm_add_ss(pair, _mm_movehdup_ps(pair));
    _mm_cvtss_f32(one) + octets.remainder().iter().sum::<f32>()
}

#[target_feature(enable = "avx2,fma")]
fn pixel_sums_avx2(channels: usize, x: &[f32], y: &mut [f32]) {
    // Four channel blocks at a time: independent add chains, and 128 contiguous bytes
    // read per pixel.
    let wide_end = channels - channels % (4 * LANES);
    for c in (0..wide_end).step_by(4 * LANES) {
        let mut acc = [_mm256_setzero_ps(); 4];
        for pixel in x.chunks_exact(channels) {
            for (j, a) in acc.iter_mut().enumerate() {
                *a = _mm256_add_ps(*a, load(&pixel[c + j * LANES..]));
            }
        }
        for (j, a) in acc.into_iter().enumerate() {
            store(&mut y[c + j * LANES..], a);
        }
    }
    let vec_end = channels - channels % LANES;
    for c in (wide_end..vec_end).step_by(LANES) {
        let mut acc = _mm256_setzero_ps();
        for pixel in x.chunks_exact(channels) {
            acc = _mm256_add_ps(acc, load(&pixel[c..]));
        }
        store(&mut y[c..], acc);
    }
    for (c, s) in y.iter_mut().enumerate().skip(vec_end) {
        *s = x
            .chunks_exact(channels)
            .fold(0.0, |sum, pixel| sum + pixel[c]);
    }
}
