//! Reference 2-D pooling, PyTorch `MaxPool2d` / `AvgPool2d` / global average pooling
//! semantics with `ceil_mode = false`, forward and backward, NCHW or NHWC.
//!
//! Along each spatial axis, window `o` covers the padded positions
//! `o·stride − padding .. o·stride − padding + kernel`. Padding is never read: max
//! pooling skips it and average pooling only counts it in the divisor when asked to.
//!
//! Forward passes are gathers (one f64 sum or one max per output element); backward
//! passes scatter into an f64 copy of the gradient, since several windows can reach the
//! same input, and round each element once.

use std::ops::Range;

use crate::error::{check_exact, KernelError, Result};
use crate::layout::Dims4;
use crate::pool::Pool2dDesc;

/// One spatial axis of a pooling window.
#[derive(Debug, Clone, Copy)]
struct Axis {
    input: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
}

impl Axis {
    /// Axis `d` (0 = height, 1 = width) of a validated descriptor.
    fn of(desc: &Pool2dDesc, d: usize) -> Axis {
        Axis {
            input: desc.input[d],
            kernel: desc.kernel[d],
            stride: desc.stride[d],
            padding: desc.padding[d],
        }
    }

    /// The real (non-padding) input positions window `o` covers. Never empty for a
    /// validated descriptor: padding ≤ kernel / 2 leaves every window a real position.
    fn real(self, o: usize) -> Range<usize> {
        let start = o * self.stride;
        let end = start + self.kernel;
        start.saturating_sub(self.padding)..end.saturating_sub(self.padding).min(self.input)
    }

    /// How many positions window `o` covers once clipped to the padded input: PyTorch's
    /// `count_include_pad` divisor (the whole window whenever `ceil_mode` is false).
    fn padded_len(self, o: usize) -> usize {
        let start = o * self.stride;
        let end = (start + self.kernel).min(self.input + 2 * self.padding);
        end - start
    }
}

/// Validates `desc` and returns the input and output sizes.
fn checked_dims(desc: &Pool2dDesc) -> Result<(Dims4, Dims4)> {
    desc.validate()?;
    Ok((desc.input_dims(), desc.output_dims()?))
}

/// Writes each f64 sum of `acc` into `out`, rounded once.
fn round_into(acc: &[f64], out: &mut [f32]) {
    for (o, &a) in out.iter_mut().zip(acc) {
        *o = a as f32;
    }
}

/// Max pooling: `y[n,c,oh,ow]` is the largest input in window `(oh, ow)` of plane `(n, c)`
/// and `argmax` its position `h·W + w` within that plane, PyTorch's index.
///
/// Scan order is row-major over the window and a value replaces the running max when it
/// is greater or NaN (PyTorch's CPU rule): ties keep the first maximum, a NaN always
/// propagates (the last NaN of the window gives the index), and a window of `-inf`
/// points at its first real position.
///
/// Shapes: `x` is `batch × channels × input` in `desc.layout`; `y` and `argmax` are
/// `batch × channels × output_hw()` in `desc.layout`, overwritten. An input plane of more
/// than 2³² positions is an error, since its indices would not fit in `u32`.
pub fn max_pool2d_forward(
    desc: &Pool2dDesc,
    x: &[f32],
    y: &mut [f32],
    argmax: &mut [u32],
) -> Result<()> {
    let (xd, yd) = checked_dims(desc)?;
    check_exact("max_pool2d x", xd.len(), x.len())?;
    check_exact("max_pool2d y", yd.len(), y.len())?;
    check_exact("max_pool2d argmax", yd.len(), argmax.len())?;
    if u32::try_from(xd.h * xd.w - 1).is_err() {
        return Err(KernelError::invalid(
            "max_pool2d input",
            format!(
                "a plane of {} × {} positions does not fit u32 argmax indices",
                xd.h, xd.w
            ),
        ));
    }
    let (rows, cols) = (Axis::of(desc, 0), Axis::of(desc, 1));
    let layout = desc.layout;
    for n in 0..yd.n {
        for c in 0..yd.c {
            for oh in 0..yd.h {
                let window_rows = rows.real(oh);
                for ow in 0..yd.w {
                    let window_cols = cols.real(ow);
                    let mut best = f32::NEG_INFINITY;
                    let mut best_at = window_rows.start * xd.w + window_cols.start;
                    for ih in window_rows.clone() {
                        for iw in window_cols.clone() {
                            let v = x[layout.index(xd, n, c, ih, iw)];
                            if v > best || v.is_nan() {
                                best = v;
                                best_at = ih * xd.w + iw;
                            }
                        }
                    }
                    let out = layout.index(yd, n, c, oh, ow);
                    y[out] = best;
                    // Fits: checked above that every plane index fits u32.
                    argmax[out] = best_at as u32;
                }
            }
        }
    }
    Ok(())
}

