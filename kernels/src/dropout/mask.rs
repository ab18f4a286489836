//! Generating the bit-packed keep mask, one path per ISA: the integer hash of `rng.rs`
//! on scalars, on `wide::u32x4` and on AVX2 registers.
//!
//! Bit j of word w is element `first + 32w + j` of the chunk; the caller clears the bits
//! past the end of the tensor.

use super::rng::{self, Keys, M1, M2};
use crate::arch::Isa;

/// Writes `words.len()` mask words for the elements from index `lo` (low half) on.
/// The range stays inside one 2³² block of indices (the caller's chunks do).
pub(super) fn fill(isa: Isa, keys: Keys, t: u32, lo: u32, words: &mut [u32]) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => {
            assert!(Isa::Avx2.is_available(), "the AVX2 path needs AVX2");
            // SAFETY: the CPU has AVX2 (asserted just above).
            unsafe { fill_avx2(keys, t, lo, words) }
        }
        Isa::Neon => fill_wide(keys, t, lo, words),
        _ => fill_scalar(keys, t, lo, words),
    }
}

fn fill_scalar(keys: Keys, t: u32, lo: u32, words: &mut [u32]) {
    for (w, word) in words.iter_mut().enumerate() {
        let base = lo.wrapping_add(32 * w as u32);
        *word = (0..32).fold(0u32, |bits, j| {
            bits | (u32::from(rng::keeps_scalar(keys, t, base.wrapping_add(j))) << j)
        });
    }
}

fn fill_wide(keys: Keys, t: u32, lo: u32, words: &mut [u32]) {
    use wide::u32x4;
    let mix = |mut x: u32x4| -> u32x4 {
        x ^= x >> 16;
        x *= u32x4::splat(M1);
        x ^= x >> 15;
        x *= u32x4::splat(M2);
        x ^ (x >> 16)
    };
    let (k0, k1, tv) = (
        u32x4::splat(keys.k0),
        u32x4::splat(keys.k1),
        u32x4::splat(t),
    );
    let lanes = u32x4::new([0, 1, 2, 3]);
    for (w, word) in words.iter_mut().enumerate() {
        let mut bits = 0u32;
        for q in 0..8u32 {
            let x = u32x4::splat(lo.wrapping_add(32 * w as u32 + 4 * q)) + lanes;
            let h = mix(mix(x ^ k0) ^ k1);
            // h ≥ t ⟺ max(h, t) = h (unsigned).
            let keep = h.max(tv).simd_eq(h);
            bits |= keep.to_bitmask() << (4 * q);
        }
        *word = bits;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn fill_avx2(keys: Keys, t: u32, lo: u32, words: &mut [u32]) {
    use std::arch::x86_64::*;
    // Every intrinsic below is a plain register operation of AVX2, which this
    // function's callers have checked the CPU has.
    let mix = |mut x: __m256i| {
        x = _mm256_xor_si256(x, _mm256_srli_epi32::<16>(x));
        x = _mm256_mullo_epi32(x, _mm256_set1_epi32(M1 as i32));
        x = _mm256_xor_si256(x, _mm256_srli_epi32::<15>(x));
        x = _mm256_mullo_epi32(x, _mm256_set1_epi32(M2 as i32));
        _mm256_xor_si256(x, _mm256_srli_epi32::<16>(x))
    };
    let k0 = _mm256_set1_epi32(keys.k0 as i32);
    let k1 = _mm256_set1_epi32(keys.k1 as i32);
    let tv = _mm256_set1_epi32(t as i32);
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (w, word) in words.iter_mut().enumerate() {
        let mut bits = 0u32;
        for q in 0..4u32 {
            let base = lo.wrapping_add(32 * w as u32 + 8 * q);
            let x = _mm256_add_epi32(_mm256_set1_epi32(base as i32), lanes);
            let h = mix(_mm256_xor_si256(mix(_mm256_xor_si256(x, k0)), k1));
            let keep = _mm256_cmpeq_epi32(_mm256_max_epu32(h, tv), h);
            bits |= (_mm256_movemask_ps(_mm256_castsi256_ps(keep)) as u32) << (8 * q);
        }
        *word = bits;
    }
}
