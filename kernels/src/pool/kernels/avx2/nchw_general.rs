//! NCHW planes of any window, edge windows included, 8 outputs per block.
//!
//! Forward: the plane is copied with its column padding made real ([`PaddedPlane`]:
//! -inf for max, 0 for average), so that every block reads with plain loads, and the last
//! block of a row stores only the outputs that exist. Visiting padding changes nothing:
//! -inf never replaces a running max (argmax starts at each window's first real input,
//! as in the reference), and adding +0.0 leaves a sum as it was.
//!
//! Backward, strides 1 and 2: a gather per input row. Each output row's gradient (max:
//! with its argmax; average: divided by its window's divisor) is first copied into a
//! padded row, so that the windows covering 8 adjacent inputs (stride 1) — or 8 even and
//! 8 odd inputs (stride 2) — are plain loads at fixed offsets. Each input then sums its
//! windows in registers in output order (window columns right to left), as the scalar
//! scatter does. Other strides use the scalar scatter.
//!
//! Every buffer is written in increasing order with `store_spill`, so that short rows
//! cost neither masked stores nor library calls.

use super::super::super::geometry::{Axis, Geometry};
use super::super::padded::{with_scratch, PaddedPlane};
use super::super::scalar;
use super::*;

/// Inputs a block of 8 outputs reads, from its first window's first (padded) column.
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

/// Column offsets of a block's lanes from its first column, in the block's lane order:
/// at stride 2, the shuffles of [`scan`] swap the middle 64-bit pairs.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn lane_columns(stride: usize) -> __m256i {
    match stride {
        2 => _mm256_setr_epi32(0, 2, 8, 10, 4, 6, 12, 14),
        // Fits: 7·stride is less than a padded row, whose indices fit u32.
        s => _mm256_mullo_epi32(
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
            _mm256_set1_epi32(s as u32 as i32),
        ),
    }
}

/// Puts a block's lanes in output order.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn in_order(v: __m256i, stride: usize) -> __m256i {
    if stride == 2 {
        unswap_pairs(v)
    } else {
        v
    }
}

#[inline]
#[target_feature(enable = "avx2,fma")]
fn in_order_ps(v: __m256, stride: usize) -> __m256 {
    _mm256_castsi256_ps(in_order(_mm256_castps_si256(v), stride))
}

/// Calls `visit(inputs, ih, kw)` for each window position — real rows, padded columns —
/// of the block of output row `oh` whose first window starts at padded column `c0`, in
/// scan order (rows, then columns), lanes in the block's lane order. `S` is the column
/// stride when it is 1 or 2 (known at compile time), 0 for any other stride.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn scan<const S: usize>(
    g: &Geometry,
    padded: &[f32],
    row_len: usize,
    oh: usize,
    c0: usize,
    mut visit: impl FnMut(__m256, usize, usize),
) {
    let (s, k) = (g.cols.stride, g.cols.kernel);
    for ih in g.rows.real(oh) {
        let row = &padded[ih * row_len + c0..(ih + 1) * row_len];
        let mut kw = 0;
        while kw < k {
            match S {
                1 => {
                    visit(load(&row[kw..]), ih, kw);
                    kw += 1;
                }
                2 => {
                    let pair = &row[kw..kw + 2 * LANES];
                    let (lo, hi) = (load(pair), load(&pair[LANES..]));
                    visit(_mm256_shuffle_ps::<0b10_00_10_00>(lo, hi), ih, kw);
                    if kw + 1 < k {
                        visit(_mm256_shuffle_ps::<0b11_01_11_01>(lo, hi), ih, kw + 1);
                    }
                    kw += 2;
                }
                _ => {
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
                    visit(v, ih, kw);
                    kw += 1;
                }
            }
        }
    }
}

