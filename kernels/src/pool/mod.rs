//! Max, average and global-average pooling, forward and backward, NCHW or NHWC.
//!
//! Semantics are PyTorch's (`MaxPool2d`, `AvgPool2d` with `ceil_mode = false`, global
//! average pooling) and those of the oracle in [`crate::reference`]: max pooling keeps the
//! first of tied maxima, lets NaN through, and records as argmax the position `h·W + w`
//! of the chosen input in its plane.
//!
//! Each operation has a function on the process's ISA path ([`Isa::selected`]) and an
//! `_on` twin that takes the path explicitly; both take a [`Parallelism`]. Results are
//! bitwise identical for every thread count, and on every ISA path: all paths sum in
//! f32 in the same order (forward: window rows, then columns; backward: windows in
//! output order) — except the NCHW global average, whose plane sums each path splits its
//! own way.
//!
//! How the work is cut (see `kernels/`): NCHW runs one plane at a time with vectors
//! along the output width. The common 2 × 2, stride-2 window reads the plane directly —
//! two loads and two shuffles per 8 outputs and window row, and for the gradient each
//! output's dy written straight to the input its argmax names. On AVX2, other windows
//! go through padded copies (of the plane forward, of the output rows backward) so that
//! edge windows run in the vector blocks too, and the gradient is a gather: each input
//! sums its windows in registers. NHWC runs one output row (forward) or input row
//! (backward) at a time with vectors along the channels; its gradient is a gather as
//! well. No pass needs atomics, and threads split planes or rows, never a sum.
//!
//! Max pooling's argmax is a u32 plane position, so planes need fewer than 2³²
//! positions.

mod desc;
mod driver;
mod geometry;
mod kernels;

pub use desc::Pool2dDesc;

use crate::arch::Isa;
use crate::error::{check_exact, KernelError, Result};
use crate::layout::{Dims4, Layout};
use crate::parallel::Parallelism;
use driver::{for_each_unit, Chunks};
use geometry::Geometry;
use kernels::Kernels;

/// Checks the call's path, threads and descriptor; returns the kernels and the input and
/// output sizes.
fn prepare(
    isa: Isa,
    desc: &Pool2dDesc,
    par: Parallelism,
) -> Result<(&'static Kernels, Dims4, Dims4)> {
    isa.check_available()?;
    par.validate()?;
    desc.validate()?;
    Ok((
        kernels::for_isa(isa),
        desc.input_dims(),
        desc.output_dims()?,
    ))
}

/// The geometry of one unit's image: an NCHW plane, or an NHWC image.
fn geometry(desc: &Pool2dDesc, yd: Dims4) -> Geometry {
    let channels = match desc.layout {
        Layout::Nchw => 1,
        Layout::Nhwc => yd.c,
    };
    Geometry::new(desc, [yd.h, yd.w], channels)
}

/// Elements a unit touches: a plane's input and `outputs` output slices (NCHW), or for
/// an NHWC output row, the input rows of one window row and the outputs.
fn unit_elements(desc: &Pool2dDesc, g: &Geometry, outputs: usize) -> usize {
    match desc.layout {
        Layout::Nchw => g.input_len() + outputs * g.output_len(),
        Layout::Nhwc => g.rows.kernel * g.input_row_len() + outputs * g.output_row_len(),
    }
}

