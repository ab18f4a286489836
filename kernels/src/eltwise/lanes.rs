//! The lane abstraction: one generic kernel, three ISA paths.
//!
//! The element-wise kernels and the vector math — and the loss, dropout and optimizer
//! kernels, through `dispatch::lanes_dispatch!` — are written once, generic over
//! [`Lanes`]; the paths differ only in the type they are instantiated with: `f32` here
//! (the scalar path), `wide::f32x4` (`neon.rs`) and an AVX2 register (`avx2.rs`).
//! The batch-norm kernels (`norm/`) are written over the same trait.

use super::driver::Paths;
use super::kernel::{self, ItemShape};
use super::{Activation, MathFunction};
use std::ops::{Add, Div, Mul, Neg, Sub};

/// A vector of `LANES` f32 values and the operations the kernels need.
///
/// Comparisons and `max`/`min` have the x86 semantics on every path, so that NaN and
/// signed zeros behave the same everywhere: `a.max(b)` is `if a > b { a } else { b }`
/// (NaN in `a` yields `b`, NaN in `b` yields NaN), `a.min(b)` is `if a < b { a } else { b }`.
pub(crate) trait Lanes:
    Copy
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
{
    const LANES: usize;
    type Mask: Copy;

    fn splat(value: f32) -> Self;
    /// The first `LANES` values of `s`; `s` holds at least that many.
    fn load(s: &[f32]) -> Self;
    /// The `s.len() < LANES` values of `s`, the other lanes zero.
    fn load_partial(s: &[f32]) -> Self;
    /// Writes the first `LANES` values of `d`; `d` holds at least that many.
    fn store(self, d: &mut [f32]);
    /// Writes the first `d.len() < LANES` lanes into `d`.
    fn store_partial(self, d: &mut [f32]);
    /// Whether [`Lanes::store_stream`] bypasses the caches on this path.
    const STREAMS: bool = false;
    /// Like [`Lanes::store`], bypassing the caches where the ISA can, for `d` aligned to
    /// a whole vector.
    fn store_stream(self, d: &mut [f32]) {
        self.store(d)
    }
    /// Orders streaming stores before the stores that follow.
    fn stream_fence() {}

    /// `self · b + c`, fused where the path has FMA.
    fn mul_add(self, b: Self, c: Self) -> Self;
    fn max(self, other: Self) -> Self;
    fn min(self, other: Self) -> Self;
    /// √self, correctly rounded on every path (so identical across paths).
    fn sqrt(self) -> Self;
    fn abs(self) -> Self;
    /// `self` (non-negative) with the sign bit of `sign`.
    fn with_sign_of(self, sign: Self) -> Self;

    fn lt(self, other: Self) -> Self::Mask;
    fn le(self, other: Self) -> Self::Mask;
    fn gt(self, other: Self) -> Self::Mask;
    fn eq(self, other: Self) -> Self::Mask;
    /// Lanes `0..k` set (`k ≤ LANES`).
    fn lanes_below(k: usize) -> Self::Mask;
    /// `if mask { if_true } else { if_false }`, lane by lane.
    fn select(mask: Self::Mask, if_true: Self, if_false: Self) -> Self;

    /// 2ⁿ for `t` = [`ROUND_MAGIC`] + n with n an integer in [−127, 127] (2⁻¹²⁷ gives 0).
    fn pow2(t: Self) -> Self;
    /// (2^⌊n/2⌋, 2^(n−⌊n/2⌋)) for `t` = [`ROUND_MAGIC`] + n, n an integer in [−252, 254]:
    /// two normal factors whose product is 2ⁿ even where 2ⁿ itself is not normal.
    fn pow2_halves(t: Self) -> (Self, Self);
}

/// 1.5·2²³: adding it to a float of magnitude below 2²² rounds that float to an integer
/// n and leaves n in the low mantissa bits (the bit pattern is `ROUND_MAGIC_BITS + n`).
pub(crate) const ROUND_MAGIC: f32 = 12_582_912.0;
pub(crate) const ROUND_MAGIC_BITS: i32 = 0x4B40_0000;

/// The scalar path: one lane, plain Rust. `mul_add` is a multiply then an add, like the
/// `wide` path on x86_64 without FMA (a fused `f32::mul_add` would call libm here).
impl Lanes for f32 {
    const LANES: usize = 1;
    type Mask = bool;