/// Writes a padded row at `out[at..at + len]`: `lead` copies of `fill`, the `n` values
/// of `chunk(j)` (8 values from value `j`), then `fill` to the end. Whole-vector
/// stores in increasing order, each overwriting the previous one's spill; `out` holds 8
/// floats past its last row for the last one.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn write_padded(
    out: &mut [f32],
    (at, lead, len): (usize, usize, usize),
    fill: __m256,
    n: usize,
    chunk: impl Fn(usize) -> __m256,
) {
    let mut i = 0;
    while i < lead {
        store(&mut out[at + i..], fill);
        i += LANES;
    }
    let mut j = 0;
    while j < n {
        store(&mut out[at + lead + j..], chunk(j));
        j += LANES;
    }
    let mut i = at + lead + n;
    while i < at + len {
        store(&mut out[i..], fill);
        i += LANES;
    }
}

/// Writes plane `x` into `out` with `value` around each row, as `plane` lays it out.
#[target_feature(enable = "avx2,fma")]
fn pad_plane(g: &Geometry, plane: PaddedPlane, x: &[f32], value: f32, out: &mut [f32]) {
    let (w, pad) = (g.cols.input, g.cols.padding);
    let fill = _mm256_set1_ps(value);
    for (r, row) in x.chunks_exact(w).enumerate() {
        let place = (r * plane.stride, pad, plane.stride);
        write_padded(out, place, fill, w, |j| load_lanes(&row[j..]));
    }
}

#[target_feature(enable = "avx2,fma")]
pub(super) fn max_fwd(g: &Geometry, x: &[f32], y: &mut [f32], am: &mut [u32]) {
    match g.cols.stride {
        1 => max_fwd_strided::<1>(g, x, y, am),
        2 => max_fwd_strided::<2>(g, x, y, am),
        _ => max_fwd_strided::<0>(g, x, y, am),
    }
}

/// [`max_fwd`] at column stride `S` (0: any other stride), as in [`scan`].
#[target_feature(enable = "avx2,fma")]
fn max_fwd_strided<const S: usize>(g: &Geometry, x: &[f32], y: &mut [f32], am: &mut [u32]) {
    let (w, ow_n, s, pad) = (g.cols.input, g.cols.output, g.cols.stride, g.cols.padding);
    let plane = PaddedPlane::new(g, LANES, extent(g.cols));
    let cols = lane_columns(s);
    with_scratch(plane.len + LANES, |padded| {
        pad_plane(g, plane, x, f32::NEG_INFINITY, padded);
        for oh in 0..g.rows.output {
            let first_row = g.rows.real(oh).start;
            let mut start = 0;
            while start < ow_n {
                let c0 = start * s;
                // Each lane's first real input: where the reference's running max starts.
                let padded_col = _mm256_add_epi32(cols, splat_index(c0));
                let real_col = _mm256_sub_epi32(
                    _mm256_max_epu32(padded_col, splat_index(pad)),
                    splat_index(pad),
                );
                let mut at = _mm256_add_epi32(real_col, splat_index(first_row * w));
                let mut best = _mm256_set1_ps(f32::NEG_INFINITY);
                scan::<S>(g, padded, plane.stride, oh, c0, |v, ih, kw| {
                    // Padding positions get wrapped indices; they never win.
                    let first = (ih * w + c0 + kw).wrapping_sub(pad);
                    take_max(
                        &mut best,
                        &mut at,
                        v,
                        _mm256_add_epi32(cols, splat_index(first)),
                    );
                });
                let (out, n) = (oh * ow_n + start, LANES.min(ow_n - start));
                store_spill(y, out, n, in_order_ps(best, s));
                store_spill_u32(am, out, n, in_order(at, s));
                start += LANES;
            }
        }
    });
}

#[target_feature(enable = "avx2,fma")]
pub(super) fn avg_fwd(g: &Geometry, count_include_pad: bool, x: &[f32], y: &mut [f32]) {
    match g.cols.stride {
        1 => avg_fwd_strided::<1>(g, count_include_pad, x, y),
        2 => avg_fwd_strided::<2>(g, count_include_pad, x, y),
        _ => avg_fwd_strided::<0>(g, count_include_pad, x, y),
    }
}