/// Max pooling on the selected ISA path: `y[n,c,oh,ow]` is the largest input in window
/// `(oh, ow)` of plane `(n, c)` and `argmax` its position `h·W + w` in that plane.
///
/// Scan order is row-major over the window and a value replaces the running max when it
/// is greater or NaN (PyTorch's CPU rule): ties keep the first maximum, NaN propagates
/// (the last NaN of the window gives the index), and a window of `-inf` points at its
/// first real position.
///
/// Shapes: `x` is `batch × channels × input` in `desc.layout`; `y` and `argmax` are
/// `batch × channels × output_hw()` in `desc.layout`, overwritten. Errors
/// ([`KernelError`]): a bad descriptor or [`Parallelism`], a slice of the wrong length,
/// or a plane of 2³² positions or more (its indices would not fit `u32`).
///
/// ```
/// use axonal_kernels::pool::{max_pool2d_forward, Pool2dDesc};
/// use axonal_kernels::Parallelism;
/// let desc = Pool2dDesc::new(1, 1, [2, 4], [2, 2]);
/// let x = [1.0, 5.0, 2.0, 0.0,
///          3.0, 4.0, 8.0, 8.0];
/// let (mut y, mut argmax) = ([0.0; 2], [0; 2]);
/// max_pool2d_forward(&desc, &x, &mut y, &mut argmax, Parallelism::Sequential)?;
/// assert_eq!((y, argmax), ([5.0, 8.0], [1, 6]));
/// # Ok::<(), axonal_kernels::KernelError>(())
/// ```
pub fn max_pool2d_forward(
    desc: &Pool2dDesc,
    x: &[f32],
    y: &mut [f32],
    argmax: &mut [u32],
    par: Parallelism,
) -> Result<()> {
    max_pool2d_forward_on(Isa::selected()?, desc, x, y, argmax, par)
}

/// [`max_pool2d_forward`] on an explicit ISA path (an error if this CPU cannot run it).
pub fn max_pool2d_forward_on(
    isa: Isa,
    desc: &Pool2dDesc,
    x: &[f32],
    y: &mut [f32],
    argmax: &mut [u32],
    par: Parallelism,
) -> Result<()> {
    let (k, xd, yd) = prepare(isa, desc, par)?;
    check_exact("max_pool2d x", xd.len(), x.len())?;
    check_exact("max_pool2d y", yd.len(), y.len())?;
    check_exact("max_pool2d argmax", yd.len(), argmax.len())?;
    check_plane(xd)?;
    let g = geometry(desc, yd);
    let work = unit_elements(desc, &g, 2);
    match desc.layout {
        Layout::Nchw => {
            let (y, am) = (
                Chunks::new(y, g.output_len()),
                Chunks::new(argmax, g.output_len()),
            );
            for_each_unit(par, xd.n * xd.c, work, y, am, |plane, y, am| {
                (k.max_fwd_nchw)(&g, image(x, plane, g.input_len()), y, am);
                0
            });
        }
        Layout::Nhwc => {
            let row_len = g.output_row_len();
            let (y, am) = (Chunks::new(y, row_len), Chunks::new(argmax, row_len));
            for_each_unit(par, yd.n * yd.h, work, y, am, |row, y, am| {
                let (n, oh) = (row / yd.h, row % yd.h);
                (k.max_fwd_nhwc)(&g, image(x, n, g.input_len()), oh, y, am);
                0
            });
        }
    }
    Ok(())
}

/// Max pooling's argmax indices are u32 plane positions, and `u32::MAX` marks "no
/// window" inside the kernels: planes need fewer than 2³² positions.
fn check_plane(xd: Dims4) -> Result<()> {
    if u32::try_from(xd.h * xd.w).is_err() {
        return Err(KernelError::invalid(
            "max_pool2d input",
            format!(
                "a plane of {} × {} positions does not fit u32 argmax indices",
                xd.h, xd.w
            ),
        ));
    }
    Ok(())
}

/// Image `i` of `len` elements of a batch.
fn image(data: &[f32], i: usize, len: usize) -> &[f32] {
    &data[i * len..(i + 1) * len]
}

/// Max-pooling backward on the selected ISA path: `dx[n,c,h,w] = Σ dy[n,c,oh,ow]` over
/// the outputs whose `argmax` is `h·W + w`, summed in output order (overlapping windows
/// can pick the same input).
///
/// Shapes: `dy` and `argmax` are the output's shape, `dx` the input's, in `desc.layout`;
/// `dx` is overwritten. `argmax` must come from [`max_pool2d_forward`] with the same
/// descriptor: an index that is not a position of its own window (outside the plane, or
/// in the plane but outside the window) is an error, and `dx` is then unspecified. So is
/// a plane of 2³² positions or more.
pub fn max_pool2d_backward(
    desc: &Pool2dDesc,
    dy: &[f32],
    argmax: &[u32],
    dx: &mut [f32],
    par: Parallelism,
) -> Result<()> {
    max_pool2d_backward_on(Isa::selected()?, desc, dy, argmax, dx, par)
}

