//! Per-thread scratch memory, and the layout of NCHW planes copied into it with their
//! column padding made real, so that vector blocks reach every output — edge windows
//! included — with plain loads.
//!
//! A padded row holds `padding` fill values, the `W` inputs, then `padding + slack` fill
//! values; the slack lets the last block of a row run past the last window. Row padding
//! needs no copy: kernels visit only the real rows of a window.

use super::super::geometry::Geometry;
use std::cell::RefCell;

thread_local! {
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's scratch buffer of `len` floats (contents unspecified). A
/// nested call on the same thread (a rayon task stolen while waiting) gets a fresh
/// buffer.
pub(crate) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buffer) => {
            if buffer.len() < len {
                buffer.resize(len, 0.0);
            }
            f(&mut buffer[..len])
        }
        Err(_) => f(&mut vec![0.0; len]),
    })
}

/// The layout of a padded plane.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PaddedPlane {
    /// Floats per padded row.
    pub stride: usize,
    /// Floats of the whole plane.
    pub len: usize,
}

impl PaddedPlane {
    /// The layout for blocks of `lanes` outputs starting at every multiple of `lanes`:
    /// the last one may start at output `OW − 1` and read `extent` inputs from there.
    pub fn new(g: &Geometry, lanes: usize, extent: usize) -> PaddedPlane {
        let last_start = g.cols.output.div_ceil(lanes) * lanes - lanes;
        let reach = (last_start * g.cols.stride + extent).max(g.cols.input + 2 * g.cols.padding);
        PaddedPlane {
            stride: reach,
            len: reach * g.rows.input,
        }
    }
}
