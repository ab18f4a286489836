//! Register-blocked microkernels: the innermost loop of GEMM, one file per ISA and tile.
//!
//! A microkernel multiplies one packed micro-panel of A (`k × MR`, k-major) by one packed
//! micro-panel of B (`k × NR`, k-major) and writes the `MR × NR` product, row-major, into
//! a small tile buffer that the store step (`gemm::store`) then merges into C with the
//! epilogue. Where an ISA can, it also sweeps a whole packed block and merges each tile
//! into C straight from its registers ([`SweepInto`]). Everything around it — blocking,
//! packing, threading — is shared by all ISAs.

mod avx2_6x16;
mod neon_8x8;
mod scalar_4x4;

use super::store::TilePos;
use crate::arch::Isa;

/// A microkernel and the tile shape it computes.
#[derive(Clone, Copy)]
pub(crate) struct MicroKernel {
    /// Rows of the tile (rows of an A micro-panel).
    pub mr: usize,
    /// Columns of the tile (columns of a B micro-panel).
    pub nr: usize,
    /// `tile[i * nr + j] = Σ_p a[p * mr + i] · b[p * nr + j]` for p < k.
    /// Panics if a slice is shorter than `k * mr`, `k * nr` or `mr * nr`.
    pub compute: fn(k: usize, a: &[f32], b: &[f32], tile: &mut [f32]),
    /// The product of whole packed blocks merged straight from the registers into C
    /// with contiguous rows (see [`SweepInto`]), where the ISA has such a path.
    pub sweep_into: Option<SweepInto>,
}

/// Computes every tile of a packed block, in `order`, and merges each into C with a
/// [`DirectStore`] narrowed to it; after each tile, calls `after_tile` (when given) with
/// the tile's position inside the block, while the tile is still in L1.
///
/// One call per block rather than per tile: with a shallow K (9 for a 3 × 3 one-channel
/// convolution), a call, its checks and its epilogue setup cost as much as the product.
///
/// # Safety
/// `a_panels` [holds](APanels::holds) the A micro-panels of `out.rows` rows and
/// `b_panels` `⌈out.cols / nr⌉` B micro-panels of `k·nr`; `k > 0`; the `out.rows` rows
/// of `out.cols` contiguous floats at `out.c + i · out.row_stride` are valid for reads
/// and writes, and no other thread touches them during the call; the biases, when given,
/// hold `out.rows` / `out.cols` values.
pub(crate) type SweepInto = unsafe fn(
    k: usize,
    a_panels: APanels<'_>,
    b_panels: &[f32],
    order: TileOrder,
    out: &DirectStore,
    after_tile: Option<&mut dyn FnMut(TilePos)>,
);

/// The A micro-panels a sweep reads: value `p` of row `i` of panel `q` at
/// `data[q · panel_step + i · row_stride + p · k_stride]`. Packed panels are k-major and
/// lie one after the other (`k_stride = mr`, `row_stride = 1`, `panel_step = k·mr`); a
/// row-major op(A) can also be read where it is (`k_stride = 1`, `row_stride` = its row
/// stride, `panel_step = mr · row_stride`), which saves packing an A block that meets
/// only a few B micro-panels.
#[derive(Clone, Copy)]
pub(crate) struct APanels<'a> {
    pub data: &'a [f32],
    pub panel_step: usize,
    pub row_stride: usize,
    pub k_stride: usize,
}

impl<'a> APanels<'a> {
    /// Packed panels, `k·mr` values each.
    pub fn packed(data: &'a [f32], k: usize, mr: usize) -> Self {
        APanels {
            data,
            panel_step: k * mr,
            row_stride: 1,
            k_stride: mr,
        }
    }

    /// Whether `data` holds the `k` values of every one of `rows` rows, cut into panels
    /// of `mr` (a sweep reads only the live rows of the last panel).
    pub fn holds(&self, rows: usize, k: usize, mr: usize) -> bool {
        if rows == 0 || k == 0 {
            return true;
        }
        let last = |row: usize| {
            (row / mr) * self.panel_step + (row % mr) * self.row_stride + (k - 1) * self.k_stride
        };
        // The last row read, and the last row of the panel before the last.
        let before_last = (rows - 1) / mr * mr;
        let widest = if before_last > 0 {
            last(before_last - 1)
        } else {
            0
        };
        last(rows - 1).max(widest) < self.data.len()
    }
}

/// Where and how a microkernel stores a block of C: C ← relu?(alpha·AB + beta·C + bias).
///
/// `beta == 0` does not read C. The driver uses it for the linear part of every epilogue
/// (and ReLU); other activations run over each stored tile afterwards while it is in L1.
pub(crate) struct DirectStore {
    pub c: *mut f32,
    pub row_stride: usize,
    /// Rows and columns of the block inside C (the tiles' padding lies outside them).
    pub rows: usize,
    pub cols: usize,
    pub alpha: f32,
    pub beta: f32,
    /// One value per row of the block.
    pub row_bias: Option<*const f32>,
    /// One value per column of the block.
    pub col_bias: Option<*const f32>,
    pub relu: bool,
}

