//! Scalar path: plain Rust over pixels and channels.
//!
//! The `*_pixels` functions work on any range of output (forward) or input (backward)
//! pixels of one row and any range of channels, so the vector paths use them for the
//! window edges and channel tails their blocks do not cover. Every function sums in the
//! order the vector paths use — forward: window rows, then columns; backward: windows
//! in output order; from +0.0 — so that all paths agree bit for bit.
//!
//! An NCHW plane's gradient is a scatter (each output adds its share to its window's
//! inputs, outputs in order): every input then sums the same terms in the same order as
//! a gather would, without a window search per input.

use super::super::geometry::Geometry;
use super::Kernels;
use std::ops::Range;

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

/// Max pooling of output row `oh`, pixels `ows`, channels `cs`: PyTorch's scan (a value
/// replaces the running max when greater or NaN; ties keep the first).
#[inline]
pub(crate) fn max_fwd_pixels(
    g: &Geometry,
    x: &[f32],
    oh: usize,
    ows: Range<usize>,
    cs: Range<usize>,
    y_row: &mut [f32],
    am_row: &mut [u32],
) {
    // Inlined, so that the vector paths' empty edges cost a compare, not a call.
    if !ows.is_empty() && !cs.is_empty() {
        max_fwd_pixels_in(g, x, oh, ows, cs, y_row, am_row)
    }
}

fn max_fwd_pixels_in(
    g: &Geometry,
    x: &[f32],
    oh: usize,
    ows: Range<usize>,
    cs: Range<usize>,
    y_row: &mut [f32],
    am_row: &mut [u32],
) {
    let (w, ch) = (g.cols.input, g.channels);
    let rows = g.rows.real(oh);
    for ow in ows {
        let cols = g.cols.real(ow);
        for c in cs.clone() {
            let mut best = f32::NEG_INFINITY;
            let mut best_at = rows.start * w + cols.start;
            for ih in rows.clone() {
                for iw in cols.clone() {
                    let at = ih * w + iw;
                    let v = x[at * ch + c];
                    if v > best || v.is_nan() {
                        best = v;
                        best_at = at;
                    }
                }
            }
            y_row[ow * ch + c] = best;
            // Fits: the public API checks that every plane index fits u32.
            am_row[ow * ch + c] = best_at as u32;
        }
    }
}

/// Average pooling of output row `oh`, pixels `ows`, channels `cs`.
#[inline]
pub(crate) fn avg_fwd_pixels(
    g: &Geometry,
    count_include_pad: bool,
    x: &[f32],
    oh: usize,
    ows: Range<usize>,
    cs: Range<usize>,
    y_row: &mut [f32],
) {
    // Inlined, so that the vector paths' empty edges cost a compare, not a call.
    if !ows.is_empty() && !cs.is_empty() {
        avg_fwd_pixels_in(g, count_include_pad, x, oh, ows, cs, y_row)
    }
}

fn avg_fwd_pixels_in(
    g: &Geometry,
    count_include_pad: bool,
    x: &[f32],
    oh: usize,
    ows: Range<usize>,
    cs: Range<usize>,
    y_row: &mut [f32],
) {
    let (w, ch) = (g.cols.input, g.channels);
    let rows = g.rows.real(oh);
    for ow in ows {
        let cols = g.cols.real(ow);
        let divisor = g.divisor(oh, ow, count_include_pad);
        for c in cs.clone() {
            let mut sum = 0.0f32;
            for ih in rows.clone() {
                for iw in cols.clone() {
                    sum += x[(ih * w + iw) * ch + c];
                }
            }
            y_row[ow * ch + c] = sum / divisor;
        }
    }
}

/// Max-pooling gradient of input row `ih`, pixels `iws`, channels `cs`: each input sums
/// the `dy` of the windows that cover it and picked it. Returns how many (window,
/// channel) pairs picked one of these inputs.
#[inline]
pub(crate) fn max_bwd_pixels(
    g: &Geometry,
    dy: &[f32],
    am: &[u32],
    ih: usize,
    iws: Range<usize>,
    cs: Range<usize>,
    dx_row: &mut [f32],
) -> usize {
    // Inlined, so that the vector paths' empty edges cost a compare, not a call.
    if !iws.is_empty() && !cs.is_empty() {
        max_bwd_pixels_in(g, dy, am, ih, iws, cs, dx_row)
    } else {
        0
    }
}

fn max_bwd_pixels_in(
    g: &Geometry,
    dy: &[f32],
    am: &[u32],
    ih: usize,
    iws: Range<usize>,
    cs: Range<usize>,
    dx_row: &mut [f32],
) -> usize {
    let (w, ow_n, ch) = (g.cols.input, g.cols.output, g.channels);
    let ohs = g.rows.windows_of(ih);
    let mut matches = 0;
    for iw in iws {
        // Fits: the public API checks that every plane index fits u32.
        let at = (ih * w + iw) as u32;
        let dx = &mut dx_row[iw * ch..][cs.clone()];
        dx.fill(0.0);
        for oh in ohs.clone() {
            for ow in g.cols.windows_of(iw) {
                let o = (oh * ow_n + ow) * ch;
                let window = dy[o..][cs.clone()].iter().zip(&am[o..][cs.clone()]);
                for (d, (&grad, &picked)) in dx.iter_mut().zip(window) {
                    if picked == at {
                        *d += grad;
                        matches += 1;
                    }
                }
            }
        }
    }
    matches
}

