//! AVX2 + FMA microkernel, 6 × 16 tile: 12 ymm accumulators (6 rows × 2 halves of 8),
//! 2 registers for the B row and 1 for the broadcast A value — 15 of the 16 ymm
//! registers, enough independent FMA chains (12) to keep both FMA pipes busy.
//!
//! The accumulation is a macro expanded into each entry point, so the accumulators stay
//! in registers from the first FMA to the store (a function returning them would spill
//! all twelve to the stack, which costs as much as a shallow product itself).

use super::{check_lengths, for_each_tile, APanels, DirectStore, MicroKernel, TileOrder};
use crate::eltwise::dispatch::with_const_bool;
use crate::gemm::store::TilePos;

pub(crate) const KERNEL: MicroKernel = MicroKernel {
    mr: MR,
    nr: NR,
    compute,
    sweep_into: Some(sweep_into),
};

const MR: usize = 6;
const NR: usize = 16;

fn compute(k: usize, a: &[f32], b: &[f32], tile: &mut [f32]) {
    check_lengths(k, MR, NR, a, b, tile);
    assert!(
        crate::arch::Isa::Avx2.is_available(),
        "the AVX2 microkernel needs AVX2 and FMA"
    );
    // SAFETY: the CPU has AVX2 and FMA (checked above); `a` holds k·6 values, `b` k·16
    // and `tile` 96 (checked by `check_lengths`), which is all `kernel` reads and writes.
    unsafe { kernel(k, a.as_ptr(), b.as_ptr(), tile.as_mut_ptr()) }
}

/// # Safety
/// See [`super::SweepInto`].
unsafe fn sweep_into(
    k: usize,
    a_panels: APanels<'_>,
    b_panels: &[f32],
    order: TileOrder,
    out: &DirectStore,
    after_tile: Option<&mut dyn FnMut(TilePos)>,
) {
    assert!(
        a_panels.holds(out.rows, k, MR) && b_panels.len() >= out.cols.div_ceil(NR) * k * NR,
        "microkernel operands too short"
    );
    assert!(
        crate::arch::Isa::Avx2.is_available(),
        "the AVX2 microkernel needs AVX2 and FMA"
    );
    // SAFETY: AVX2 and FMA checked; panel lengths checked; C rows per the caller.
    unsafe { sweep(k, a_panels, b_panels.as_ptr(), order, out, after_tile) }
}

/// Expands to the 6 × 16 product of the panels `$a` (k × 6: packed, or `($a, a_row,
/// a_k)` with value p of row i at `a_row·i + a_k·p`) and `$b` (k × 16, packed) as
/// `[(lo, hi); 6]`: row i of the tile, columns 0..8 and 8..16. Must be expanded inside an
/// `unsafe` AVX2+FMA function whose caller guarantees the panel lengths. With `$rows`
/// given, only the first `$rows` rows are computed (the others stay zero): a 2-row edge
/// tile costs a third of a whole one.
#[cfg(target_arch = "x86_64")]
macro_rules! accumulate {
    ($k:expr, $a:expr, $b:expr) => {
        accumulate!($k, ($a, 1, MR), $b, MR)
    };
    ($k:expr, ($a:expr, $a_row:expr, $a_k:expr), $b:expr, $rows:expr) => {{
        let (k, a, b): (usize, *const f32, *const f32) = ($k, $a, $b);
        let (a_row, a_k): (usize, usize) = ($a_row, $a_k);
        let mut c00 = _mm256_setzero_ps();
        let mut c01 = _mm256_setzero_ps();
        let mut c10 = _mm256_setzero_ps();
        let mut c11 = _mm256_setzero_ps();
        let mut c20 = _mm256_setzero_ps();
        let mut c21 = _mm256_setzero_ps();
        let mut c30 = _mm256_setzero_ps();
        let mut c31 = _mm256_setzero_ps();
        let mut c40 = _mm256_setzero_ps();
        let mut c41 = _mm256_setzero_ps();
        let mut c50 = _mm256_setzero_ps();
        let mut c51 = _mm256_setzero_ps();
        // One rank-1 update: row `p` of the B panel times column `p` of the A panel.
        // SAFETY (every use): p < k, so a[i·a_row + p·a_k] (for the live rows i) and
        // b[16p..16p+16] lie in the panels whose lengths the caller guarantees.
        macro_rules! rank1 {
            ($p:expr) => {{
                let (a, b) = (a.add($p * a_k), b.add($p * NR));
                let b0 = _mm256_loadu_ps(b);
                let b1 = _mm256_loadu_ps(b.add(8));
                // Row i of the tile (when live): A's value broadcast times both halves.
                macro_rules! row {
                    ($i:expr, $lo:ident, $hi:ident) => {
                        if $rows > $i {
                            let ai = _mm256_broadcast_ss(&*a.add($i * a_row));
                            $lo = _mm256_fmadd_ps(ai, b0, $lo);
                            $hi = _mm256_fmadd_ps(ai, b1, $hi);
                        }
                    };
                }
                row!(0, c00, c01);
                row!(1, c10, c11);
                row!(2, c20, c21);
                row!(3, c30, c31);
                row!(4, c40, c41);
                row!(5, c50, c51);
            }};
        }
        // Four updates per trip: a quarter of the loop overhead, and a prefetch of the A
        // panel (streamed from L2) 16 steps ahead.
        let unrolled = k / 4;
        for q in 0..unrolled {
            _mm_prefetch::<_MM_HINT_T0>(a.wrapping_add((4 * q + 16) * a_k) as *const i8);
            rank1!(4 * q);
            rank1!(4 * q + 1);
            rank1!(4 * q + 2);
            rank1!(4 * q + 3);
        }
        for p in 4 * unrolled..k {
            rank1!(p);
        }
        [
            (c00, c01),
            (c10, c11),
            (c20, c21),
            (c30, c31),
            (c40, c41),
            (c50, c51),
        ]
    }};
}