impl DirectStore {
    /// The same store narrowed to the tile at `pos` (inside the block).
    #[inline(always)]
    pub fn tile(&self, pos: TilePos) -> DirectStore {
        DirectStore {
            c: self.c.wrapping_add(pos.i0 * self.row_stride + pos.j0),
            rows: pos.rows,
            cols: pos.cols,
            row_bias: self.row_bias.map(|b| b.wrapping_add(pos.i0)),
            col_bias: self.col_bias.map(|b| b.wrapping_add(pos.j0)),
            ..*self
        }
    }
}

/// The order in which the tiles of a packed block are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TileOrder {
    /// Row panel after row panel: each A micro-panel meets every B micro-panel in turn,
    /// so stores run along a few rows of C (when the whole B block sits in L2).
    RowPanels,
    /// BLIS's order: each B micro-panel stays in L1 while the A micro-panels stream past
    /// it from L2.
    ColumnPanels,
}

/// Calls `tile(a_panel, b_panel, pos)` for each `mr × nr` tile of a `rows × cols` block
/// in `order`: the indices of its A and B micro-panels and its live part in the block.
#[inline(always)]
pub(crate) fn for_each_tile(
    (rows, mr): (usize, usize),
    (cols, nr): (usize, usize),
    order: TileOrder,
    mut tile: impl FnMut(usize, usize, TilePos),
) {
    let mut visit = |ia: usize, jb: usize| {
        let (i0, j0) = (ia * mr, jb * nr);
        let pos = TilePos {
            i0,
            j0,
            rows: mr.min(rows - i0),
            cols: nr.min(cols - j0),
        };
        tile(ia, jb, pos);
    };
    let (a_panels, b_panels) = (rows.div_ceil(mr), cols.div_ceil(nr));
    match order {
        TileOrder::RowPanels => {
            for ia in 0..a_panels {
                for jb in 0..b_panels {
                    visit(ia, jb);
                }
            }
        }
        TileOrder::ColumnPanels => {
            for jb in 0..b_panels {
                for ia in 0..a_panels {
                    visit(ia, jb);
                }
            }
        }
    }
}

/// The microkernel of an ISA path.
pub(crate) fn for_isa(isa: Isa) -> MicroKernel {
    match isa {
        Isa::Avx2 => avx2_6x16::KERNEL,
        Isa::Neon => neon_8x8::KERNEL,
        Isa::Scalar => scalar_4x4::KERNEL,
    }
}

/// Checks the slice lengths every microkernel relies on.
#[inline]
fn check_lengths(k: usize, mr: usize, nr: usize, a: &[f32], b: &[f32], tile: &[f32]) {
    assert!(
        a.len() >= k * mr && b.len() >= k * nr && tile.len() >= mr * nr,
        "microkernel operands too short"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panels_hold_exactly_the_values_a_sweep_reads() {
        // 13 rows, k = 5, panels of 6: two whole panels and one of a single row.
        let (rows, k, mr) = (13, 5, 6);
        let packed = vec![0.0; 3 * k * mr];
        // The last panel's one live row ends 5 values before the padded end.
        let short = &packed[..packed.len() - (mr - 1)];
        assert!(APanels::packed(short, k, mr).holds(rows, k, mr));
        assert!(!APanels::packed(&short[1..], k, mr).holds(rows, k, mr));
        // In place, row-major with row stride 7: the last row ends at 12·7 + 5.
        let in_place = |len: usize| APanels {
            data: &packed[..len],
            panel_step: mr * 7,
            row_stride: 7,
            k_stride: 1,
        };
        assert!(in_place(12 * 7 + k).holds(rows, k, mr));
        assert!(!in_place(12 * 7 + k - 1).holds(rows, k, mr));
        assert!(in_place(0).holds(0, k, mr) && in_place(0).holds(rows, 0, mr));
    }

    /// Every available microkernel against a plain triple loop, for k around the unroll.
    #[test]
    fn microkernels_match_the_definition() {
        for isa in Isa::available() {
            let kernel = for_isa(isa);
            let (mr, nr) = (kernel.mr, kernel.nr);
            for k in [0, 1, 2, 3, 4, 5, 7, 8, 9, 16, 33] {
                let a: Vec<f32> = (0..k * mr).map(|i| ((i * 7 % 13) as f32) - 6.0).collect();
                let b: Vec<f32> = (0..k * nr).map(|i| ((i * 5 % 11) as f32) * 0.5).collect();
                let mut tile = vec![f32::NAN; mr * nr];
                (kernel.compute)(k, &a, &b, &mut tile);
                for i in 0..mr {
                    for j in 0..nr {
                        let want: f32 = (0..k).map(|p| a[p * mr + i] * b[p * nr + j]).sum();
                        // Small integers and halves: every path is exact.
                        assert_eq!(tile[i * nr + j], want, "{isa} k={k} ({i},{j})");
                    }
                }
            }
        }
    }
}
