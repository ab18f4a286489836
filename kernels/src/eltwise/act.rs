//! Each activation's value and gradient on a vector of lanes, and the dispatch from
//! [`Activation`] to a concrete type, so that every loop is compiled per activation.
//!
//! Values follow PyTorch's definitions and NaN behaviour (the reference's); gradients
//! follow PyTorch's backward at the kinks: ReLU′(0) = 0, LeakyReLU′(0) = slope,
//! ELU′(0) = alpha, and a gradient is selected, not multiplied, where it is 0 or 1.

use super::lanes::Lanes;
use super::vmath::{self, clamp};

/// The forward of an activation: y = f(z).
pub(super) trait Forward<L: Lanes>: Copy {
    fn value(self, z: L) -> L;
}

/// The backward of an activation: dz = dy·f′, from what it saves (z or y, per type).
pub(super) trait Gradient<L: Lanes>: Copy {
    fn grad(self, saved: L, dy: L) -> L;
}

use std::f64::consts::{FRAC_1_SQRT_2, FRAC_2_SQRT_PI};

/// 1/√(2π).
const FRAC_1_SQRT_2PI: f32 = (FRAC_1_SQRT_2 * FRAC_2_SQRT_PI / 2.0) as f32;
/// 2·√(2/π) and 2·√(2/π)·0.044715: the tanh form of GELU is x·σ(x·(C1 + C3·x²)).
const GELU_TANH_C1: f32 = (2.0 * FRAC_2_SQRT_PI * FRAC_1_SQRT_2) as f32;
const GELU_TANH_C3: f32 = (2.0 * FRAC_2_SQRT_PI * FRAC_1_SQRT_2 * 0.044_715) as f32;
/// Beyond this |z| the tanh-form GELU gradient is 0 or 1 to far better than f32
/// resolution; the clamp keeps z³ finite, so that no ∞·0 appears.
const GELU_TANH_GRAD_LIMIT: f32 = 12.0;

/// (σ(t), σ(−t)) from e^−|t|, which never overflows: both are accurate in both tails.
#[inline(always)]
fn sigmoid_pair<L: Lanes>(t: L) -> (L, L) {
    let e = vmath::exp(-t.abs());
    let q = L::splat(1.0) / (L::splat(1.0) + e);
    let eq = e * q;
    let negative = t.lt(zero());
    (L::select(negative, eq, q), L::select(negative, q, eq))
}

#[inline(always)]
fn zero<L: Lanes>() -> L {
    L::splat(0.0)
}

#[derive(Clone, Copy)]
pub(super) struct Identity;

impl<L: Lanes> Forward<L> for Identity {
    #[inline(always)]
    fn value(self, z: L) -> L {
        z
    }
}

impl<L: Lanes> Gradient<L> for Identity {
    #[inline(always)]
    fn grad(self, _saved: L, dy: L) -> L {
        dy
    }
}

/// ReLU. Its gradient reads z or y alike: both are > 0 exactly where z > 0.
#[derive(Clone, Copy)]
pub(super) struct Relu;

impl<L: Lanes> Forward<L> for Relu {
    #[inline(always)]
    fn value(self, z: L) -> L {
        // z < 0 ? 0 : z keeps −0 and NaN, as `torch.relu` does.
        L::select(z.lt(zero()), zero(), z)
    }
}

impl<L: Lanes> Gradient<L> for Relu {
    #[inline(always)]
    fn grad(self, saved: L, dy: L) -> L {
        L::select(saved.le(zero()), zero(), dy)
    }
}

/// LeakyReLU with its slope. The gradient reads z, or y when slope ≥ 0 (then y > 0
/// exactly where z > 0).
#[derive(Clone, Copy)]
pub(super) struct Leaky<L>(pub L);

impl<L: Lanes> Forward<L> for Leaky<L> {
    #[inline(always)]
    fn value(self, z: L) -> L {
        L::select(z.gt(zero()), z, z * self.0)
    }
}

impl<L: Lanes> Gradient<L> for Leaky<L> {
    #[inline(always)]
    fn grad(self, saved: L, dy: L) -> L {
        L::select(saved.gt(zero()), dy, dy * self.0)
    }
}

/// Sigmoid; the gradient from z.
#[derive(Clone, Copy)]
pub(super) struct Sigmoid;

impl<L: Lanes> Forward<L> for Sigmoid {
    #[inline(always)]
    fn value(self, z: L) -> L {
        vmath::sigmoid(z)
    }
}