/// Writes the product into a 6 × 16 row-major tile buffer.
///
/// # Safety
/// AVX2 and FMA available; `a` readable for `k * 6` floats, `b` for `k * 16`, `tile`
/// writable for 96.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel(k: usize, a: *const f32, b: *const f32, tile: *mut f32) {
    use std::arch::x86_64::*;
    let rows = accumulate!(k, a, b);
    for (i, (lo, hi)) in rows.into_iter().enumerate() {
        // SAFETY: row i of the 96-float tile.
        unsafe {
            _mm256_storeu_ps(tile.add(i * NR), lo);
            _mm256_storeu_ps(tile.add(i * NR + 8), hi);
        }
    }
}

/// Computes the tiles of a block in `order` and merges each into C (see
/// [`super::SweepInto`]).
///
/// # Safety
/// AVX2 and FMA available; panels and C as in [`super::SweepInto`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn sweep(
    k: usize,
    a_panels: APanels<'_>,
    b_panels: *const f32,
    order: TileOrder,
    out: &DirectStore,
    mut after_tile: Option<&mut dyn FnMut(TilePos)>,
) {
    let a_strides = (a_panels.row_stride, a_panels.k_stride);
    let packed = a_strides == (1, MR);
    for_each_tile((out.rows, MR), (out.cols, NR), order, |ia, jb, pos| {
        let a = a_panels
            .data
            .as_ptr()
            .wrapping_add(ia * a_panels.panel_step);
        let b = b_panels.wrapping_add(jb * k * NR);
        let tile = out.tile(pos);
        // SAFETY: the live rows of A's panel `ia` (packed or in place) and B's panel `jb`
        // lie in the blocks, and the tile's live rows and columns in the block of C (the
        // caller's guarantees, checked by `sweep_into`'s assertions for A and B).
        unsafe { with_const_bool!(packed, tile_of_rows(k, (a, a_strides), b, &tile)) };
        if let Some(after_tile) = after_tile.as_mut() {
            after_tile(pos);
        }
    });
}

/// [`tile_into`] for the tile's live rows. Kept out of line: inlined into the sweep's
/// loop, its six copies cost ≈ 8% at K = 9 (measured), where calls are cheap.
///
/// # Safety
/// As for [`tile_into`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline(never)]
unsafe fn tile_of_rows<const PACKED: bool>(
    k: usize,
    a: (*const f32, (usize, usize)),
    b: *const f32,
    out: &DirectStore,
) {
    // SAFETY: the caller's guarantees.
    unsafe {
        match out.rows {
            1 => tile_into::<1, PACKED>(k, a, b, out),
            2 => tile_into::<2, PACKED>(k, a, b, out),
            3 => tile_into::<3, PACKED>(k, a, b, out),
            4 => tile_into::<4, PACKED>(k, a, b, out),
            5 => tile_into::<5, PACKED>(k, a, b, out),
            _ => tile_into::<6, PACKED>(k, a, b, out),
        }
    }
}

