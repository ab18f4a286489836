//! Vector exp, expm1, tanh, sigmoid, erf and erfc in f32, generic over [`Lanes`].
//!
//! No table lookups and no branches: every lane runs the same instructions, and the
//! special ranges (saturation, signed zero, NaN) are handled with clamps and selects.
//! The polynomial coefficients come from `fit_coefficients.py` (mpmath `chebyfit` of a
//! smooth remainder, rounded to f32). The errors are measured, per ISA path, by the dense
//! sweep in `kernels/tests/eltwise.rs` and listed in the `eltwise` module docs.

use super::lanes::{Lanes, ROUND_MAGIC};

const LOG2_E: f32 = std::f32::consts::LOG2_E;
/// ln 2 in two parts: `LN2_HI` has 15 significant bits, so n·`LN2_HI` is exact for every
/// |n| < 2⁹ and x − n·`LN2_HI` loses nothing (Cody–Waite).
const LN2_HI: f32 = f32::from_bits(0x3F31_7200);
const LN2_LO: f32 = 1.428_606_8e-6;

/// exp rounds to +∞ above this and to 0 below `EXP_MIN`; the clamps keep the rounding
/// trick below 2²² and the scale factors normal.
const EXP_MAX: f32 = 89.0;
const EXP_MIN: f32 = -104.0;
/// expm1's clamp: 2ⁿ stays normal (or exactly 0 at n = −127, where expm1 is −1 anyway).
const EXPM1_MAX: f32 = 88.0;
const EXPM1_MIN: f32 = -88.0;
/// −ln 2⁻¹²⁶: e^x is subnormal below −this.
const NORMAL_EXP_MIN: f32 = 87.336_55;
/// tanh rounds to ±1 in f32 beyond ½·ln(2²⁶) ≈ 9.01.
const TANH_SATURATION: f32 = 9.1;

/// e^r = 1 + r·(1 + r·(½ + r·T(r))) for |r| ≤ 0.35: T's coefficients, constant first.
const EXPM1_TAIL: [f32; 5] = [
    1.666_666_7e-1,
    4.166_655e-2,
    8.333_321e-3,
    1.392_691_9e-3,
    1.988_351_4e-4,
];
/// erf a = a·E(a²) for 0 ≤ a ≤ `ERF_SWITCH`. (The fitted constant term is within an
/// ulp of 2/√π, not equal to it.)
#[allow(clippy::approx_constant)]
const ERF_SMALL: [f32; 6] = [
    1.128_379_1,
    -3.761_262e-1,
    1.128_338_6e-1,
    -2.683_511_4e-2,
    5.115_332e-3,
    -6.756_48e-4,
];
/// erfc a = exp(G(a − `ERFC_CENTER`) − a²) for `ERF_SWITCH` ≤ a ≤ `ERFC_LAST`:
/// log(erfc a) + a² varies slowly, so the tail keeps its relative accuracy.
const ERFC_LOG: [f32; 11] = [
    -1.641_640_4,
    -3.265_358_5e-1,
    4.871_323e-2,
    -8.933_768e-3,
    1.705_159_7e-3,
    -3.199_669_6e-4,
    5.739_560_2e-5,
    -9.950_731e-6,
    1.513_026_7e-6,
    -8.082_466e-8,
    -1.836_547_4e-8,
];
const ERF_SWITCH: f32 = 0.75;
const ERFC_CENTER: f32 = 2.75;
/// Beyond it erfc is below 1e-11 and is returned as 0 (erf rounds to 1 long before).
const ERFC_LAST: f32 = 4.75;

/// `lo ≤ x ≤ hi`, with NaN passed through.
#[inline(always)]
pub(crate) fn clamp<L: Lanes>(x: L, lo: f32, hi: f32) -> L {
    L::splat(hi).min(L::splat(lo).max(x))
}

/// Σ cᵢ·xⁱ by Horner's rule, coefficients constant first.
#[inline(always)]
fn poly<L: Lanes, const N: usize>(x: L, coefficients: &[f32; N]) -> L {
    let mut acc = L::splat(coefficients[N - 1]);
    for &c in coefficients[..N - 1].iter().rev() {
        acc = acc.mul_add(x, L::splat(c));
    }
    acc
}

/// x = n·ln 2 + r with |r| ≤ ln(2)/2 (a hair more without FMA): returns
/// (`ROUND_MAGIC` + n, r). |x| must be below 2²¹.
#[inline(always)]
fn reduce<L: Lanes>(x: L) -> (L, L) {
    let magic = L::splat(ROUND_MAGIC);
    let t = x.mul_add(L::splat(LOG2_E), magic);
    let n = t - magic;
    let r = n.mul_add(L::splat(-LN2_HI), x);
    (t, n.mul_add(L::splat(-LN2_LO), r))
}

/// P(r) with e^r = 1 + r·P(r): keeping the factor r outside keeps expm1's sign and
/// relative accuracy at tiny r.
#[inline(always)]
fn exp_p<L: Lanes>(r: L) -> L {
    let one = L::splat(1.0);
    let tail = poly(r, &EXPM1_TAIL);
    tail.mul_add(r, L::splat(0.5)).mul_add(r, one)
}