/// Max-pooling backward: `dx[n,c,h,w] = Σ dy[n,c,oh,ow]` over the outputs whose `argmax`
/// is `h·W + w` (overlapping windows can pick the same input).
///
/// Shapes: `dy` and `argmax` are the output's shape, `dx` the input's, in `desc.layout`;
/// `dx` is overwritten. An `argmax` value outside the plane (≥ H·W) is an error, and
/// `dx` is then left untouched.
pub fn max_pool2d_backward(
    desc: &Pool2dDesc,
    dy: &[f32],
    argmax: &[u32],
    dx: &mut [f32],
) -> Result<()> {
    let (xd, yd) = checked_dims(desc)?;
    check_exact("max_pool2d dy", yd.len(), dy.len())?;
    check_exact("max_pool2d argmax", yd.len(), argmax.len())?;
    check_exact("max_pool2d dx", xd.len(), dx.len())?;
    let plane = xd.h * xd.w;
    let layout = desc.layout;
    let mut acc = vec![0.0f64; xd.len()];
    for n in 0..yd.n {
        for c in 0..yd.c {
            for oh in 0..yd.h {
                for ow in 0..yd.w {
                    let out = layout.index(yd, n, c, oh, ow);
                    let at = usize::try_from(argmax[out])
                        .ok()
                        .filter(|&at| at < plane)
                        .ok_or_else(|| {
                            KernelError::invalid(
                                "max_pool2d argmax",
                                format!(
                                    "index {} at output {out} is outside the {} × {} plane",
                                    argmax[out], xd.h, xd.w
                                ),
                            )
                        })?;
                    acc[layout.index(xd, n, c, at / xd.w, at % xd.w)] += f64::from(dy[out]);
                }
            }
        }
    }
    round_into(&acc, dx);
    Ok(())
}

/// The divisor of window `(oh, ow)`: its size clipped to the padded input when
/// `count_include_pad`, else the number of real inputs it covers.
fn avg_divisor(rows: Axis, cols: Axis, oh: usize, ow: usize, count_include_pad: bool) -> f64 {
    let count = if count_include_pad {
        rows.padded_len(oh) * cols.padded_len(ow)
    } else {
        rows.real(oh).len() * cols.real(ow).len()
    };
    count as f64
}

/// Average pooling: `y[n,c,oh,ow]` is the sum of the real inputs in window `(oh, ow)`
/// divided by the window size (clipped to the padded input) when `count_include_pad`,
/// or by the number of real inputs otherwise — PyTorch's `AvgPool2d` without
/// `divisor_override`.
///
/// Shapes: `x` is `batch × channels × input`, `y` is `batch × channels × output_hw()`,
/// both in `desc.layout`; `y` is overwritten.
pub fn avg_pool2d_forward(
    desc: &Pool2dDesc,
    count_include_pad: bool,
    x: &[f32],
    y: &mut [f32],
) -> Result<()> {
    let (xd, yd) = checked_dims(desc)?;
    check_exact("avg_pool2d x", xd.len(), x.len())?;
    check_exact("avg_pool2d y", yd.len(), y.len())?;
    let (rows, cols) = (Axis::of(desc, 0), Axis::of(desc, 1));
    let layout = desc.layout;
    for n in 0..yd.n {
        for c in 0..yd.c {
            for oh in 0..yd.h {
                for ow in 0..yd.w {
                    let mut sum = 0.0f64;
                    for ih in rows.real(oh) {
                        for iw in cols.real(ow) {
                            sum += f64::from(x[layout.index(xd, n, c, ih, iw)]);
                        }
                    }
                    let divisor = avg_divisor(rows, cols, oh, ow, count_include_pad);
                    y[layout.index(yd, n, c, oh, ow)] = (sum / divisor) as f32;
                }
            }
        }
    }
    Ok(())
}

