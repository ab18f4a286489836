//! The pooling kernels of each ISA path, as one table of functions per path.
//!
//! A kernel does one unit of work on one image ([`Geometry`]): an NCHW plane (vectors run
//! along the output width) or an NHWC row (vectors run along the channels). The driver
//! in `pool/mod.rs` validates, splits the units among threads and picks the table;
//! nothing here sees a thread or a user error.
//!
//! - `scalar`: plain Rust; also the edge and channel-tail code of the vector paths.
//! - `neon_4lane`: 4 lanes on `wide::f32x4`; NCHW edge windows and non-2 × 2 gradients
//!   run on the scalar code.
//! - `avx2`: 8 lanes; every NCHW output in the vector blocks (see its module).
//!
//! Max-pooling gradient kernels count the outputs whose argmax they found in their
//! window: the driver's check that every argmax names a position of its window, at no
//! extra pass.

#[cfg(target_arch = "x86_64")]
mod avx2;
mod neon_4lane;
mod padded;
mod scalar;

use super::geometry::Geometry;
use crate::arch::Isa;
use std::ops::Range;

/// One ISA path's kernels. Slices are exactly one unit long: an input image (`x`, or
/// `dy` and `am` of a backward pass's output image), an output plane or row (`y`, `am`),
/// an input plane or row (`dx`).
pub(crate) struct Kernels {
    pub max_fwd_nchw: MaxFwdNchw,
    pub max_fwd_nhwc: MaxFwdNhwc,
    pub avg_fwd_nchw: AvgNchw,
    pub avg_fwd_nhwc: AvgNhwc,
    pub max_bwd_nchw: MaxBwdNchw,
    pub max_bwd_nhwc: MaxBwdNhwc,
    pub avg_bwd_nchw: AvgNchw,
    pub avg_bwd_nhwc: AvgNhwc,
    /// The sum of a plane.
    pub plane_sum: fn(x: &[f32]) -> f32,
    /// Per-channel sums over the pixels of an NHWC image: `y` holds `channels` values.
    pub pixel_sums: fn(channels: usize, x: &[f32], y: &mut [f32]),
}

/// Max pooling of an NCHW plane: `y` and `am` are `OH × OW`.
pub(crate) type MaxFwdNchw = fn(g: &Geometry, x: &[f32], y: &mut [f32], am: &mut [u32]);

/// Max pooling of NHWC output row `oh`: `y` and `am` are `OW × C`.
pub(crate) type MaxFwdNhwc = fn(g: &Geometry, x: &[f32], oh: usize, y: &mut [f32], am: &mut [u32]);

/// Max-pooling gradient of an NCHW plane (`dx` is `H × W`); returns how many outputs
/// found their argmax in their window (all of them for a valid argmax).
pub(crate) type MaxBwdNchw = fn(g: &Geometry, dy: &[f32], am: &[u32], dx: &mut [f32]) -> usize;

/// Max-pooling gradient of NHWC input row `ih` (`dx` is `W × C`); returns how many
/// (output, channel) pairs found their argmax in this row, in their window.
pub(crate) type MaxBwdNhwc =
    fn(g: &Geometry, dy: &[f32], am: &[u32], ih: usize, dx: &mut [f32]) -> usize;

/// Average pooling of an NCHW plane, forward (`input` is x, `output` the `OH × OW` y) or
/// backward (`input` is dy, `output` the `H × W` dx).
pub(crate) type AvgNchw =
    fn(g: &Geometry, count_include_pad: bool, input: &[f32], output: &mut [f32]);

/// Average pooling of one NHWC row: output row `row` of y from x (forward) or input row
/// `row` of dx from dy (backward).
pub(crate) type AvgNhwc =
    fn(g: &Geometry, count_include_pad: bool, input: &[f32], row: usize, output: &mut [f32]);

/// Walks the window rows of a plane whose window rows are disjoint, in order:
/// `covered(oh, rows, dx)` for window row `oh` and the input rows it covers (`dx` is the
/// whole plane: rows below `rows` final, rows above not yet written); rows that no
/// window covers get a zero gradient. Needs no division per row, unlike
/// [`Axis::windows_of`](super::geometry::Axis::windows_of).
pub(crate) fn for_each_window_row(
    g: &Geometry,
    dx: &mut [f32],
    mut covered: impl FnMut(usize, Range<usize>, &mut [f32]),
) {
    let w = g.cols.input;
    let mut next = 0;
    for oh in 0..g.rows.output {
        let rows = g.rows.real(oh);
        dx[next * w..rows.start * w].fill(0.0);
        next = rows.end;
        covered(oh, rows, dx);
    }
    dx[next * w..].fill(0.0);
}

/// The kernels of `isa`, which the caller has checked this CPU runs.
pub(crate) fn for_isa(isa: Isa) -> &'static Kernels {
    match isa {
        Isa::Scalar => &scalar::KERNELS,
        Isa::Neon => &neon_4lane::KERNELS,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => &avx2::KERNELS,
        // Never reached: AVX2 is unavailable off x86_64, which the caller has checked.
        #[cfg(not(target_arch = "x86_64"))]
        Isa::Avx2 => &scalar::KERNELS,
    }
}
