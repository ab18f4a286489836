//! The AVX2 + FMA path: [`Lanes`] on 8-lane ymm registers, and its entry points.
//!
//! `V8` is crate-private and only ever instantiated inside
//! `#[target_feature(enable = "avx2,fma")]` functions (those below and the batch-norm
//! trampoline in `norm/dispatch.rs`), which are called only after checking that the CPU
//! has AVX2 and FMA. That is what makes its safe methods, which issue AVX2 and FMA
//! instructions, sound; they are `#[inline(always)]` so that they compile into those
//! functions with the features enabled.

use super::driver::Paths;
use super::kernel::{self, ItemShape};
use super::lanes::{Lanes, ROUND_MAGIC_BITS};
use super::{Activation, MathFunction};
use crate::arch::Isa;
use std::arch::x86_64::*;
use std::ops::{Add, Div, Mul, Neg, Sub};

pub(super) const PATHS: Paths = Paths {
    forward,
    backward,
    math,
};

/// Runs an AVX2+FMA-only expression.
macro_rules! avx {
    ($e:expr) => {
        // SAFETY: `V8` exists only inside AVX2+FMA functions, which run after the CPU
        // was checked for both features (module docs).
        unsafe { $e }
    };
}

/// Eight f32 lanes in a ymm register.
#[derive(Clone, Copy)]
pub(crate) struct V8(__m256);

/// Lanes `0..n` set, for masked loads and stores of a partial vector (`n ≤ 8`).
#[inline(always)]
fn first_lanes(n: usize) -> __m256i {
    avx!(_mm256_cmpgt_epi32(
        _mm256_set1_epi32(n as i32),
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)
    ))
}

#[inline(always)]
fn sign_bit() -> __m256 {
    avx!(_mm256_set1_ps(-0.0))
}

impl Add for V8 {
    type Output = V8;
    #[inline(always)]
    fn add(self, other: V8) -> V8 {
        V8(avx!(_mm256_add_ps(self.0, other.0)))
    }
}

impl Sub for V8 {
    type Output = V8;
    #[inline(always)]
    fn sub(self, other: V8) -> V8 {
        V8(avx!(_mm256_sub_ps(self.0, other.0)))
    }
}

impl Mul for V8 {
    type Output = V8;
    #[inline(always)]
    fn mul(self, other: V8) -> V8 {
        V8(avx!(_mm256_mul_ps(self.0, other.0)))
    }
}

impl Div for V8 {
    type Output = V8;
    #[inline(always)]
    fn div(self, other: V8) -> V8 {
        V8(avx!(_mm256_div_ps(self.0, other.0)))
    }
}

impl Neg for V8 {
    type Output = V8;
    #[inline(always)]
    fn neg(self) -> V8 {
        V8(avx!(_mm256_xor_ps(self.0, sign_bit())))
    }
}

impl Lanes for V8 {
    const LANES: usize = 8;
    type Mask = __m256;