/// Average-pooling backward: every real input of window `(oh, ow)` receives
/// `dy[n,c,oh,ow]` divided by that window's divisor (see [`avg_pool2d_forward`]); the
/// shares of overlapping windows add up.
///
/// Shapes: `dy` is the output's shape, `dx` the input's, in `desc.layout`; `dx` is
/// overwritten.
pub fn avg_pool2d_backward(
    desc: &Pool2dDesc,
    count_include_pad: bool,
    dy: &[f32],
    dx: &mut [f32],
) -> Result<()> {
    let (xd, yd) = checked_dims(desc)?;
    check_exact("avg_pool2d dy", yd.len(), dy.len())?;
    check_exact("avg_pool2d dx", xd.len(), dx.len())?;
    let (rows, cols) = (Axis::of(desc, 0), Axis::of(desc, 1));
    let layout = desc.layout;
    let mut acc = vec![0.0f64; xd.len()];
    for n in 0..yd.n {
        for c in 0..yd.c {
            for oh in 0..yd.h {
                for ow in 0..yd.w {
                    let divisor = avg_divisor(rows, cols, oh, ow, count_include_pad);
                    let share = f64::from(dy[layout.index(yd, n, c, oh, ow)]) / divisor;
                    for ih in rows.real(oh) {
                        for iw in cols.real(ow) {
                            acc[layout.index(xd, n, c, ih, iw)] += share;
                        }
                    }
                }
            }
        }
    }
    round_into(&acc, dx);
    Ok(())
}

/// Checks that `desc` is a global window: kernel equal to the input, no padding.
fn check_global(desc: &Pool2dDesc) -> Result<()> {
    if desc.kernel != desc.input || desc.padding != [0, 0] {
        return Err(KernelError::invalid(
            "global_avg_pool2d descriptor",
            format!(
                "needs kernel = input {:?} and no padding, got kernel {:?}, padding {:?}",
                desc.input, desc.kernel, desc.padding
            ),
        ));
    }
    Ok(())
}

/// Global average pooling: `y[n,c] = (1 / (H·W)) Σ_{h,w} x[n,c,h,w]`.
///
/// `desc` must be a global window ([`Pool2dDesc::global`]: kernel = input, no padding),
/// else [`KernelError::InvalidParameter`]. Shapes: `x` is `batch × channels × input` in
/// `desc.layout`; `y` has `batch × channels` elements (`batch × channels × 1 × 1`, the
/// same in both layouts) and is overwritten.
pub fn global_avg_pool2d_forward(desc: &Pool2dDesc, x: &[f32], y: &mut [f32]) -> Result<()> {
    let (xd, yd) = checked_dims(desc)?;
    check_global(desc)?;
    check_exact("global_avg_pool2d x", xd.len(), x.len())?;
    check_exact("global_avg_pool2d y", yd.len(), y.len())?;
    let count = (xd.h * xd.w) as f64;
    for n in 0..xd.n {
        for c in 0..xd.c {
            let mut sum = 0.0f64;
            for h in 0..xd.h {
                for w in 0..xd.w {
                    sum += f64::from(x[desc.layout.index(xd, n, c, h, w)]);
                }
            }
            y[desc.layout.index(yd, n, c, 0, 0)] = (sum / count) as f32;
        }
    }
    Ok(())
}

