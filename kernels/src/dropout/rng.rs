//! The keep decision of dropout: a counter-based hash of (seed, step, element index).
//!
//! The element index i is split into hi = i >> 32 and lo = i as u32. (seed, step, hi)
//! are mixed once into two 32-bit keys (k0, k1) with SplitMix64's finalizer; then
//! h = mix(mix(lo ^ k0) ^ k1), with mix Wellons' `lowbias32` (two multiply–xorshift
//! rounds with full avalanche), and the element is kept iff h ≥ t = round(p·2³²).
//! For fixed keys lo ↦ h is a bijection, so masks of different steps are unrelated
//! permutations, never shifted copies of each other. Every ISA path computes the same
//! 32-bit integer arithmetic, so the mask depends on nothing but (seed, step, index, p).
//!
//! [`mix`] and [`keeps_scalar`] are the definition; the vector paths in `kernel.rs`
//! repeat them lane by lane and the tests compare them bit for bit.

/// `lowbias32`'s constants and shifts.
pub(super) const M1: u32 = 0x7feb_352d;
pub(super) const M2: u32 = 0x846c_a68b;

#[inline(always)]
pub(super) fn mix(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(M1);
    x ^= x >> 15;
    x = x.wrapping_mul(M2);
    x ^ (x >> 16)
}

/// SplitMix64's output function.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The two keys of the elements whose index has high half `hi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Keys {
    pub k0: u32,
    pub k1: u32,
}

impl Keys {
    pub(super) fn new(seed: u64, step: u64, hi: u64) -> Keys {
        // Odd multipliers (golden ratio, and another) keep the three inputs apart.
        let z = mix64(
            seed ^ mix64(step.wrapping_add(0x9e37_79b9_7f4a_7c15))
                ^ hi.wrapping_mul(0xd6e8_feb8_6659_fd93),
        );
        Keys {
            k0: z as u32,
            k1: (z >> 32) as u32,
        }
    }
}

/// The threshold t: an element is kept iff its hash is ≥ t, so with probability
/// 1 − t/2³², within 2⁻³³ of 1 − p. `p` is in [0, 1).
pub(super) fn threshold(p: f32) -> u32 {
    // p < 1 in f32 is at most 1 − 2⁻²⁴, so the product stays below 2³².
    (f64::from(p) * 4_294_967_296.0).round() as u32
}

/// The hash of element `lo` (the low half of its index).
#[inline(always)]
pub(super) fn hash(keys: Keys, lo: u32) -> u32 {
    mix(mix(lo ^ keys.k0) ^ keys.k1)
}

/// Whether element `lo` is kept, for `p` in [0, 1) given as its threshold.
#[inline(always)]
pub(super) fn keeps_scalar(keys: Keys, t: u32, lo: u32) -> bool {
    hash(keys, lo) >= t
}