/// [`max_pool2d_backward`] on an explicit ISA path (an error if this CPU cannot run it).
pub fn max_pool2d_backward_on(
    isa: Isa,
    desc: &Pool2dDesc,
    dy: &[f32],
    argmax: &[u32],
    dx: &mut [f32],
    par: Parallelism,
) -> Result<()> {
    let (k, xd, yd) = prepare(isa, desc, par)?;
    check_exact("max_pool2d dy", yd.len(), dy.len())?;
    check_exact("max_pool2d argmax", yd.len(), argmax.len())?;
    check_exact("max_pool2d dx", xd.len(), dx.len())?;
    check_plane(xd)?;
    let g = geometry(desc, yd);
    let work = unit_elements(desc, &g, 2);
    let out_len = g.output_len();
    let am_image = |i: usize| &argmax[i * out_len..(i + 1) * out_len];
    // Each kernel counts the outputs whose argmax it found in their window; every output
    // is found exactly once when, and only when, every argmax is a position of its window.
    let matched = match desc.layout {
        Layout::Nchw => {
            let dx = Chunks::new(dx, g.input_len());
            for_each_unit(
                par,
                xd.n * xd.c,
                work,
                dx,
                Chunks::<u32>::none(),
                |plane, dx, _| (k.max_bwd_nchw)(&g, image(dy, plane, out_len), am_image(plane), dx),
            )
        }
        Layout::Nhwc => {
            let dx = Chunks::new(dx, g.input_row_len());
            for_each_unit(
                par,
                xd.n * xd.h,
                work,
                dx,
                Chunks::<u32>::none(),
                |row, dx, _| {
                    let (n, ih) = (row / xd.h, row % xd.h);
                    (k.max_bwd_nhwc)(&g, image(dy, n, out_len), am_image(n), ih, dx)
                },
            )
        }
    };
    if matched != yd.len() {
        return Err(misplaced_argmax(desc, xd, yd, argmax));
    }
    Ok(())
}

/// The error for an argmax that is not a position of its window, naming the first one.
fn misplaced_argmax(desc: &Pool2dDesc, xd: Dims4, yd: Dims4, argmax: &[u32]) -> KernelError {
    let g = Geometry::new(desc, [yd.h, yd.w], 1);
    for n in 0..yd.n {
        for c in 0..yd.c {
            for oh in 0..yd.h {
                for ow in 0..yd.w {
                    let out = desc.layout.index(yd, n, c, oh, ow);
                    let at = argmax[out] as usize;
                    let inside = g.rows.real(oh).contains(&(at / xd.w))
                        && g.cols.real(ow).contains(&(at % xd.w));
                    if !inside {
                        return KernelError::invalid(
                            "max_pool2d argmax",
                            format!(
                                "index {at} at output {out} is not a position of window \
                                 ({oh}, {ow}) of the {} × {} plane",
                                xd.h, xd.w
                            ),
                        );
                    }
                }
            }
        }
    }
    KernelError::invalid(
        "max_pool2d argmax",
        "some index is not a position of its window",
    )
}

/// Average pooling on the selected ISA path: `y[n,c,oh,ow]` is the sum of the real inputs
/// in window `(oh, ow)` divided by the window size (clipped to the padded input) when
/// `count_include_pad`, or by the number of real inputs otherwise — PyTorch's
/// `AvgPool2d` without `divisor_override`. Sums run in f32, window rows then columns.
///
/// Shapes: `x` is `batch × channels × input`, `y` is `batch × channels × output_hw()`,
/// both in `desc.layout`; `y` is overwritten.
pub fn avg_pool2d_forward(
    desc: &Pool2dDesc,
    count_include_pad: bool,
    x: &[f32],
    y: &mut [f32],
    par: Parallelism,
) -> Result<()> {
    avg_pool2d_forward_on(Isa::selected()?, desc, count_include_pad, x, y, par)
}

