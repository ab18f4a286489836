//! Scalar activation functions in f32: the portable path, and the per-element step of
//! epilogues on every path until the vectorized versions take over.

use super::Activation;

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

/// The error function, to about 1e-15 absolute: its Maclaurin series for |x| < 3, and
/// for larger |x| a continued fraction of erfc, which converges quickly there.
pub(crate) fn erf(x: f64) -> f64 {
    let ax = x.abs();
    let value = if ax < 3.0 {
        // erf x = 2/√π Σ (−1)ⁿ x^(2n+1) / (n! (2n+1)); terms shrink below 1e-17 by n ≈ 60.
        let x2 = ax * ax;
        let mut term = ax; // (−1)ⁿ x^(2n+1) / n!
        let mut sum = ax;
        for n in 1..100 {
            term *= -x2 / n as f64;
            let next = term / (2 * n + 1) as f64;
            sum += next;
            if next.abs() < 1e-17 * sum.abs() {
                break;
            }
        }
        sum * std::f64::consts::FRAC_2_SQRT_PI
    } else {
        1.0 - erfc_continued_fraction(ax)
    };
    value.copysign(x)
}

/// erfc x for x ≥ 3 by the continued fraction
/// erfc x = e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + …))))).
fn erfc_continued_fraction(x: f64) -> f64 {
    let mut tail = x;
    for n in (1..60).rev() {
        tail = x + (n as f64 / 2.0) / tail;
    }
    (-x * x).exp() / std::f64::consts::PI.sqrt() / tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_known_values() {
        // Values from standard tables.
        let table = [
            (0.0, 0.0),
            (0.5, 0.520_499_877_813_046_5),
            (1.0, 0.842_700_792_949_714_9),
            (2.0, 0.995_322_265_018_952_7),
            (2.9, 0.999_958_902_121_900_7),
            (3.0, 0.999_977_909_503_001_4),
            (4.0, 0.999_999_984_582_742_1),
        ];
        for (x, want) in table {
            assert!((erf(x) - want).abs() < 1e-14, "erf({x}) = {}", erf(x));
            assert!((erf(-x) + want).abs() < 1e-14);
        }
        assert_eq!(erf(40.0), 1.0);
    }

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