    #[inline(always)]
    fn splat(value: f32) -> Self {
        value
    }
    #[inline(always)]
    fn load(s: &[f32]) -> Self {
        s[0]
    }
    #[inline(always)]
    fn load_partial(s: &[f32]) -> Self {
        s.first().copied().unwrap_or(0.0)
    }
    #[inline(always)]
    fn store(self, d: &mut [f32]) {
        d[0] = self;
    }
    #[inline(always)]
    fn store_partial(self, d: &mut [f32]) {
        if let Some(first) = d.first_mut() {
            *first = self;
        }
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        self * b + c
    }
    #[inline(always)]
    fn max(self, other: Self) -> Self {
        if self > other {
            self
        } else {
            other
        }
    }
    #[inline(always)]
    fn min(self, other: Self) -> Self {
        if self < other {
            self
        } else {
            other
        }
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
    #[inline(always)]
    fn abs(self) -> Self {
        f32::abs(self)
    }
    #[inline(always)]
    fn with_sign_of(self, sign: Self) -> Self {
        f32::from_bits(self.to_bits() | (sign.to_bits() & 0x8000_0000))
    }
    #[inline(always)]
    fn lt(self, other: Self) -> bool {
        self < other
    }
    #[inline(always)]
    fn le(self, other: Self) -> bool {
        self <= other
    }
    #[inline(always)]
    fn gt(self, other: Self) -> bool {
        self > other
    }
    #[inline(always)]
    fn eq(self, other: Self) -> bool {
        self == other
    }
    #[inline(always)]
    fn lanes_below(k: usize) -> bool {
        k > 0
    }
    #[inline(always)]
    fn select(mask: bool, if_true: Self, if_false: Self) -> Self {
        if mask {
            if_true
        } else {
            if_false
        }
    }
    #[inline(always)]
    fn pow2(t: Self) -> Self {
        // The magic's own bits (all above bit 8) leave through the top in the shift.
        f32::from_bits(t.to_bits().wrapping_add(127) << 23)
    }
    #[inline(always)]
    fn pow2_halves(t: Self) -> (Self, Self) {
        let n = (t.to_bits() as i32).wrapping_sub(ROUND_MAGIC_BITS);
        let low = n >> 1;
        (pow2_of(low), pow2_of(n - low))
    }
}

/// `n ≤ LANES` values from `s[at..]`: a whole vector when `n == LANES`, else the
/// zero-padded partial one.
#[inline(always)]
pub(crate) fn load_n<L: Lanes>(s: &[f32], at: usize, n: usize) -> L {
    if n == L::LANES {
        L::load(&s[at..])
    } else {
        L::load_partial(&s[at..at + n])
    }
}

/// Stores the first `n ≤ LANES` lanes of `v` to `d[at..]`.
#[inline(always)]
pub(crate) fn store_n<L: Lanes>(v: L, d: &mut [f32], at: usize, n: usize) {
    if n == L::LANES {
        v.store(&mut d[at..])
    } else {
        v.store_partial(&mut d[at..at + n])
    }
}

/// The lanes of `v` in order (the first `L::LANES` of the array).
#[inline(always)]
pub(crate) fn lane_values<L: Lanes>(v: L) -> [f32; 8] {
    let mut out = [0.0f32; 8];
    v.store(&mut out[..L::LANES]);
    out
}

/// The sum of the lanes, added in f64 in lane order.
#[inline(always)]
pub(crate) fn lane_sum_f64<L: Lanes>(v: L) -> f64 {
    lane_values(v)[..L::LANES]
        .iter()
        .map(|&x| f64::from(x))
        .sum()
}

/// The largest lane; NaN lanes are skipped (a row max that ignores NaN, as `>` does).
#[inline(always)]
pub(crate) fn lane_max<L: Lanes>(v: L) -> f32 {
    lane_values(v)[..L::LANES]
        .iter()
        .fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m })
}

/// 2ᵏ for integers k in [−126, 127].
#[inline(always)]
fn pow2_of(k: i32) -> f32 {
    f32::from_bits(((k + 127) << 23) as u32)
}

pub(super) const SCALAR_PATHS: Paths = Paths {
    forward: scalar_forward,
    backward: scalar_backward,
    math: scalar_math,
};

fn scalar_forward(act: Activation, item: &ItemShape<'_>, x: Option<&[f32]>, y: &mut [f32]) {
    kernel::forward::<f32>(act, item, x, y)
}

fn scalar_backward(
    act: Activation,
    from_y: bool,
    item: &ItemShape<'_>,
    saved: &[f32],
    dy: Option<&[f32]>,
    dz: &mut [f32],
    sums: &mut [f32],
) {
    kernel::backward::<f32>(act, from_y, item, saved, dy, dz, sums)
}

fn scalar_math(function: MathFunction, x: &[f32], y: &mut [f32]) {
    kernel::math::<f32>(function, x, y)
}