/// Global-average-pooling backward: `dx[n,c,h,w] = dy[n,c] / (H·W)`.
///
/// `desc` must be a global window, as in [`global_avg_pool2d_forward`]. Shapes: `dy` has
/// `batch × channels` elements, `dx` is `batch × channels × input` in `desc.layout` and is
/// overwritten.
pub fn global_avg_pool2d_backward(desc: &Pool2dDesc, dy: &[f32], dx: &mut [f32]) -> Result<()> {
    let (xd, yd) = checked_dims(desc)?;
    check_global(desc)?;
    check_exact("global_avg_pool2d dy", yd.len(), dy.len())?;
    check_exact("global_avg_pool2d dx", xd.len(), dx.len())?;
    let count = (xd.h * xd.w) as f64;
    for n in 0..xd.n {
        for c in 0..xd.c {
            let share = (f64::from(dy[desc.layout.index(yd, n, c, 0, 0)]) / count) as f32;
            for h in 0..xd.h {
                for w in 0..xd.w {
                    dx[desc.layout.index(xd, n, c, h, w)] = share;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Layout;
    use crate::reference::conv::tests::{dot, relayout, Rng};

    /// Descriptors with overlapping windows, padding, gaps between windows and
    /// rectangular shapes.
    fn descriptors() -> Vec<Pool2dDesc> {
        vec![
            Pool2dDesc::new(2, 3, [6, 7], [2, 2]),
            Pool2dDesc::new(1, 2, [7, 9], [3, 3])
                .stride([2, 2])
                .padding([1, 1]),
            Pool2dDesc::new(2, 2, [5, 6], [3, 2])
                .stride([1, 3])
                .padding([1, 0]),
            Pool2dDesc::new(1, 3, [8, 5], [2, 5])
                .stride([3, 1])
                .padding([1, 2]),
            Pool2dDesc::global(2, 3, [4, 5]),
        ]
    }

    #[test]
    fn max_pool_by_hand() {
        #[rustfmt::skip]
        let x = [
            1.0, 5.0, 2.0, 0.0,
            3.0, 4.0, 8.0, 8.0,
            -1.0, -2.0, 7.0, 6.0,
            -3.0, -4.0, 6.0, 7.0,
        ];
        let desc = Pool2dDesc::new(1, 1, [4, 4], [2, 2]);
        let (mut y, mut argmax) = ([f32::NAN; 4], [u32::MAX; 4]);
        max_pool2d_forward(&desc, &x, &mut y, &mut argmax).unwrap();
        assert_eq!(y, [5.0, 8.0, -1.0, 7.0]);
        // The tie 8, 8 goes to the first in row-major order; so does 7 vs 7.
        assert_eq!(argmax, [1, 6, 8, 10]);
        let mut dx = [f32::NAN; 16];
        max_pool2d_backward(&desc, &[1.0, 2.0, 3.0, 4.0], &argmax, &mut dx).unwrap();
        #[rustfmt::skip]
        let expected = [
            0.0, 1.0, 0.0, 0.0,
            0.0, 0.0, 2.0, 0.0,
            3.0, 0.0, 4.0, 0.0,
            0.0, 0.0, 0.0, 0.0,
        ];
        assert_eq!(dx, expected);
    }

    #[test]
    fn max_pool_overlapping_windows_accumulate() {
        // A 3-wide window at stride 1 over [0 9 1 2]: both windows pick the 9.
        let desc = Pool2dDesc::new(1, 1, [1, 4], [1, 3]).stride([1, 1]);
        let (mut y, mut argmax) = ([0.0; 2], [0; 2]);
        max_pool2d_forward(&desc, &[0.0, 9.0, 1.0, 2.0], &mut y, &mut argmax).unwrap();
        assert_eq!((y, argmax), ([9.0, 9.0], [1, 1]));
        let mut dx = [f32::NAN; 4];
        max_pool2d_backward(&desc, &[0.5, 0.25], &argmax, &mut dx).unwrap();
        assert_eq!(dx, [0.0, 0.75, 0.0, 0.0]);
    }

    #[test]
    fn max_pool_padding_never_wins_and_nan_propagates() {
        // 3 × 3 windows, stride 1, padding 1 over a 2 × 2 plane of -inf: every window
        // points at its first real position, never at the padding.
        let desc = Pool2dDesc::new(1, 1, [2, 2], [3, 3])
            .stride([1, 1])
            .padding([1, 1]);
        let (mut y, mut argmax) = ([0.0; 4], [u32::MAX; 4]);
        max_pool2d_forward(&desc, &[f32::NEG_INFINITY; 4], &mut y, &mut argmax).unwrap();
        assert_eq!(y, [f32::NEG_INFINITY; 4]);
        assert_eq!(argmax, [0; 4]);

        // All negative: padding (which would read as 0 if it were a value) is skipped.
        max_pool2d_forward(&desc, &[-4.0, -3.0, -2.0, -1.0], &mut y, &mut argmax).unwrap();
        assert_eq!(y, [-1.0; 4]);
        assert_eq!(argmax, [3; 4]);

        // NaN beats everything, including a later larger value; the last NaN gives the index.
        let desc = Pool2dDesc::new(1, 1, [1, 4], [1, 4]);
        let (mut y, mut argmax) = ([0.0], [u32::MAX]);
        max_pool2d_forward(&desc, &[1.0, f32::NAN, 5.0, 0.0], &mut y, &mut argmax).unwrap();
        assert!(y[0].is_nan());
        assert_eq!(argmax, [1]);
        let x = [f32::NAN, 2.0, f32::NAN, 7.0];
        max_pool2d_forward(&desc, &x, &mut y, &mut argmax).unwrap();
        assert!(y[0].is_nan());
        assert_eq!(argmax, [2]);
    }

    #[test]
    fn max_pool_argmax_out_of_range_is_an_error() {
        let desc = Pool2dDesc::new(1, 2, [2, 2], [2, 2]); // planes of 4, outputs 2
        let mut dx = [f32::NAN; 8];
        assert!(max_pool2d_backward(&desc, &[1.0, 1.0], &[3, 3], &mut dx).is_ok());
        for bad in [[3, 4], [u32::MAX, 0]] {
            let mut dx = [f32::NAN; 8];
            assert!(matches!(
                max_pool2d_backward(&desc, &[1.0, 1.0], &bad, &mut dx),
                Err(KernelError::InvalidParameter { .. })
            ));
            assert!(dx.iter().all(|v| v.is_nan()), "dx written on error");
        }
    }

    #[test]
    fn avg_pool_divisors_follow_pytorch() {
        // 3 × 3 windows, stride 2, padding 1 over a 3 × 3 plane of ones: the corner
        // window holds 4 real inputs among 9 positions.
        let desc = Pool2dDesc::new(1, 1, [3, 3], [3, 3])
            .stride([2, 2])
            .padding([1, 1]);
        let x = [1.0; 9];
        let mut y = [f32::NAN; 4];
        avg_pool2d_forward(&desc, true, &x, &mut y).unwrap();
        assert_eq!(y, [4.0 / 9.0; 4]);
        avg_pool2d_forward(&desc, false, &x, &mut y).unwrap();
        assert_eq!(y, [1.0; 4]);

        // Backward with dy = 1: the centre input is in all four windows.
        let mut dx = [f32::NAN; 9];
        avg_pool2d_backward(&desc, false, &[1.0; 4], &mut dx).unwrap();
        #[rustfmt::skip]
        let expected = [
            0.25, 0.5, 0.25,
            0.5, 1.0, 0.5,
            0.25, 0.5, 0.25,
        ];
        assert_eq!(dx, expected);
        avg_pool2d_backward(&desc, true, &[9.0; 4], &mut dx).unwrap();
        assert_eq!(dx, [1.0, 2.0, 1.0, 2.0, 4.0, 2.0, 1.0, 2.0, 1.0]);
    }

    #[test]
    fn global_average_is_the_plane_mean() {
        let desc = Pool2dDesc::global(1, 2, [2, 3]);
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, -6.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        let mut y = [f32::NAN; 2];
        global_avg_pool2d_forward(&desc, &x, &mut y).unwrap();
        assert_eq!(y, [3.5, -1.0]);
        let mut dx = [f32::NAN; 12];
        global_avg_pool2d_backward(&desc, &[6.0, 12.0], &mut dx).unwrap();
        assert_eq!(
            dx,
            [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]
        );
    }

    #[test]
    fn global_average_needs_a_global_window() {
        let not_global = [
            Pool2dDesc::new(1, 1, [4, 4], [2, 2]),
            Pool2dDesc::global(1, 1, [4, 4]).padding([1, 1]),
        ];
        for desc in not_global {
            // Correct lengths for the descriptor: only the window is wrong.
            let mut y = vec![0.0; desc.output_dims().unwrap().len()];
            let mut dx = [0.0; 16];
            assert!(matches!(
                global_avg_pool2d_forward(&desc, &dx, &mut y),
                Err(KernelError::InvalidParameter { .. })
            ));
            assert!(matches!(
                global_avg_pool2d_backward(&desc, &y, &mut dx),
                Err(KernelError::InvalidParameter { .. })
            ));
        }
    }

    /// The results of every pooling function of one descriptor, in NCHW.
    #[derive(Debug, PartialEq)]
    struct Run {
        max_y: Vec<f32>,
        argmax: Vec<u32>,
        max_dx: Vec<f32>,
        /// (y, dx) with `count_include_pad` false, then true.
        avg: [(Vec<f32>, Vec<f32>); 2],
        /// (y, dx) of the global average, when `desc` is a global window.
        global: Option<(Vec<f32>, Vec<f32>)>,
    }

    /// Every pooling function of `desc`, run on NCHW data in `desc.layout`, results
    /// returned in NCHW (argmax is a plane index, the same in both layouts).
    fn run_in_layout(desc: &Pool2dDesc, x: &[f32], dy: &[f32]) -> Run {
        let (xd, yd) = checked_dims(desc).unwrap();
        let to = desc.layout;
        let (x, dy) = (
            relayout(x, xd, Layout::Nchw, to),
            relayout(dy, yd, Layout::Nchw, to),
        );
        let y_back = |v: &[f32]| relayout(v, yd, to, Layout::Nchw);
        let dx_back = |v: &[f32]| relayout(v, xd, to, Layout::Nchw);
        let (mut y, mut dx) = (vec![f32::NAN; yd.len()], vec![f32::NAN; xd.len()]);

        let mut argmax = vec![u32::MAX; yd.len()];
        max_pool2d_forward(desc, &x, &mut y, &mut argmax).unwrap();
        max_pool2d_backward(desc, &dy, &argmax, &mut dx).unwrap();
        let argmax = relayout(&argmax, yd, to, Layout::Nchw);
        let (max_y, max_dx) = (y_back(&y), dx_back(&dx));

        let mut avg = |count_include_pad| {
            avg_pool2d_forward(desc, count_include_pad, &x, &mut y).unwrap();
            avg_pool2d_backward(desc, count_include_pad, &dy, &mut dx).unwrap();
            (y_back(&y), dx_back(&dx))
        };
        let avg = [avg(false), avg(true)];

        let global = check_global(desc).is_ok().then(|| {
            global_avg_pool2d_forward(desc, &x, &mut y).unwrap();
            global_avg_pool2d_backward(desc, &dy, &mut dx).unwrap();
            (y_back(&y), dx_back(&dx))
        });
        Run {
            max_y,
            argmax,
            max_dx,
            avg,
            global,
        }
    }

    #[test]
    fn nhwc_matches_nchw() {
        let mut rng = Rng::new(11);
        for desc in descriptors() {
            let (xd, yd) = checked_dims(&desc).unwrap();
            let x = rng.vec(xd.len());
            let dy = rng.vec(yd.len());
            let nchw = run_in_layout(&desc, &x, &dy);
            let nhwc = run_in_layout(&desc.layout(Layout::Nhwc), &x, &dy);
            assert_eq!(nchw, nhwc, "{desc:?}");
        }
    }

    /// Given its argmax, max pooling is linear in x, and average pooling is linear: each
    /// backward pass is the adjoint of its forward pass, <pool(x), dy> = <x, dx(dy)>.
    /// The global average agrees with the average over a global window.
    #[test]
    fn backward_passes_are_adjoints_of_forward() {
        let mut rng = Rng::new(12);
        for desc in descriptors() {
            let (xd, yd) = checked_dims(&desc).unwrap();
            let x = rng.vec(xd.len());
            let dy = rng.vec(yd.len());
            let run = run_in_layout(&desc, &x, &dy);
            let [(y_ex, dx_ex), (y_in, dx_in)] = &run.avg;
            for (what, y, dx) in [
                ("max", &run.max_y, &run.max_dx),
                ("avg exclude pad", y_ex, dx_ex),
                ("avg include pad", y_in, dx_in),
            ] {
                let (forward, mag) = dot(y, &dy);
                let (adjoint, _) = dot(&x, dx);
                assert!(
                    (forward - adjoint).abs() <= 1e-6 * mag,
                    "{desc:?} {what}: {forward} vs {adjoint}"
                );
            }
            if let Some(global) = &run.global {
                assert_eq!(global, &run.avg[0], "{desc:?}");
                assert_eq!(global, &run.avg[1], "{desc:?}");
            }
        }
    }

    #[test]
    fn bad_lengths_and_descriptors_are_errors() {
        let desc = Pool2dDesc::new(1, 2, [4, 4], [2, 2]); // x 32, y 8
        let (x, dy, am) = (vec![0.0; 32], vec![0.0; 8], vec![0u32; 8]);
        let (mut y, mut argmax, mut dx) = (vec![0.0; 8], vec![0u32; 8], vec![0.0; 32]);
        let is_shape = |r: Result<()>| matches!(r, Err(KernelError::ShapeMismatch { .. }));

        assert!(max_pool2d_forward(&desc, &x, &mut y, &mut argmax).is_ok());
        assert!(is_shape(max_pool2d_forward(
            &desc,
            &x[1..],
            &mut y,
            &mut argmax
        )));
        assert!(is_shape(max_pool2d_forward(
            &desc,
            &x,
            &mut y[1..],
            &mut argmax
        )));
        assert!(is_shape(max_pool2d_forward(
            &desc,
            &x,
            &mut y,
            &mut argmax[1..]
        )));
        assert!(max_pool2d_backward(&desc, &dy, &am, &mut dx).is_ok());
        assert!(is_shape(max_pool2d_backward(&desc, &dy[1..], &am, &mut dx)));
        assert!(is_shape(max_pool2d_backward(&desc, &dy, &am[1..], &mut dx)));
        assert!(is_shape(max_pool2d_backward(&desc, &dy, &am, &mut dx[1..])));

        for include in [false, true] {
            assert!(avg_pool2d_forward(&desc, include, &x, &mut y).is_ok());
            assert!(is_shape(avg_pool2d_forward(
                &desc,
                include,
                &x[1..],
                &mut y
            )));
            assert!(is_shape(avg_pool2d_forward(
                &desc,
                include,
                &x,
                &mut y[1..]
            )));
            assert!(avg_pool2d_backward(&desc, include, &dy, &mut dx).is_ok());
            assert!(is_shape(avg_pool2d_backward(
                &desc,
                include,
                &dy[1..],
                &mut dx
            )));
            assert!(is_shape(avg_pool2d_backward(
                &desc,
                include,
                &dy,
                &mut dx[1..]
            )));
        }

        let global = Pool2dDesc::global(1, 2, [4, 4]);
        let (gy, mut gy_out) = ([0.0; 2], [0.0; 2]);
        assert!(global_avg_pool2d_forward(&global, &x, &mut gy_out).is_ok());
        assert!(is_shape(global_avg_pool2d_forward(
            &global,
            &x[1..],
            &mut gy_out
        )));
        assert!(is_shape(global_avg_pool2d_forward(
            &global,
            &x,
            &mut gy_out[1..]
        )));
        assert!(global_avg_pool2d_backward(&global, &gy, &mut dx).is_ok());
        assert!(is_shape(global_avg_pool2d_backward(
            &global,
            &gy[1..],
            &mut dx
        )));
        assert!(is_shape(global_avg_pool2d_backward(
            &global,
            &gy,
            &mut dx[1..]
        )));

        let bad = desc.stride([0, 2]);
        assert!(max_pool2d_forward(&bad, &x, &mut y, &mut argmax).is_err());
        assert!(max_pool2d_backward(&bad, &dy, &am, &mut dx).is_err());
        assert!(avg_pool2d_forward(&bad, true, &x, &mut y).is_err());
        assert!(avg_pool2d_backward(&bad, true, &dy, &mut dx).is_err());
    }
}
