//! NCHW planes of 2-wide, stride-2 windows without column padding — the common 2 × 2
//! pool — straight from the plane, 8 outputs per block.
//!
//! Forward: per window row, two loads of 8 inputs and two in-lane shuffles split the
//! even and odd inputs of 8 windows; the lanes come out with their 64-bit pairs swapped,
//! which one permute per block undoes. Backward: each output's dy goes to the one of its
//! two inputs its argmax names (+0.0 to the other), interleaved back into the rows; one
//! load of dy and argmax serves every input row of the window row. The last block of a
//! row overlaps the one before; a row of fewer than 8 outputs is one block that loads
//! only the inputs that exist (masked loads) and stores with `store_spill`.

use super::super::super::geometry::Geometry;
use super::super::{for_each_window_row, neon_4lane};
use super::*;

/// Whether [`max_fwd`] and [`avg_fwd`] take the plane: 2-wide, stride-2 windows without
/// column padding.
pub(super) fn forward_fits(g: &Geometry) -> bool {
    g.cols.kernel == 2 && g.cols.stride == 2 && g.cols.padding == 0
}

/// Whether [`max_bwd`] and [`avg_bwd`] take the plane: windows that are `pairs` (no
/// input in two windows).
pub(super) fn backward_fits(g: &Geometry) -> bool {
    neon_4lane::pairs(g)
}

/// Column offsets of a block's lanes from its first input, in the lane order of the
/// stride-2 shuffles.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn swapped_columns() -> __m256i {
    _mm256_setr_epi32(0, 2, 8, 10, 4, 6, 12, 14)
}

/// The first output of each forward block of a row of `ow_n` outputs: every 8 outputs,
/// the last block ending at the row's end and overlapping the one before (its outputs
/// are computed twice, identically) so that all its loads are whole. A row of fewer
/// than 8 outputs is one partial block. A plain counted loop: iterator adapters here
/// cost more than the block itself.
#[inline]
fn for_each_block(ow_n: usize, mut block: impl FnMut(usize, usize)) {
    let last = ow_n.saturating_sub(LANES);
    let n = LANES.min(ow_n);
    let mut start = 0;
    loop {
        block(start, n);
        if start >= last {
            break;
        }
        start = (start + LANES).min(last);
    }
}

/// The even and odd inputs of the `n` (≤ 8) windows of `row` from column `c0`, lanes
/// with their pairs swapped (lanes past `n`: zeros).
#[inline]
#[target_feature(enable = "avx2,fma")]
fn split(row: &[f32], c0: usize, n: usize) -> (__m256, __m256) {
    let r = &row[c0..c0 + 2 * n];
    let (lo, hi) = if n == LANES {
        (load(r), load(&r[LANES..]))
    } else {
        (
            load_lanes(r),
            load_lanes(r.get(LANES..).unwrap_or_default()),
        )
    };
    (
        _mm256_shuffle_ps::<0b10_00_10_00>(lo, hi),
        _mm256_shuffle_ps::<0b11_01_11_01>(lo, hi),
    )
}

/// Max pooling. The running max starts at each window's first input: the reference's
/// rule, since its start (-inf at the first position) loses to, or ties with, that input.
#[target_feature(enable = "avx2,fma")]
pub(super) fn max_fwd(g: &Geometry, x: &[f32], y: &mut [f32], am: &mut [u32]) {
    let (w, ow_n) = (g.cols.input, g.cols.output);
    let (cols, one) = (swapped_columns(), _mm256_set1_epi32(1));
    for oh in 0..g.rows.output {
        let rows = g.rows.real(oh);
        let out_row = oh * ow_n;
        for_each_block(ow_n, |start, n| {
            let c0 = 2 * start;
            let (mut best, odd) = split(&x[rows.start * w..], c0, n);
            let mut at = _mm256_add_epi32(cols, splat_index(rows.start * w + c0));
            let odd_at = _mm256_add_epi32(at, one);
            take_max(&mut best, &mut at, odd, odd_at);
            let mut fold = |ih: usize| {
                let (even, odd) = split(&x[ih * w..], c0, n);
                let even_at = _mm256_add_epi32(cols, splat_index(ih * w + c0));
                take_max(&mut best, &mut at, even, even_at);
                take_max(&mut best, &mut at, odd, _mm256_add_epi32(even_at, one));
            };
            // Two window rows (the 2 × 2 pool) straight, without a loop.
            if rows.len() == 2 {
                fold(rows.start + 1);
            } else {
                (rows.start + 1..rows.end).for_each(fold);
            }
            store_spill(y, out_row + start, n, unswap_pairs_ps(best));
            store_spill_u32(am, out_row + start, n, unswap_pairs(at));
        });
    }
}