impl<L: Lanes> Gradient<L> for Sigmoid {
    #[inline(always)]
    fn grad(self, z: L, dy: L) -> L {
        let (s, s_neg) = sigmoid_pair(z);
        dy * (s * s_neg)
    }
}

/// Sigmoid's gradient from y: y·(1 − y), as PyTorch computes it.
#[derive(Clone, Copy)]
pub(super) struct SigmoidFromY;

impl<L: Lanes> Gradient<L> for SigmoidFromY {
    #[inline(always)]
    fn grad(self, y: L, dy: L) -> L {
        dy * (y * (L::splat(1.0) - y))
    }
}

/// tanh; the gradient from z.
#[derive(Clone, Copy)]
pub(super) struct Tanh;

impl<L: Lanes> Forward<L> for Tanh {
    #[inline(always)]
    fn value(self, z: L) -> L {
        vmath::tanh(z)
    }
}

impl<L: Lanes> Gradient<L> for Tanh {
    #[inline(always)]
    fn grad(self, z: L, dy: L) -> L {
        // sech² z = 4e/(1 + e)² with e = e^−2|z|: no cancellation, unlike 1 − tanh² z.
        let e = vmath::exp(L::splat(-2.0) * z.abs());
        let one_plus = L::splat(1.0) + e;
        dy * (L::splat(4.0) * e / (one_plus * one_plus))
    }
}

/// tanh's gradient from y: (1 − y)(1 + y) = 1 − y², as PyTorch computes it.
#[derive(Clone, Copy)]
pub(super) struct TanhFromY;

impl<L: Lanes> Gradient<L> for TanhFromY {
    #[inline(always)]
    fn grad(self, y: L, dy: L) -> L {
        let one = L::splat(1.0);
        dy * ((one - y) * (one + y))
    }
}

/// GELU, erf form: z·Φ(z); the gradient Φ(z) + z·φ(z) from z.
#[derive(Clone, Copy)]
pub(super) struct Gelu;

/// Φ(x) = ½·erfc(−x/√2): for x < 0 from erfc directly, which keeps the lower tail's
/// relative accuracy down to Φ ≈ 1e-11. (x/√2)² is taken as ½x², without the rounding
/// of x/√2, to which the tail is sensitive.
#[inline(always)]
fn normal_cdf<L: Lanes>(x: L) -> L {
    let a = (x * L::splat(FRAC_1_SQRT_2 as f32)).abs();
    let (erf, erfc) = vmath::erf_erfc_abs(a, L::splat(0.5) * x * x);
    let half = L::splat(0.5);
    L::select(x.lt(zero()), half * erfc, half.mul_add(erf, half))
}

impl<L: Lanes> Forward<L> for Gelu {
    #[inline(always)]
    fn value(self, z: L) -> L {
        z * normal_cdf(z)
    }
}

impl<L: Lanes> Gradient<L> for Gelu {
    #[inline(always)]
    fn grad(self, z: L, dy: L) -> L {
        let density = vmath::exp(L::splat(-0.5) * z * z) * L::splat(FRAC_1_SQRT_2PI);
        dy * z.mul_add(density, normal_cdf(z))
    }
}

/// GELU, tanh form: ½z(1 + tanh u) = z·σ(2u), u = √(2/π)(z + 0.044715z³), which has no
/// cancellation in either tail.
#[derive(Clone, Copy)]
pub(super) struct GeluTanh;

impl<L: Lanes> Forward<L> for GeluTanh {
    #[inline(always)]
    fn value(self, z: L) -> L {
        let two_u = z * (z * z).mul_add(L::splat(GELU_TANH_C3), L::splat(GELU_TANH_C1));
        z / (L::splat(1.0) + vmath::exp(-two_u))
    }
}

impl<L: Lanes> Gradient<L> for GeluTanh {
    #[inline(always)]
    fn grad(self, z: L, dy: L) -> L {
        // d/dz z·σ(2u) = σ(2u)·(1 + z·σ(−2u)·2u′).
        let z = clamp(z, -GELU_TANH_GRAD_LIMIT, GELU_TANH_GRAD_LIMIT);
        let z2 = z * z;
        let two_u = z * z2.mul_add(L::splat(GELU_TANH_C3), L::splat(GELU_TANH_C1));
        let two_du = z2.mul_add(L::splat(3.0 * GELU_TANH_C3), L::splat(GELU_TANH_C1));
        let (s, s_neg) = sigmoid_pair(two_u);
        dy * (s * (z * s_neg).mul_add(two_du, L::splat(1.0)))
    }
}