    #[inline(always)]
    fn splat(value: f32) -> Self {
        V8(avx!(_mm256_set1_ps(value)))
    }
    #[inline(always)]
    fn load(s: &[f32]) -> Self {
        assert!(s.len() >= 8);
        // Reads the 8 floats just checked.
        V8(avx!(_mm256_loadu_ps(s.as_ptr())))
    }
    #[inline(always)]
    fn load_partial(s: &[f32]) -> Self {
        assert!(s.len() < 8);
        // The mask reads only the first `s.len()` floats; the other lanes are zero.
        V8(avx!(_mm256_maskload_ps(s.as_ptr(), first_lanes(s.len()))))
    }
    #[inline(always)]
    fn store(self, d: &mut [f32]) {
        assert!(d.len() >= 8);
        avx!(_mm256_storeu_ps(d.as_mut_ptr(), self.0))
    }
    #[inline(always)]
    fn store_partial(self, d: &mut [f32]) {
        assert!(d.len() < 8);
        avx!(_mm256_maskstore_ps(
            d.as_mut_ptr(),
            first_lanes(d.len()),
            self.0
        ))
    }
    const STREAMS: bool = true;
    #[inline(always)]
    fn store_stream(self, d: &mut [f32]) {
        assert!(d.len() >= 8);
        if (d.as_ptr() as usize).is_multiple_of(32) {
            // Aligned, as `_mm256_stream_ps` requires (checked just above).
            avx!(_mm256_stream_ps(d.as_mut_ptr(), self.0))
        } else {
            self.store(d)
        }
    }
    #[inline(always)]
    fn stream_fence() {
        avx!(_mm_sfence())
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        V8(avx!(_mm256_fmadd_ps(self.0, b.0, c.0)))
    }
    #[inline(always)]
    fn max(self, other: Self) -> Self {
        // maxps returns its second operand on NaN or equality: the trait's semantics.
        V8(avx!(_mm256_max_ps(self.0, other.0)))
    }
    #[inline(always)]
    fn min(self, other: Self) -> Self {
        V8(avx!(_mm256_min_ps(self.0, other.0)))
    }
    #[inline(always)]
    fn abs(self) -> Self {
        V8(avx!(_mm256_andnot_ps(sign_bit(), self.0)))
    }
    #[inline(always)]
    fn with_sign_of(self, sign: Self) -> Self {
        V8(avx!(_mm256_or_ps(
            self.0,
            _mm256_and_ps(sign.0, sign_bit())
        )))
    }
    #[inline(always)]
    fn lt(self, other: Self) -> __m256 {
        avx!(_mm256_cmp_ps::<_CMP_LT_OQ>(self.0, other.0))
    }
    #[inline(always)]
    fn le(self, other: Self) -> __m256 {
        avx!(_mm256_cmp_ps::<_CMP_LE_OQ>(self.0, other.0))
    }
    #[inline(always)]
    fn gt(self, other: Self) -> __m256 {
        avx!(_mm256_cmp_ps::<_CMP_GT_OQ>(self.0, other.0))
    }
    #[inline(always)]
    fn eq(self, other: Self) -> __m256 {
        avx!(_mm256_cmp_ps::<_CMP_EQ_OQ>(self.0, other.0))
    }
    #[inline(always)]
    fn lanes_below(k: usize) -> __m256 {
        avx!(_mm256_castsi256_ps(first_lanes(k)))
    }
    #[inline(always)]
    fn select(mask: __m256, if_true: Self, if_false: Self) -> Self {
        V8(avx!(_mm256_blendv_ps(if_false.0, if_true.0, mask)))
    }
    #[inline(always)]
    fn pow2(t: Self) -> Self {
        V8(avx!(_mm256_castsi256_ps(_mm256_slli_epi32::<23>(
            _mm256_add_epi32(_mm256_castps_si256(t.0), _mm256_set1_epi32(127))
        ))))
    }
    #[inline(always)]
    fn pow2_halves(t: Self) -> (Self, Self) {
        let n = avx!(_mm256_sub_epi32(
            _mm256_castps_si256(t.0),
            _mm256_set1_epi32(ROUND_MAGIC_BITS)
        ));
        let low = avx!(_mm256_srai_epi32::<1>(n));
        let high = avx!(_mm256_sub_epi32(n, low));
        (pow2_of(low), pow2_of(high))
    }
}

/// 2ᵏ for integers k in [−126, 127].
#[inline(always)]
fn pow2_of(k: __m256i) -> V8 {
    V8(avx!(_mm256_castsi256_ps(_mm256_slli_epi32::<23>(
        _mm256_add_epi32(k, _mm256_set1_epi32(127))
    ))))
}

fn check_cpu() {
    assert!(
        Isa::Avx2.is_available(),
        "the AVX2 eltwise path needs AVX2 and FMA"
    );
}

fn forward(act: Activation, item: &ItemShape<'_>, x: Option<&[f32]>, y: &mut [f32]) {
    check_cpu();
    // SAFETY: the CPU has AVX2 and FMA (checked above).
    unsafe { forward_avx2(act, item, x, y) }
}

#[target_feature(enable = "avx2,fma")]
fn forward_avx2(act: Activation, item: &ItemShape<'_>, x: Option<&[f32]>, y: &mut [f32]) {
    kernel::forward::<V8>(act, item, x, y)
}

fn backward(
    act: Activation,
    from_y: bool,
    item: &ItemShape<'_>,
    saved: &[f32],
    dy: Option<&[f32]>,
    dz: &mut [f32],
    sums: &mut [f32],
) {
    check_cpu();
    // SAFETY: the CPU has AVX2 and FMA (checked above).
    unsafe { backward_avx2(act, from_y, item, saved, dy, dz, sums) }
}

#[target_feature(enable = "avx2,fma")]
fn backward_avx2(
    act: Activation,
    from_y: bool,
    item: &ItemShape<'_>,
    saved: &[f32],
    dy: Option<&[f32]>,
    dz: &mut [f32],
    sums: &mut [f32],
) {
    kernel::backward::<V8>(act, from_y, item, saved, dy, dz, sums)
}

fn math(function: MathFunction, x: &[f32], y: &mut [f32]) {
    check_cpu();
    // SAFETY: the CPU has AVX2 and FMA (checked above).
    unsafe { math_avx2(function, x, y) }
}

#[target_feature(enable = "avx2,fma")]
fn math_avx2(function: MathFunction, x: &[f32], y: &mut [f32]) {
    kernel::math::<V8>(function, x, y)
}