/// e^x: +∞ above ≈ 88.72, gradual underflow to 0 below ≈ −87.3, NaN for NaN.
#[inline(always)]
pub(crate) fn exp<L: Lanes>(x: L) -> L {
    let (t, r) = reduce(clamp(x, EXP_MIN, EXP_MAX));
    let (low, high) = L::pow2_halves(t);
    // Two normal factors: the product rounds once, into ∞ or a subnormal if it must.
    r.mul_add(exp_p(r), L::splat(1.0)) * low * high
}

/// e^x for x ≤ 0 (or NaN) where no subnormal result is needed: x is clamped below at
/// ln 2⁻¹²⁶ (the result stays about 2⁻¹²⁶ there instead of going subnormal or 0), so
/// that one scale factor 2ⁿ stays normal — cheaper than [`exp`]'s two.
#[inline(always)]
pub(crate) fn exp_nonpositive<L: Lanes>(x: L) -> L {
    let (t, r) = reduce(L::splat(-NORMAL_EXP_MIN).max(x));
    r.mul_add(exp_p(r), L::splat(1.0)) * L::pow2(t)
}

/// e^x − 1 for x ≤ 88 (larger x give e⁸⁸ − 1), accurate near 0, −0 kept.
#[inline(always)]
pub(crate) fn expm1<L: Lanes>(x: L) -> L {
    let (t, r) = reduce(clamp(x, EXPM1_MIN, EXPM1_MAX));
    let scale = L::pow2(t);
    // 2ⁿ·(e^r − 1) + (2ⁿ − 1): exact 2ⁿ − 1, so no cancellation beyond one rounding.
    let m = scale.mul_add(r * exp_p(r), scale - L::splat(1.0));
    L::select(x.eq(L::splat(0.0)), x, m)
}

/// tanh x = sign(x)·m/(m + 2) with m = expm1(2|x|): no cancellation near 0, exactly ±1
/// beyond the saturation point, −0 kept.
#[inline(always)]
pub(crate) fn tanh<L: Lanes>(x: L) -> L {
    let a = L::splat(TANH_SATURATION).min(x.abs());
    let m = expm1(a + a);
    (m / (m + L::splat(2.0))).with_sign_of(x)
}

/// 1/(1 + e^−x): 0 below ≈ −88.7 (the true value is subnormal there), 1 above ≈ 16.6.
#[inline(always)]
pub(crate) fn sigmoid<L: Lanes>(x: L) -> L {
    let one = L::splat(1.0);
    one / (one + exp(-x))
}

/// (erf a, erfc a) for a ≥ 0 (or NaN), given `a2` = a² (which a caller may have more
/// accurately than a·a): a·E(a²) below the switch, the exp tail above.
#[inline(always)]
pub(crate) fn erf_erfc_abs<L: Lanes>(a: L, a2: L) -> (L, L) {
    let one = L::splat(1.0);
    let small = a * poly(a2, &ERF_SMALL);
    let at = clamp(a, ERF_SWITCH, ERFC_LAST);
    // Outside [switch, last] the tail is not used (below) or replaced by 0 (above).
    // The exponent is below 0 (G < 0 on the clamped range); the result is normal down
    // to a ≈ 9.3, and beyond `ERFC_LAST` it is replaced by 0 anyway.
    let tail = exp_nonpositive(poly(at - L::splat(ERFC_CENTER), &ERFC_LOG) - a2);
    let tail = L::select(a.gt(L::splat(ERFC_LAST)), L::splat(0.0), tail);
    let is_small = a.le(L::splat(ERF_SWITCH));
    (
        L::select(is_small, small, one - tail),
        L::select(is_small, one - small, tail),
    )
}

/// 1/(2k + 1) for k = 0..8: the series ln(1 + u) = 2·atanh(s) = 2s·Σ s²ᵏ/(2k + 1) with
/// s = u/(2 + u). For 0 ≤ u ≤ 1, s ≤ 1/3 and the first omitted term is below 2⁻²⁶
/// relative: plain Taylor coefficients, no fit needed.
const LOG1P_ATANH: [f32; 8] = [
    1.0,
    1.0 / 3.0,
    1.0 / 5.0,
    1.0 / 7.0,
    1.0 / 9.0,
    1.0 / 11.0,
    1.0 / 13.0,
    1.0 / 15.0,
];

/// ln(1 + u) for 0 ≤ u ≤ 1 (as for u = e^−|x| in the softplus of a logistic loss),
/// within a few ulp; 0 kept.
#[inline(always)]
pub(crate) fn log1p_unit<L: Lanes>(u: L) -> L {
    let s = u / (L::splat(2.0) + u);
    let series = poly(s * s, &LOG1P_ATANH);
    (s + s) * series
}

/// erf x, odd (−0 kept), exactly ±1 from |x| ≈ 3.9 on.
#[inline(always)]
pub(crate) fn erf<L: Lanes>(x: L) -> L {
    let a = x.abs();
    erf_erfc_abs(a, a * a).0.with_sign_of(x)
}