/// [`avg_fwd`] at column stride `S` (0: any other stride), as in [`scan`].
#[target_feature(enable = "avx2,fma")]
fn avg_fwd_strided<const S: usize>(
    g: &Geometry,
    count_include_pad: bool,
    x: &[f32],
    y: &mut [f32],
) {
    let (ow_n, s) = (g.cols.output, g.cols.stride);
    let plane = PaddedPlane::new(g, LANES, extent(g.cols));
    with_scratch(plane.len + LANES + ow_n, |scratch| {
        let (padded, cols) = scratch.split_at_mut(plane.len + LANES);
        pad_plane(g, plane, x, 0.0, padded);
        col_counts(g, count_include_pad, cols);
        for oh in 0..g.rows.output {
            let row_count = _mm256_set1_ps(g.row_count(oh, count_include_pad));
            let mut start = 0;
            while start < ow_n {
                let end = (start + LANES).min(ow_n);
                let mut sum = _mm256_setzero_ps();
                scan::<S>(g, padded, plane.stride, oh, start * s, |v, _, _| {
                    sum = _mm256_add_ps(sum, v);
                });
                let divisor = _mm256_mul_ps(row_count, load_lanes(&cols[start..end]));
                let mean = _mm256_div_ps(in_order_ps(sum, s), divisor);
                store_spill(y, oh * ow_n + start, end - start, mean);
                start += LANES;
            }
        }
    });
}

#[target_feature(enable = "avx2,fma")]
fn col_counts(g: &Geometry, count_include_pad: bool, out: &mut [f32]) {
    for (ow, c) in out[..g.cols.output].iter_mut().enumerate() {
        *c = g.col_count(ow, count_include_pad);
    }
}

/// Padded copies of the output rows of a plane for the gathers: `lead` fill values, the
/// row, then fill values up to `len`, enough for every load of a gather.
#[derive(Clone, Copy)]
struct OutputRows {
    lead: usize,
    len: usize,
}

impl OutputRows {
    fn new<const S: usize>(g: &Geometry) -> OutputRows {
        // Loads reach `kernel − 1` columns left of a block's first window, and 8 windows
        // right of the window of the row's last block.
        let lead = g.cols.kernel;
        let reach = (g.cols.padding + g.cols.input - 1) / S + LANES;
        OutputRows {
            lead,
            len: lead + reach.max(g.cols.output),
        }
    }

    /// Where row `oh` lies in the rows' buffer, for [`write_padded`].
    fn place(&self, oh: usize) -> (usize, usize, usize) {
        (oh * self.len, self.lead, self.len)
    }

    /// Floats of `rows` output rows, with room for the last row's spill.
    fn buffer_len(&self, rows: usize) -> usize {
        rows * self.len + LANES
    }
}

/// All-ones in the lanes j whose input (padded column `c + j·S + offset`) is real.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn real_lanes<const S: usize>(c: usize, offset: usize, pad: usize, w: usize) -> __m256 {
    let first = c + offset;
    // Lanes [lo, hi) land in pad .. pad + w.
    let lo = pad.saturating_sub(first).div_ceil(S);
    let hi = (pad + w).saturating_sub(first).div_ceil(S);
    let lanes = _mm256_andnot_si256(first_lanes(lo), first_lanes(hi));
    _mm256_castsi256_ps(lanes)
}

/// Calls `f(t)` for the window columns `t < k` that feed the inputs of parity `parity`
/// at stride `S` — every column at stride 1 (parity 0 only), the even or odd columns at
/// stride 2 — from right to left, that is, their windows in output order.
#[inline]
fn for_each_column<const S: usize>(k: usize, parity: usize, mut f: impl FnMut(usize)) {
    if parity >= S || k <= parity {
        return;
    }
    // The rightmost column of this parity.
    let mut t = k - 1 - (k - 1 - parity) % S;
    loop {
        f(t);
        if t < S {
            break;
        }
        t -= S;
    }
}

