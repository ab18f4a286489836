//! The store step: merging a computed tile into C with the epilogue.
//!
//! C is split into tiles that different threads write at the same time, with arbitrary
//! strides, so it is reached through a raw pointer ([`COut`]); each tile store turns its
//! own rows into ordinary slices and merges them with safe code.

use super::epilogue::{Bias, Epilogue};
use crate::eltwise::{activate, Activation};

/// C, shared by the threads that each write their own disjoint tiles.
#[derive(Clone, Copy)]
pub(crate) struct COut {
    ptr: *mut f32,
    len: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

// SAFETY: `COut` is only a way to hand the same C to several threads; every access goes
// through `store_tile`, whose callers guarantee that the tiles they store are disjoint.
unsafe impl Send for COut {}
// SAFETY: as above.
unsafe impl Sync for COut {}

impl COut {
    /// C with the given strides; the caller has validated them against `c.len()`.
    pub fn new(c: &mut [f32], row_stride: usize, col_stride: usize) -> Self {
        COut {
            ptr: c.as_mut_ptr(),
            len: c.len(),
            row_stride,
            col_stride,
        }
    }

    /// Address of element (i, j); dereferencing it is the caller's business.
    pub fn element_ptr(&self, i: usize, j: usize) -> *mut f32 {
        self.ptr
            .wrapping_add(i * self.row_stride + j * self.col_stride)
    }

    /// The same memory seen as Cᵀ.
    pub fn transposed(self) -> Self {
        COut {
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }
}

/// What a tile store does with the old value of C and whether the epilogue ends it.
#[derive(Clone, Copy)]
pub(crate) struct StoreStep<'e> {
    /// The first K block: C is combined with beta (or not read when beta is 0).
    pub first: bool,
    /// The last K block: add the bias and apply the activation.
    pub last: bool,
    pub epilogue: &'e Epilogue<'e>,
}

/// A tile position: rows `i0 .. i0 + rows`, columns `j0 .. j0 + cols` of C.
#[derive(Clone, Copy)]
pub(crate) struct TilePos {
    pub i0: usize,
    pub j0: usize,
    pub rows: usize,
    pub cols: usize,
}

/// Merges the `pos.rows × pos.cols` corner of `tile` (row-major, row length `nr`) into C.
///
/// # Safety
/// Every element `(pos.i0 + i) · row_stride + (pos.j0 + j) · col_stride` of the tile lies
/// inside the slice `c` was made from, that slice outlives the call, and no other thread
/// reads or writes these elements during the call.
pub(crate) unsafe fn store_tile(
    c: COut,
    pos: TilePos,
    tile: &[f32],
    nr: usize,
    step: StoreStep<'_>,
) {
    let (rs, cs) = (c.row_stride, c.col_stride);
    for i in 0..pos.rows {
        let row_bias = match step.epilogue.bias {
            Bias::PerRow(b) if step.last => b[pos.i0 + i],
            _ => 0.0,
        };
        let col_bias = match step.epilogue.bias {
            Bias::PerCol(b) if step.last => Some(&b[pos.j0..pos.j0 + pos.cols]),
            _ => None,
        };
        let values = &tile[i * nr..i * nr + pos.cols];
        let start = (pos.i0 + i) * rs + pos.j0 * cs;
        if cs == 1 {
            debug_assert!(start + pos.cols <= c.len);
            // SAFETY: the caller guarantees these `cols` contiguous elements are inside C
            // and ours alone for the duration of the call.
            let out = unsafe { std::slice::from_raw_parts_mut(c.ptr.add(start), pos.cols) };
            merge_row(out.iter_mut(), values, row_bias, col_bias, step);
        } else {
            debug_assert!(pos.cols == 0 || start + (pos.cols - 1) * cs < c.len);
            // SAFETY: as above, element by element at stride `cs`.
            let out = (0..pos.cols).map(|j| unsafe { &mut *c.ptr.add(start + j * cs) });
            merge_row(out, values, row_bias, col_bias, step);
        }
    }
}

/// out = act(alpha·value + prior(out) + bias) along one row of a tile.
#[inline]
fn merge_row<'c>(
    out: impl Iterator<Item = &'c mut f32>,
    values: &[f32],
    row_bias: f32,
    col_bias: Option<&[f32]>,
    step: StoreStep<'_>,
) {
    let e = step.epilogue;
    let alpha = e.alpha;
    let activation = if step.last {
        e.activation
    } else {
        Activation::Identity
    };
    let prior = |c: f32| {
        if !step.first {
            c
        } else if e.beta == 0.0 {
            0.0
        } else {
            e.beta * c
        }
    };
    match col_bias {
        None => {
            for (c, &v) in out.zip(values) {
                *c = finish(activation, alpha * v + prior(*c) + row_bias);
            }
        }
        Some(col_bias) => {
            for ((c, &v), &b) in out.zip(values).zip(col_bias) {
                *c = finish(activation, alpha * v + prior(*c) + row_bias + b);
            }
        }
    }
}

#[inline(always)]
fn finish(activation: Activation, x: f32) -> f32 {
    match activation {
        Activation::Identity => x,
        other => activate(other, x),
    }
}

/// Applies `activation` in place to a tile of C that was just stored.
///
/// # Safety
/// As for [`store_tile`].
pub(crate) unsafe fn activate_tile(c: COut, pos: TilePos, activation: Activation) {
    for i in 0..pos.rows {
        for j in 0..pos.cols {
            let at = (pos.i0 + i) * c.row_stride + (pos.j0 + j) * c.col_stride;
            debug_assert!(at < c.len);
            // SAFETY: inside C and ours alone (caller).
            let value = unsafe { &mut *c.ptr.add(at) };
            *value = activate(activation, *value);
        }
    }
}