/// [`avg_pool2d_forward`] on an explicit ISA path (an error if this CPU cannot run it).
pub fn avg_pool2d_forward_on(
    isa: Isa,
    desc: &Pool2dDesc,
    count_include_pad: bool,
    x: &[f32],
    y: &mut [f32],
    par: Parallelism,
) -> Result<()> {
    let (k, xd, yd) = prepare(isa, desc, par)?;
    check_exact("avg_pool2d x", xd.len(), x.len())?;
    check_exact("avg_pool2d y", yd.len(), y.len())?;
    let g = geometry(desc, yd);
    let work = unit_elements(desc, &g, 1);
    let none = Chunks::<u32>::none();
    match desc.layout {
        Layout::Nchw => {
            let y = Chunks::new(y, g.output_len());
            for_each_unit(par, xd.n * xd.c, work, y, none, |plane, y, _| {
                (k.avg_fwd_nchw)(&g, count_include_pad, image(x, plane, g.input_len()), y);
                0
            });
        }
        Layout::Nhwc => {
            let y = Chunks::new(y, g.output_row_len());
            for_each_unit(par, yd.n * yd.h, work, y, none, |row, y, _| {
                let (n, oh) = (row / yd.h, row % yd.h);
                let x = image(x, n, g.input_len());
                (k.avg_fwd_nhwc)(&g, count_include_pad, x, oh, y);
                0
            });
        }
    }
    Ok(())
}

/// Average-pooling backward on the selected ISA path: every real input of window
/// `(oh, ow)` receives `dy[n,c,oh,ow]` divided by that window's divisor (see
/// [`avg_pool2d_forward`]); the shares of overlapping windows add up, in output order.
///
/// Shapes: `dy` is the output's shape, `dx` the input's, in `desc.layout`; `dx` is
/// overwritten.
pub fn avg_pool2d_backward(
    desc: &Pool2dDesc,
    count_include_pad: bool,
    dy: &[f32],
    dx: &mut [f32],
    par: Parallelism,
) -> Result<()> {
    avg_pool2d_backward_on(Isa::selected()?, desc, count_include_pad, dy, dx, par)
}