/// ELU with its alpha; the gradient from z.
#[derive(Clone, Copy)]
pub(super) struct Elu<L>(pub L);

impl<L: Lanes> Forward<L> for Elu<L> {
    #[inline(always)]
    fn value(self, z: L) -> L {
        L::select(z.gt(zero()), z, self.0 * vmath::expm1(z))
    }
}

impl<L: Lanes> Gradient<L> for Elu<L> {
    #[inline(always)]
    fn grad(self, z: L, dy: L) -> L {
        L::select(z.le(zero()), dy * (self.0 * vmath::exp(z)), dy)
    }
}

/// ELU's gradient from y (alpha ≥ 0): y + alpha where y ≤ 0, as PyTorch computes it.
#[derive(Clone, Copy)]
pub(super) struct EluFromY<L>(pub L);

impl<L: Lanes> Gradient<L> for EluFromY<L> {
    #[inline(always)]
    fn grad(self, y: L, dy: L) -> L {
        L::select(y.le(zero()), dy * (y + self.0), dy)
    }
}

/// SiLU: z·σ(z); the gradient σ(z)·(1 + z·σ(−z)) from z.
#[derive(Clone, Copy)]
pub(super) struct Silu;

impl<L: Lanes> Forward<L> for Silu {
    #[inline(always)]
    fn value(self, z: L) -> L {
        // σ from the pair: no overflow of e^−z, so the lower tail fades out smoothly.
        z * sigmoid_pair(z).0
    }
}

impl<L: Lanes> Gradient<L> for Silu {
    #[inline(always)]
    fn grad(self, z: L, dy: L) -> L {
        let (s, s_neg) = sigmoid_pair(z);
        dy * (s * z.mul_add(s_neg, L::splat(1.0)))
    }
}

/// Expands `$body` once per activation with `$f` bound to its [`Forward`] type.
macro_rules! with_forward {
    ($L:ty, $act:expr, $f:ident => $body:expr) => {{
        use $crate::eltwise::act::*;
        use $crate::eltwise::Activation as A;
        match $act {
            A::Identity => {
                let $f = Identity;
                $body
            }
            A::Relu => {
                let $f = Relu;
                $body
            }
            A::LeakyRelu { slope } => {
                let $f = Leaky(<$L as Lanes>::splat(slope));
                $body
            }
            A::Sigmoid => {
                let $f = Sigmoid;
                $body
            }
            A::Tanh => {
                let $f = Tanh;
                $body
            }
            A::Gelu => {
                let $f = Gelu;
                $body
            }
            A::GeluTanh => {
                let $f = GeluTanh;
                $body
            }
            A::Elu { alpha } => {
                let $f = Elu(<$L as Lanes>::splat(alpha));
                $body
            }
            A::Silu => {
                let $f = Silu;
                $body
            }
        }
    }};
}

/// Expands `$body` once per activation with `$g` bound to its [`Gradient`] type: the
/// from-y form where `$from_y` and the activation has one (the public API rejects y for
/// the others before it gets here).
macro_rules! with_gradient {
    ($L:ty, $act:expr, $from_y:expr, $g:ident => $body:expr) => {{
        use $crate::eltwise::act::*;
        use $crate::eltwise::Activation as A;
        match ($act, $from_y) {
            (A::Identity, _) => {
                let $g = Identity;
                $body
            }
            (A::Relu, _) => {
                let $g = Relu;
                $body
            }
            (A::LeakyRelu { slope }, _) => {
                let $g = Leaky(<$L as Lanes>::splat(slope));
                $body
            }
            (A::Sigmoid, false) => {
                let $g = Sigmoid;
                $body
            }
            (A::Sigmoid, true) => {
                let $g = SigmoidFromY;
                $body
            }
            (A::Tanh, false) => {
                let $g = Tanh;
                $body
            }
            (A::Tanh, true) => {
                let $g = TanhFromY;
                $body
            }
            (A::Gelu, _) => {
                let $g = Gelu;
                $body
            }
            (A::GeluTanh, _) => {
                let $g = GeluTanh;
                $body
            }
            (A::Elu { alpha }, false) => {
                let $g = Elu(<$L as Lanes>::splat(alpha));
                $body
            }
            (A::Elu { alpha }, true) => {
                let $g = EluFromY(<$L as Lanes>::splat(alpha));
                $body
            }
            (A::Silu, _) => {
                let $g = Silu;
                $body
            }
        }
    }};
}

pub(super) use {with_forward, with_gradient};