/// Merges one tile's product into C: C ← relu?(alpha·AB + beta·C + bias), whole rows
/// with plain loads and stores, a partial last column block with masked ones. `ROWS`
/// is the tile's live rows (`out.rows`); `PACKED` says that A is a packed panel (its
/// strides then are constants, which a shallow product notices).
///
/// # Safety
/// AVX2 and FMA available; `a = (start, (row_stride, k_stride))` readable at
/// `start + i·row_stride + p·k_stride` for the live rows i and p < k (see
/// [`APanels`]), `b` for `k * 16` floats; C and biases as in [`super::SweepInto`] for
/// this one tile.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tile_into<const ROWS: usize, const PACKED: bool>(
    k: usize,
    (a, (a_row, a_k)): (*const f32, (usize, usize)),
    b: *const f32,
    out: &DirectStore,
) {
    use std::arch::x86_64::*;
    // Ask for the C tile now, so that it is on its way while the product is computed.
    for i in 0..ROWS {
        let row = out.c.wrapping_add(i * out.row_stride) as *const i8;
        _mm_prefetch::<_MM_HINT_T0>(row);
        _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(60));
    }
    let (a_row, a_k) = if PACKED { (1, MR) } else { (a_row, a_k) };
    let rows = accumulate!(k, (a, a_row, a_k), b, ROWS);

    let alpha = _mm256_set1_ps(out.alpha);
    let beta = _mm256_set1_ps(out.beta);
    let zero = _mm256_setzero_ps();
    // Lane masks for a partial last column block: lane j is live when j < cols.
    let cols = _mm256_set1_epi32(out.cols as i32);
    let mask_lo = _mm256_cmpgt_epi32(cols, _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    let mask_hi = _mm256_cmpgt_epi32(cols, _mm256_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15));
    let whole = out.cols == NR;
    // SAFETY (all loads and stores below): a whole row holds NR floats; otherwise the
    // masks touch only the first `cols` of them, which the caller guarantees.
    let load = |p: *const f32| unsafe {
        if whole {
            (_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)))
        } else {
            (
                _mm256_maskload_ps(p, mask_lo),
                _mm256_maskload_ps(p.wrapping_add(8), mask_hi),
            )
        }
    };
    let (bias_lo, bias_hi) = match out.col_bias {
        Some(bias) => load(bias),
        None => (zero, zero),
    };
    // One row of the tile, written out for each row so that the accumulators never
    // leave their registers.
    let store_row = |i: usize, lo: __m256, hi: __m256| {
        let row = out.c.wrapping_add(i * out.row_stride);
        let mut lo = _mm256_mul_ps(lo, alpha);
        let mut hi = _mm256_mul_ps(hi, alpha);
        if out.beta != 0.0 {
            let (c_lo, c_hi) = load(row);
            lo = _mm256_fmadd_ps(c_lo, beta, lo);
            hi = _mm256_fmadd_ps(c_hi, beta, hi);
        }
        if let Some(bias) = out.row_bias {
            // SAFETY: a row bias holds one value per live row.
            let b = unsafe { _mm256_broadcast_ss(&*bias.add(i)) };
            lo = _mm256_add_ps(lo, b);
            hi = _mm256_add_ps(hi, b);
        }
        lo = _mm256_add_ps(lo, bias_lo);
        hi = _mm256_add_ps(hi, bias_hi);
        if out.relu {
            lo = _mm256_max_ps(lo, zero);
            hi = _mm256_max_ps(hi, zero);
        }
        // SAFETY: as for the loads.
        unsafe {
            if whole {
                _mm256_storeu_ps(row, lo);
                _mm256_storeu_ps(row.add(8), hi);
            } else {
                _mm256_maskstore_ps(row, mask_lo, lo);
                _mm256_maskstore_ps(row.wrapping_add(8), mask_hi, hi);
            }
        }
    };
    let [(c00, c01), (c10, c11), (c20, c21), (c30, c31), (c40, c41), (c50, c51)] = rows;
    if ROWS > 0 {
        store_row(0, c00, c01);
    }
    if ROWS > 1 {
        store_row(1, c10, c11);
    }
    if ROWS > 2 {
        store_row(2, c20, c21);
    }
    if ROWS > 3 {
        store_row(3, c30, c31);
    }
    if ROWS > 4 {
        store_row(4, c40, c41);
    }
    if ROWS > 5 {
        store_row(5, c50, c51);
    }
}

/// Never called: the callers assert AVX2 first, which is false off x86_64.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn kernel(_k: usize, _a: *const f32, _b: *const f32, _tile: *mut f32) {
    unreachable!("AVX2 is never available off x86_64")
}

/// Never called: the callers assert AVX2 first, which is false off x86_64.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn sweep(
    _k: usize,
    _a_panels: APanels<'_>,
    _b_panels: *const f32,
    _order: TileOrder,
    _out: &DirectStore,
    _after_tile: Option<&mut dyn FnMut(TilePos)>,
) {
    unreachable!("AVX2 is never available off x86_64")
}