/// Sums of the windows over each input of a plane at stride `S` (1 or 2), input row by
/// input row: `block(ih, c, windows)` returns the sums of the block of inputs starting
/// at padded column `c` — 8 inputs at stride 1; at stride 2, 8 even then 8 odd ones —
/// and whether every lane of the block is a real input.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn gather_rows<const S: usize>(
    g: &Geometry,
    dx: &mut [f32],
    mut block: impl FnMut(usize, usize, std::ops::Range<usize>, bool) -> (__m256, __m256),
) {
    let (w, pad) = (g.cols.input, g.cols.padding);
    // Stride-2 blocks start on an even padded column.
    let first = pad - pad % S;
    for (ih, ohs) in g.rows.windows_of_each().enumerate() {
        let mut c = first;
        while c < pad + w {
            let inside = c >= pad && c + S * LANES <= pad + w;
            let (a, b) = block(ih, c, ohs.clone(), inside);
            store_inputs::<S>(dx, ih * w, w, c, pad, a, b);
            c += S * LANES;
        }
    }
}

/// Writes the real inputs of a block starting at padded column `c` (see
/// [`gather_rows`]) into the row of `w` inputs at `dx[row..]`.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn store_inputs<const S: usize>(
    dx: &mut [f32],
    row: usize,
    w: usize,
    c: usize,
    pad: usize,
    a: __m256,
    b: __m256,
) {
    if S == 1 {
        let start = c - pad;
        return store_spill(dx, row + start, LANES.min(w - start), a);
    }
    let (lo, hi) = interleave(a, b);
    let (lo, hi, start) = if c >= pad {
        (lo, hi, c - pad)
    } else {
        // An odd padding: the first block starts one column left of the row; shift its
        // 16 values down by one lane.
        let down = _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 0);
        let (lo, hi) = (
            _mm256_permutevar8x32_ps(lo, down),
            _mm256_permutevar8x32_ps(hi, down),
        );
        (_mm256_blend_ps::<0b1000_0000>(lo, hi), hi, 0)
    };
    let count = (c + 2 * LANES - pad - start).min(w - start);
    store_spill(dx, row + start, count.min(LANES), lo);
    if count > LANES {
        store_spill(dx, row + start + LANES, count - LANES, hi);
    }
}

#[target_feature(enable = "avx2,fma")]
pub(super) fn avg_bwd(g: &Geometry, count_include_pad: bool, dy: &[f32], dx: &mut [f32]) {
    match g.cols.stride {
        1 => avg_bwd_gather::<1>(g, count_include_pad, dy, dx),
        2 => avg_bwd_gather::<2>(g, count_include_pad, dy, dx),
        _ => scalar::avg_bwd_nchw(g, count_include_pad, dy, dx),
    }
}

#[target_feature(enable = "avx2,fma")]
fn avg_bwd_gather<const S: usize>(
    g: &Geometry,
    count_include_pad: bool,
    dy: &[f32],
    dx: &mut [f32],
) {
    let (ow_n, k) = (g.cols.output, g.cols.kernel);
    let layout = OutputRows::new::<S>(g);
    let rows_len = layout.buffer_len(g.rows.output);
    with_scratch(rows_len + ow_n, |scratch| {
        let (shares, cols) = scratch.split_at_mut(rows_len);
        col_counts(g, count_include_pad, cols);
        for (oh, dy_row) in dy.chunks_exact(ow_n).enumerate() {
            // The scalar scatter's shares: dy over the window's divisor.
            let row_count = _mm256_set1_ps(g.row_count(oh, count_include_pad));
            let share = |j: usize| {
                let divisor = _mm256_mul_ps(row_count, load_lanes(&cols[j..ow_n]));
                _mm256_div_ps(load_lanes(&dy_row[j..]), divisor)
            };
            write_padded(shares, layout.place(oh), _mm256_setzero_ps(), ow_n, share);
        }
        let shares = &*shares;
        gather_rows::<S>(g, dx, |_, c, ohs, _| {
            let (mut a, mut b) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            for oh in ohs {
                // Lane j's input (padded column c + j·S, + 1 for the odd ones) lies in
                // column t of window (c − t) / S + j; window columns right to left are
                // windows in output order. At stride 2, even columns t feed the even
                // inputs, odd ones the odd inputs.
                let base = oh * layout.len + layout.lead + c / S;
                for_each_column::<S>(k, 0, |t| {
                    a = _mm256_add_ps(a, load(&shares[base - t / S..]));
                });
                for_each_column::<S>(k, 1, |t| {
                    b = _mm256_add_ps(b, load(&shares[base - t / S..]));
                });
            }
            (a, b)
        });
    });
}

