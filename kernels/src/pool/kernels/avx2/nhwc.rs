//! NHWC rows: vectors of 8 adjacent channels of a pixel, channel tails on the scalar
//! path. Forward: one output row; backward: one input row, gathering the windows that
//! cover each pixel in output order.

use super::super::super::geometry::Geometry;
use super::super::scalar;
use super::*;

#[target_feature(enable = "avx2,fma")]
pub(super) fn max_fwd(g: &Geometry, x: &[f32], oh: usize, y_row: &mut [f32], am_row: &mut [u32]) {
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
pub(super) fn avg_fwd(
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
pub(super) fn max_bwd(
    g: &Geometry,
    dy: &[f32],
    am: &[u32],
    ih: usize,
    dx_row: &mut [f32],
) -> usize {
    let (w, ow_n, ch) = (g.cols.input, g.cols.output, g.channels);
    let vec_end = ch - ch % LANES;
    let ohs = g.rows.windows_of(ih);
    let (mut counts, mut matches) = (_mm256_setzero_si256(), 0);
    for (iw, ows) in g.cols.windows_of_each().enumerate() {
        let here = splat_index(ih * w + iw);
        let dx = &mut dx_row[iw * ch..][..vec_end];
        for c in (0..vec_end).step_by(LANES) {
            store(&mut dx[c..], _mm256_setzero_ps());
        }
        // Windows in output order, each adding to every channel block: the scalar
        // path's order. Adding +0.0 where a window picked another input leaves the sum
        // as the scalar path's conditional add does.
        for oh in ohs.clone() {
            for ow in ows.clone() {
                let o = (oh * ow_n + ow) * ch;
                for c in (0..vec_end).step_by(LANES) {
                    let hit = _mm256_cmpeq_epi32(load_u32(&am[o + c..]), here);
                    let hit = _mm256_castsi256_ps(hit);
                    let sum = _mm256_add_ps(load(&dx[c..]), _mm256_and_ps(hit, load(&dy[o + c..])));
                    store(&mut dx[c..], sum);
                    counts = count_hits(counts, hit);
                }
            }
        }
        matches += scalar::max_bwd_pixels(g, dy, am, ih, iw..iw + 1, vec_end..ch, dx_row);
    }
    matches + total(counts)
}

#[target_feature(enable = "avx2,fma")]
pub(super) fn avg_bwd(
    g: &Geometry,
    count_include_pad: bool,
    dy: &[f32],
    ih: usize,
    dx_row: &mut [f32],
) {
    let (ow_n, ch) = (g.cols.output, g.channels);
    let vec_end = ch - ch % LANES;
    let ohs = g.rows.windows_of(ih);
    for (iw, ows) in g.cols.windows_of_each().enumerate() {
        let dx = &mut dx_row[iw * ch..][..vec_end];
        for c in (0..vec_end).step_by(LANES) {
            store(&mut dx[c..], _mm256_setzero_ps());
        }
        for oh in ohs.clone() {
            for ow in ows.clone() {
                let divisor = _mm256_set1_ps(g.divisor(oh, ow, count_include_pad));
                let o = (oh * ow_n + ow) * ch;
                for c in (0..vec_end).step_by(LANES) {
                    let share = _mm256_div_ps(load(&dy[o + c..]), divisor);
                    let sum = _mm256_add_ps(load(&dx[c..]), share);
                    store(&mut dx[c..], sum);
                }
            }
        }
        let tail = vec_end..ch;
        scalar::avg_bwd_pixels(g, count_include_pad, dy, ih, iw..iw + 1, tail, dx_row);
    }
}
