//! Register-blocked microkernels: the innermost loop of GEMM, one file per ISA and tile.
//!
//! A microkernel multiplies one packed micro-panel of A (`k × MR`, k-major) by one packed
//! micro-panel of B (`k × NR`, k-major) and writes the `MR × NR` product, row-major, into
//! a small tile buffer that the store step (`gemm::store`) then merges into C with the
//! epilogue. Everything around it — blocking, packing, threading — is shared by all ISAs.

mod avx2_6x16;
mod neon_8x8;
mod scalar_4x4;

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
    /// The same product merged straight from the registers into a whole tile of C with
    /// contiguous rows (see [`DirectStore`]), where the ISA has such a path.
    pub compute_into: Option<ComputeInto>,
}

/// Computes a tile and merges its top-left `out.rows × out.cols` corner into C with a
/// [`DirectStore`].
///
/// # Safety
/// `a` and `b` hold at least `k·mr` and `k·nr` values; `out.rows ≤ mr`, `out.cols ≤ nr`;
/// the `out.rows` rows of `out.cols` contiguous floats at `out.c + i · out.row_stride`
/// are valid for reads and writes, and no other thread touches them during the call;
/// the biases, when given, hold `out.rows` / `out.cols` values.
pub(crate) type ComputeInto = unsafe fn(k: usize, a: &[f32], b: &[f32], out: &DirectStore);

/// Where and how a microkernel stores its tile: C ← relu?(alpha·AB + beta·C + bias).
///
/// `beta == 0` does not read C. The driver uses it for the linear part of every epilogue
/// (and ReLU); other activations run over the stored tile afterwards while it is in L1.
pub(crate) struct DirectStore {
    pub c: *mut f32,
    pub row_stride: usize,
    /// Rows and columns of the tile that lie inside C (the rest is zero padding).
    pub rows: usize,
    pub cols: usize,
    pub alpha: f32,
    pub beta: f32,
    /// One value per row of the tile inside C.
    pub row_bias: Option<*const f32>,
    /// One value per column of the tile inside C.
    pub col_bias: Option<*const f32>,
    pub relu: bool,
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
