//! Scalar activation functions in f32: the portable path, and the per-element step of
//! epilogues on every path until the vectorized versions take over.

use super::Activation;
use crate::math::erf;

/// √(2/π), the GELU tanh-form constant.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;
/// 1/√2.
const FRAC_1_SQRT_2: f64 = std::f64::consts::FRAC_1_SQRT_2;

/// `act(x)`.
#[inline]
pub fn activate(act: Activation, x: f32) -> f32 {
    match act {
        Activation::Identity => x,
        Activation::Relu => {
            if x > 0.0 {
                x
            } else {
                0.0
            }
        }
        Activation::LeakyRelu { slope } => {
            if x > 0.0 {
                x
            } else {
                x * slope
            }
        }
        Activation::Sigmoid => sigmoid(x),
        Activation::Tanh => x.tanh(),
        Activation::Gelu => {
            let x64 = f64::from(x);
            (0.5 * x64 * (1.0 + erf(x64 * FRAC_1_SQRT_2))) as f32
        }
        Activation::GeluTanh => {
            let inner = SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x);
            0.5 * x * (1.0 + inner.tanh())
        }
        Activation::Elu { alpha } => {
            if x > 0.0 {
                x
            } else {
                alpha * x.exp_m1()
            }
        }
        Activation::Silu => x * sigmoid(x),
    }
}

/// 1 / (1 + e^−x), without overflow for large |x|.
#[inline]
fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activations_at_a_few_points() {
        assert_eq!(activate(Activation::Relu, -2.0), 0.0);
        assert_eq!(activate(Activation::LeakyRelu { slope: 0.1 }, -2.0), -0.2);
        assert_eq!(activate(Activation::Sigmoid, 0.0), 0.5);
        assert_eq!(activate(Activation::Sigmoid, -200.0), 0.0);
        assert_eq!(activate(Activation::Sigmoid, 200.0), 1.0);
        assert!((activate(Activation::Gelu, 1.0) - 0.841_344_7).abs() < 1e-6);
        assert!((activate(Activation::GeluTanh, 1.0) - 0.841_192).abs() < 1e-6);
        assert!((activate(Activation::Elu { alpha: 1.0 }, -1.0) + 0.632_120_6).abs() < 1e-6);
        assert!((activate(Activation::Silu, 1.0) - 0.731_058_6).abs() < 1e-6);
    }
}
