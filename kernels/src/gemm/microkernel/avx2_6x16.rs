//! AVX2 + FMA microkernel, 6 × 16 tile: 12 ymm accumulators (6 rows × 2 halves of 8),
//! 2 registers for the B row and 1 for the broadcast A value — 15 of the 16 ymm
//! registers, enough independent FMA chains (12) to keep both FMA pipes busy.

use super::{check_lengths, MicroKernel};

pub(crate) const KERNEL: MicroKernel = MicroKernel {
    mr: MR,
    nr: NR,
    compute,
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
/// AVX2 and FMA available; `a` readable for `k * 6`, `b` for `k * 16`, `tile` writable
/// for 96 floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel(k: usize, a: *const f32, b: *const f32, tile: *mut f32) {
    use std::arch::x86_64::*;
    // c{row}{half}: row `row` of the tile, columns 0..8 (half 0) or 8..16 (half 1).
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
    let (mut a, mut b) = (a, b);
    for _ in 0..k {
        // SAFETY (whole loop body): p < k, so a[0..6] and b[0..16] of this step are in
        // the panels whose lengths the caller guarantees.
        let b0 = _mm256_loadu_ps(b);
        let b1 = _mm256_loadu_ps(b.add(8));
        let a0 = _mm256_broadcast_ss(&*a);
        c00 = _mm256_fmadd_ps(a0, b0, c00);
        c01 = _mm256_fmadd_ps(a0, b1, c01);
        let a1 = _mm256_broadcast_ss(&*a.add(1));
        c10 = _mm256_fmadd_ps(a1, b0, c10);
        c11 = _mm256_fmadd_ps(a1, b1, c11);
        let a2 = _mm256_broadcast_ss(&*a.add(2));
        c20 = _mm256_fmadd_ps(a2, b0, c20);
        c21 = _mm256_fmadd_ps(a2, b1, c21);
        let a3 = _mm256_broadcast_ss(&*a.add(3));
        c30 = _mm256_fmadd_ps(a3, b0, c30);
        c31 = _mm256_fmadd_ps(a3, b1, c31);
        let a4 = _mm256_broadcast_ss(&*a.add(4));
        c40 = _mm256_fmadd_ps(a4, b0, c40);
        c41 = _mm256_fmadd_ps(a4, b1, c41);
        let a5 = _mm256_broadcast_ss(&*a.add(5));
        c50 = _mm256_fmadd_ps(a5, b0, c50);
        c51 = _mm256_fmadd_ps(a5, b1, c51);
        a = a.add(MR);
        b = b.add(NR);
    }
    // SAFETY: the tile holds 6 rows of 16.
    let rows = [
        (c00, c01),
        (c10, c11),
        (c20, c21),
        (c30, c31),
        (c40, c41),
        (c50, c51),
    ];
    for (i, (lo, hi)) in rows.into_iter().enumerate() {
        _mm256_storeu_ps(tile.add(i * NR), lo);
        _mm256_storeu_ps(tile.add(i * NR + 8), hi);
    }
}

/// Never called: `compute` asserts AVX2 first, which is false off x86_64.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn kernel(_k: usize, _a: *const f32, _b: *const f32, _tile: *mut f32) {
    unreachable!("AVX2 is never available off x86_64")
}