/// Average pooling, summing from +0.0 in scan order as the scalar path does.
#[target_feature(enable = "avx2,fma")]
pub(super) fn avg_fwd(g: &Geometry, count_include_pad: bool, x: &[f32], y: &mut [f32]) {
    let (w, ow_n) = (g.cols.input, g.cols.output);
    for oh in 0..g.rows.output {
        let divisor = _mm256_set1_ps(g.interior_divisor(oh, count_include_pad));
        for_each_block(ow_n, |start, n| {
            let mut sum = _mm256_setzero_ps();
            for ih in g.rows.real(oh) {
                let (even, odd) = split(&x[ih * w..], 2 * start, n);
                sum = _mm256_add_ps(_mm256_add_ps(sum, even), odd);
            }
            let mean = unswap_pairs_ps(_mm256_div_ps(sum, divisor));
            store_spill(y, oh * ow_n + start, n, mean);
        });
    }
}

/// Stores the `n` (≤ 8) pairs `even[j], odd[j]` interleaved at `dx[at..]`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn store_pairs(dx: &mut [f32], at: usize, n: usize, even: __m256, odd: __m256) {
    let (lo, hi) = interleave(even, odd);
    store_spill(dx, at, (2 * n).min(LANES), lo);
    if n > LANES / 2 {
        store_spill(dx, at + LANES, 2 * n - LANES, hi);
    }
}

/// Max-pooling gradient; returns the number of outputs whose argmax is in their window.
#[target_feature(enable = "avx2,fma")]
pub(super) fn max_bwd(g: &Geometry, dy: &[f32], am: &[u32], dx: &mut [f32]) -> usize {
    let (w, ow_n) = (g.cols.input, g.cols.output);
    let lane_cols = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    let (one, zero) = (_mm256_set1_epi32(1), _mm256_setzero_ps());
    let mut counts = _mm256_setzero_si256();
    for_each_window_row(g, dx, |oh, rows, dx| {
        let (dy_row, am_row) = (&dy[oh * ow_n..][..ow_n], &am[oh * ow_n..][..ow_n]);
        // Outputs already counted: the last block may overlap the one before.
        let mut done = 0;
        for_each_block(ow_n, |start, n| {
            let a = load_lanes_u32(&am_row[start..start + n]);
            let d = load_lanes(&dy_row[start..start + n]);
            // Count each output once, and not the lanes past the row's end, whose
            // zeros may equal a position.
            let fresh = _mm256_andnot_si256(first_lanes(done - start.min(done)), first_lanes(n));
            let fresh = _mm256_castsi256_ps(fresh);
            for ih in rows.clone() {
                let even = _mm256_add_epi32(lane_cols, splat_index(ih * w + 2 * start));
                let odd = _mm256_add_epi32(even, one);
                let hit_even = _mm256_castsi256_ps(_mm256_cmpeq_epi32(a, even));
                let hit_odd = _mm256_castsi256_ps(_mm256_cmpeq_epi32(a, odd));
                // 0 + dy turns a -0.0 gradient into +0.0, as the scalar path's sum does.
                let e = _mm256_add_ps(zero, _mm256_and_ps(hit_even, d));
                let o = _mm256_add_ps(zero, _mm256_and_ps(hit_odd, d));
                let hits = _mm256_or_ps(hit_even, hit_odd);
                counts = count_hits(counts, _mm256_and_ps(hits, fresh));
                store_pairs(dx, ih * w + 2 * start, n, e, o);
            }
            done = start + n;
        });
        odd_width_zeros(dx, rows, w, ow_n);
    });
    total(counts)
}

/// Average-pooling gradient: each input gets its window's share.
#[target_feature(enable = "avx2,fma")]
pub(super) fn avg_bwd(g: &Geometry, count_include_pad: bool, dy: &[f32], dx: &mut [f32]) {
    let (w, ow_n) = (g.cols.input, g.cols.output);
    for_each_window_row(g, dx, |oh, rows, dx| {
        let dy_row = &dy[oh * ow_n..][..ow_n];
        let divisor = _mm256_set1_ps(g.interior_divisor(oh, count_include_pad));
        for_each_block(ow_n, |start, n| {
            // 0 + share, as the scalar path's sum.
            let share = _mm256_div_ps(load_lanes(&dy_row[start..start + n]), divisor);
            let share = _mm256_add_ps(_mm256_setzero_ps(), share);
            for ih in rows.clone() {
                store_pairs(dx, ih * w + 2 * start, n, share, share);
            }
        });
        odd_width_zeros(dx, rows, w, ow_n);
    });
}

/// An odd width leaves the last input of each row in no window: its gradient is 0.
/// Written after the row's blocks, whose stores may spill over it.
#[inline]
fn odd_width_zeros(dx: &mut [f32], rows: std::ops::Range<usize>, w: usize, ow_n: usize) {
    if 2 * ow_n < w {
        for ih in rows {
            dx[(ih + 1) * w - 1] = 0.0;
        }
    }
}