/// [`avg_pool2d_backward`] on an explicit ISA path (an error if this CPU cannot run it).
pub fn avg_pool2d_backward_on(
    isa: Isa,
    desc: &Pool2dDesc,
    count_include_pad: bool,
    dy: &[f32],
    dx: &mut [f32],
    par: Parallelism,
) -> Result<()> {
    let (k, xd, yd) = prepare(isa, desc, par)?;
    check_exact("avg_pool2d dy", yd.len(), dy.len())?;
    check_exact("avg_pool2d dx", xd.len(), dx.len())?;
    let g = geometry(desc, yd);
    let work = unit_elements(desc, &g, 1);
    let out_len = g.output_len();
    let none = Chunks::<u32>::none();
    match desc.layout {
        Layout::Nchw => {
            let dx = Chunks::new(dx, g.input_len());
            for_each_unit(par, xd.n * xd.c, work, dx, none, |plane, dx, _| {
                (k.avg_bwd_nchw)(&g, count_include_pad, image(dy, plane, out_len), dx);
                0
            });
        }
        Layout::Nhwc => {
            let dx = Chunks::new(dx, g.input_row_len());
            for_each_unit(par, xd.n * xd.h, work, dx, none, |row, dx, _| {
                let (n, ih) = (row / xd.h, row % xd.h);
                (k.avg_bwd_nhwc)(&g, count_include_pad, image(dy, n, out_len), ih, dx);
                0
            });
        }
    }
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

/// Global average pooling on the selected ISA path: `y[n,c] = (Σ_{h,w} x[n,c,h,w]) / (H·W)`,
/// summed in f32.
///
/// `desc` must be a global window ([`Pool2dDesc::global`]: kernel = input, no padding),
/// else [`KernelError::InvalidParameter`]. Shapes: `x` is `batch × channels × input` in
/// `desc.layout`; `y` has `batch × channels` elements (the same in both layouts) and is
/// overwritten.
pub fn global_avg_pool2d_forward(
    desc: &Pool2dDesc,
    x: &[f32],
    y: &mut [f32],
    par: Parallelism,
) -> Result<()> {
    global_avg_pool2d_forward_on(Isa::selected()?, desc, x, y, par)
}

/// [`global_avg_pool2d_forward`] on an explicit ISA path (an error if this CPU cannot
/// run it).
pub fn global_avg_pool2d_forward_on(
    isa: Isa,
    desc: &Pool2dDesc,
    x: &[f32],
    y: &mut [f32],
    par: Parallelism,
) -> Result<()> {
    let (k, xd, yd) = prepare(isa, desc, par)?;
    check_global(desc)?;
    check_exact("global_avg_pool2d x", xd.len(), x.len())?;
    check_exact("global_avg_pool2d y", yd.len(), y.len())?;
    let plane = xd.h * xd.w;
    let count = plane as f32;
    let none = Chunks::<u32>::none();
    match desc.layout {
        Layout::Nchw => {
            for_each_unit(
                par,
                xd.n * xd.c,
                plane + 1,
                Chunks::new(y, 1),
                none,
                |p, y, _| {
                    y[0] = (k.plane_sum)(image(x, p, plane)) / count;
                    0
                },
            );
        }
        Layout::Nhwc => {
            let image_len = plane * xd.c;
            let y = Chunks::new(y, xd.c);
            for_each_unit(par, xd.n, image_len + xd.c, y, none, |n, y, _| {
                (k.pixel_sums)(xd.c, image(x, n, image_len), y);
                y.iter_mut().for_each(|s| *s /= count);
                0
            });
        }
    }
    Ok(())
}

/// Global-average-pooling backward on the selected ISA path:
/// `dx[n,c,h,w] = dy[n,c] / (H·W)`.
///
/// `desc` must be a global window, as in [`global_avg_pool2d_forward`]. Shapes: `dy` has
/// `batch × channels` elements, `dx` is `batch × channels × input` in `desc.layout` and
/// is overwritten. A broadcast store, the same on every path.
pub fn global_avg_pool2d_backward(
    desc: &Pool2dDesc,
    dy: &[f32],
    dx: &mut [f32],
    par: Parallelism,
) -> Result<()> {
    global_avg_pool2d_backward_on(Isa::selected()?, desc, dy, dx, par)
}

/// [`global_avg_pool2d_backward`] on an explicit ISA path (an error if this CPU cannot
/// run it).
pub fn global_avg_pool2d_backward_on(
    isa: Isa,
    desc: &Pool2dDesc,
    dy: &[f32],
    dx: &mut [f32],
    par: Parallelism,
) -> Result<()> {
    let (_, xd, yd) = prepare(isa, desc, par)?;
    check_global(desc)?;
    check_exact("global_avg_pool2d dy", yd.len(), dy.len())?;
    check_exact("global_avg_pool2d dx", xd.len(), dx.len())?;
    let plane = xd.h * xd.w;
    let count = plane as f32;
    let none = Chunks::<u32>::none();
    match desc.layout {
        Layout::Nchw => {
            for_each_unit(
                par,
                xd.n * xd.c,
                plane + 1,
                Chunks::new(dx, plane),
                none,
                |p, dx, _| {
                    dx.fill(dy[p] / count);
                    0
                },
            );
        }
        Layout::Nhwc => {
            let image_len = plane * xd.c;
            let dx = Chunks::new(dx, image_len);
            for_each_unit(par, xd.n, image_len + xd.c, dx, none, |n, dx, _| {
                let (first, rest) = dx.split_at_mut(xd.c);
                for (d, &g) in first.iter_mut().zip(&dy[n * xd.c..(n + 1) * xd.c]) {
                    *d = g / count;
                }
                for pixel in rest.chunks_exact_mut(xd.c) {
                    pixel.copy_from_slice(first);
                }
                0
            });
        }
    }
    Ok(())
}