#[target_feature(enable = "avx2,fma")]
pub(super) fn max_bwd(g: &Geometry, dy: &[f32], am: &[u32], dx: &mut [f32]) -> usize {
    match g.cols.stride {
        1 => max_bwd_gather::<1>(g, dy, am, dx),
        2 => max_bwd_gather::<2>(g, dy, am, dx),
        _ => scalar::max_bwd_nchw(g, dy, am, dx),
    }
}

#[target_feature(enable = "avx2,fma")]
fn max_bwd_gather<const S: usize>(g: &Geometry, dy: &[f32], am: &[u32], dx: &mut [f32]) -> usize {
    let (w, ow_n, k, pad) = (g.cols.input, g.cols.output, g.cols.kernel, g.cols.padding);
    let layout = OutputRows::new::<S>(g);
    let rows_len = layout.buffer_len(g.rows.output);
    let mut counts = _mm256_setzero_si256();
    // Gradients, then argmax bit patterns; padding gets dy 0 and an index that is no
    // position (the public API keeps planes below 2³² positions).
    with_scratch(2 * rows_len, |scratch| {
        let (grads, picks) = scratch.split_at_mut(rows_len);
        let outputs = dy.chunks_exact(ow_n).zip(am.chunks_exact(ow_n));
        for (oh, (dy_row, am_row)) in outputs.enumerate() {
            let (place, zero) = (layout.place(oh), _mm256_setzero_ps());
            write_padded(grads, place, zero, ow_n, |j| load_lanes(&dy_row[j..]));
            let none = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
            write_padded(picks, place, none, ow_n, |j| {
                _mm256_castsi256_ps(load_lanes_u32(&am_row[j..]))
            });
        }
        let (grads, picks) = (&*grads, &*picks);
        let cols = _mm256_mullo_epi32(
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
            _mm256_set1_epi32(S as i32),
        );
        let one = _mm256_set1_epi32(1);
        gather_rows::<S>(g, dx, |ih, c, ohs, inside| {
            // Plane positions of the block's inputs: columns c − pad + j·S (+ 1).
            let here = _mm256_add_epi32(cols, splat_index((ih * w + c).wrapping_sub(pad)));
            let here_odd = _mm256_add_epi32(here, one);
            // Lanes past the row's ends may alias a position of a window wider than
            // the input: count real inputs only.
            let (real_a, real_b) = if inside {
                let all = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
                (all, all)
            } else {
                (real_lanes::<S>(c, 0, pad, w), real_lanes::<S>(c, 1, pad, w))
            };
            let (mut a, mut b) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            for oh in ohs {
                let base = oh * layout.len + layout.lead + c / S;
                // The picked gradient of window column t, for inputs `target`.
                let mut pick = |t: usize, target: __m256i, real: __m256| {
                    let grad = load(&grads[base - t / S..]);
                    let picked = _mm256_castps_si256(load(&picks[base - t / S..]));
                    let hit = _mm256_castsi256_ps(_mm256_cmpeq_epi32(picked, target));
                    counts = count_hits(counts, _mm256_and_ps(hit, real));
                    _mm256_and_ps(hit, grad)
                };
                for_each_column::<S>(k, 0, |t| a = _mm256_add_ps(a, pick(t, here, real_a)));
                for_each_column::<S>(k, 1, |t| b = _mm256_add_ps(b, pick(t, here_odd, real_b)));
            }
            (a, b)
        });
    });
    total(counts)
}