/// Average-pooling gradient of input row `ih`, pixels `iws`, channels `cs`.
#[inline]
pub(crate) fn avg_bwd_pixels(
    g: &Geometry,
    count_include_pad: bool,
    dy: &[f32],
    ih: usize,
    iws: Range<usize>,
    cs: Range<usize>,
    dx_row: &mut [f32],
) {
    // Inlined, so that the vector paths' empty edges cost a compare, not a call.
    if !iws.is_empty() && !cs.is_empty() {
        avg_bwd_pixels_in(g, count_include_pad, dy, ih, iws, cs, dx_row)
    }
}

fn avg_bwd_pixels_in(
    g: &Geometry,
    count_include_pad: bool,
    dy: &[f32],
    ih: usize,
    iws: Range<usize>,
    cs: Range<usize>,
    dx_row: &mut [f32],
) {
    let (ow_n, ch) = (g.cols.output, g.channels);
    let ohs = g.rows.windows_of(ih);
    for iw in iws {
        let dx = &mut dx_row[iw * ch..][cs.clone()];
        dx.fill(0.0);
        for oh in ohs.clone() {
            for ow in g.cols.windows_of(iw) {
                let divisor = g.divisor(oh, ow, count_include_pad);
                let o = (oh * ow_n + ow) * ch;
                for (d, &grad) in dx.iter_mut().zip(&dy[o..][cs.clone()]) {
                    *d += grad / divisor;
                }
            }
        }
    }
}

fn max_fwd_nchw(g: &Geometry, x: &[f32], y: &mut [f32], am: &mut [u32]) {
    let ow_n = g.cols.output;
    let rows = y.chunks_exact_mut(ow_n).zip(am.chunks_exact_mut(ow_n));
    for (oh, (y_row, am_row)) in rows.enumerate() {
        max_fwd_pixels(g, x, oh, 0..ow_n, 0..1, y_row, am_row);
    }
}

fn max_fwd_nhwc(g: &Geometry, x: &[f32], oh: usize, y_row: &mut [f32], am_row: &mut [u32]) {
    max_fwd_pixels(g, x, oh, 0..g.cols.output, 0..g.channels, y_row, am_row);
}

fn avg_fwd_nchw(g: &Geometry, count_include_pad: bool, x: &[f32], y: &mut [f32]) {
    let ow_n = g.cols.output;
    for (oh, y_row) in y.chunks_exact_mut(ow_n).enumerate() {
        avg_fwd_pixels(g, count_include_pad, x, oh, 0..ow_n, 0..1, y_row);
    }
}

fn avg_fwd_nhwc(g: &Geometry, count_include_pad: bool, x: &[f32], oh: usize, y_row: &mut [f32]) {
    avg_fwd_pixels(
        g,
        count_include_pad,
        x,
        oh,
        0..g.cols.output,
        0..g.channels,
        y_row,
    );
}

/// The gradient of a whole plane as a scatter; the vector paths use it too for windows
/// they have no vector kernel for. Returns how many outputs found their argmax in their
/// window (others add nothing).
pub(crate) fn max_bwd_nchw(g: &Geometry, dy: &[f32], am: &[u32], dx: &mut [f32]) -> usize {
    let (w, ow_n) = (g.cols.input, g.cols.output);
    dx.fill(0.0);
    let mut matches = 0;
    let outputs = dy.chunks_exact(ow_n).zip(am.chunks_exact(ow_n));
    for (oh, (dy_row, am_row)) in outputs.enumerate() {
        let rows = g.rows.real(oh);
        for (ow, (&grad, &at)) in dy_row.iter().zip(am_row).enumerate() {
            let cols = g.cols.real(ow);
            let at = at as usize;
            // A position of this window: in one of its rows, within its columns.
            let inside = rows
                .clone()
                .any(|ih| (ih * w + cols.start..ih * w + cols.end).contains(&at));
            if inside {
                dx[at] += grad;
                matches += 1;
            }
        }
    }
    matches
}

fn max_bwd_nhwc(g: &Geometry, dy: &[f32], am: &[u32], ih: usize, dx_row: &mut [f32]) -> usize {
    max_bwd_pixels(g, dy, am, ih, 0..g.cols.input, 0..g.channels, dx_row)
}

/// The gradient of a whole plane as a scatter; see [`max_bwd_nchw`].
pub(crate) fn avg_bwd_nchw(g: &Geometry, count_include_pad: bool, dy: &[f32], dx: &mut [f32]) {
    let (w, ow_n) = (g.cols.input, g.cols.output);
    dx.fill(0.0);
    for (oh, dy_row) in dy.chunks_exact(ow_n).enumerate() {
        let rows = g.rows.real(oh);
        for (ow, &grad) in dy_row.iter().enumerate() {
            let cols = g.cols.real(ow);
            let share = grad / g.divisor(oh, ow, count_include_pad);
            for ih in rows.clone() {
                for d in &mut dx[ih * w + cols.start..ih * w + cols.end] {
                    *d += share;
                }
            }
        }
    }
}

fn avg_bwd_nhwc(g: &Geometry, count_include_pad: bool, dy: &[f32], ih: usize, dx_row: &mut [f32]) {
    avg_bwd_pixels(
        g,
        count_include_pad,
        dy,
        ih,
        0..g.cols.input,
        0..g.channels,
        dx_row,
    );
}

fn plane_sum(x: &[f32]) -> f32 {
    x.iter().sum()
}

/// `y[c] = Σ_p x[p·channels + c]`, pixels in order; `y` holds `channels` values.
pub(crate) fn pixel_sums(channels: usize, x: &[f32], y: &mut [f32]) {
    y.fill(0.0);
    for pixel in x.chunks_exact(channels) {
        for (s, &v) in y.iter_mut().zip(pixel) {
            *s += v;
        }
    }
}
