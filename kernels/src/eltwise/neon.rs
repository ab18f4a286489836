//! The 4-lane path: [`Lanes`] on `wide::f32x4` (NEON on aarch64, SSE on x86_64, where
//! it is tested), and its entry points.
//!
//! Comparisons and selects rather than `wide`'s `max`/`min`, whose NaN and signed-zero
//! behaviour differs between NEON and SSE: this way both targets compute the same thing.

use super::driver::Paths;
use super::kernel::{self, ItemShape};
use super::lanes::{Lanes, ROUND_MAGIC_BITS};
use super::{Activation, MathFunction};
use wide::bytemuck::cast;
use wide::{f32x4, i32x4};

pub(super) const PATHS: Paths = Paths {
    forward,
    backward,
    math,
};

impl Lanes for f32x4 {
    const LANES: usize = 4;
    type Mask = f32x4;

    #[inline(always)]
    fn splat(value: f32) -> Self {
        f32x4::splat(value)
    }
    #[inline(always)]
    fn load(s: &[f32]) -> Self {
        f32x4::new([s[0], s[1], s[2], s[3]])
    }
    #[inline(always)]
    fn load_partial(s: &[f32]) -> Self {
        let mut lanes = [0.0; 4];
        lanes[..s.len()].copy_from_slice(s);
        f32x4::new(lanes)
    }
    #[inline(always)]
    fn store(self, d: &mut [f32]) {
        d[..4].copy_from_slice(&self.to_array());
    }
    #[inline(always)]
    fn store_partial(self, d: &mut [f32]) {
        let n = d.len();
        d.copy_from_slice(&self.to_array()[..n]);
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        f32x4::mul_add(self, b, c)
    }
    #[inline(always)]
    fn max(self, other: Self) -> Self {
        self.simd_gt(other).select(self, other)
    }
    #[inline(always)]
    fn min(self, other: Self) -> Self {
        self.simd_lt(other).select(self, other)
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        f32x4::sqrt(self)
    }
    #[inline(always)]
    fn abs(self) -> Self {
        f32x4::abs(self)
    }
    #[inline(always)]
    fn with_sign_of(self, sign: Self) -> Self {
        self | (sign & f32x4::splat(-0.0))
    }
    #[inline(always)]
    fn lt(self, other: Self) -> f32x4 {
        self.simd_lt(other)
    }
    #[inline(always)]
    fn le(self, other: Self) -> f32x4 {
        self.simd_le(other)
    }
    #[inline(always)]
    fn gt(self, other: Self) -> f32x4 {
        self.simd_gt(other)
    }
    #[inline(always)]
    fn eq(self, other: Self) -> f32x4 {
        self.simd_eq(other)
    }
    #[inline(always)]
    fn lanes_below(k: usize) -> f32x4 {
        f32x4::new([0.0, 1.0, 2.0, 3.0]).simd_lt(f32x4::splat(k as f32))
    }
    #[inline(always)]
    fn select(mask: f32x4, if_true: Self, if_false: Self) -> Self {
        mask.select(if_true, if_false)
    }
    #[inline(always)]
    fn pow2(t: Self) -> Self {
        let bits: i32x4 = cast(t);
        cast((bits + i32x4::splat(127)) << 23)
    }
    #[inline(always)]
    fn pow2_halves(t: Self) -> (Self, Self) {
        let n = cast::<f32x4, i32x4>(t) - i32x4::splat(ROUND_MAGIC_BITS);
        let low = n >> 1;
        (pow2_of(low), pow2_of(n - low))
    }
}

/// 2ᵏ for integers k in [−126, 127].
#[inline(always)]
fn pow2_of(k: i32x4) -> f32x4 {
    cast((k + i32x4::splat(127)) << 23)
}

fn forward(act: Activation, item: &ItemShape<'_>, x: Option<&[f32]>, y: &mut [f32]) {
    kernel::forward::<f32x4>(act, item, x, y)
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
    kernel::backward::<f32x4>(act, from_y, item, saved, dy, dz, sums)
}

fn math(function: MathFunction, x: &[f32], y: &mut [f32]) {
    kernel::math::<f32x4>(function, x, y)
}
