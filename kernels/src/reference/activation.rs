//! Reference activations and the fused bias + activation, with PyTorch's definitions.
//!
//! Each element is evaluated in f64 from its f32 input and rounded once. Derivatives
//! follow PyTorch's backward at the kinks: ReLU'(0) = 0, LeakyReLU'(0) = slope,
//! ELU'(0) = alpha.

use crate::eltwise::{Activation, BiasShape};
use crate::error::{check_exact, Result};
use crate::math::erfc;
use std::f64::consts::{FRAC_1_SQRT_2, FRAC_2_SQRT_PI, PI};

/// √(2/π), the scale inside the tanh form of GELU.
const SQRT_2_OVER_PI: f64 = FRAC_2_SQRT_PI * FRAC_1_SQRT_2;

/// The cubic coefficient of the tanh form of GELU (PyTorch's `kKappa`).
const GELU_TANH_KAPPA: f64 = 0.044715;

/// 1 / (1 + e^−x), computed so that both tails are accurate (σ(−x) is 1 − σ(x)).
fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// sech² x = 1 − tanh² x, without the cancellation of the latter for large |x|.
fn sech2(x: f64) -> f64 {
    let c = x.cosh();
    1.0 / (c * c)
}

/// The argument of tanh in the tanh form of GELU.
fn gelu_tanh_inner(x: f64) -> f64 {
    SQRT_2_OVER_PI * (x + GELU_TANH_KAPPA * x * x * x)
}

/// The standard normal CDF Φ(x) = ½·erfc(−x/√2) (erfc keeps the lower tail accurate).
fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x * FRAC_1_SQRT_2)
}

/// The activation of `x`, by PyTorch's definition. NaN propagates as in PyTorch.
fn value(act: Activation, x: f64) -> f64 {
    match act {
        Activation::Identity => x,
        // Written so that NaN passes through, as `torch.relu` does.
        Activation::Relu => {
            if x < 0.0 {
                0.0
            } else {
                x
            }
        }
        Activation::LeakyRelu { slope } => {
            if x > 0.0 {
                x
            } else {
                f64::from(slope) * x
            }
        }
        Activation::Sigmoid => sigmoid(x),
        Activation::Tanh => x.tanh(),
        Activation::Gelu => x * normal_cdf(x),
        Activation::GeluTanh => 0.5 * x * (1.0 + gelu_tanh_inner(x).tanh()),
        Activation::Elu { alpha } => {
            if x > 0.0 {
                x
            } else {
                f64::from(alpha) * x.exp_m1()
            }
        }
        Activation::Silu => x * sigmoid(x),
    }
}

/// The derivative of the activation at `x`, as PyTorch's backward computes it (which
/// fixes the value at the kinks and, through the comparisons, at NaN).
fn derivative(act: Activation, x: f64) -> f64 {
    match act {
        Activation::Identity => 1.0,
        // `threshold_backward`: the gradient is dropped where the input is <= 0.
        Activation::Relu => {
            if x <= 0.0 {
                0.0
            } else {
                1.0
            }
        }
        Activation::LeakyRelu { slope } => {
            if x > 0.0 {
                1.0
            } else {
                f64::from(slope)
            }
        }
        Activation::Sigmoid => sigmoid(x) * sigmoid(-x),
        Activation::Tanh => sech2(x),
        Activation::Gelu => normal_cdf(x) + x * (-0.5 * x * x).exp() / (2.0 * PI).sqrt(),
        Activation::GeluTanh => {
            let inner = gelu_tanh_inner(x);
            let d_inner = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_TANH_KAPPA * x * x);
            0.5 * (1.0 + inner.tanh()) + 0.5 * x * sech2(inner) * d_inner
        }
        Activation::Elu { alpha } => {
            if x <= 0.0 {
                f64::from(alpha) * x.exp()
            } else {
                1.0
            }
        }
        Activation::Silu => sigmoid(x) * (1.0 + x * sigmoid(-x)),
    }
}

/// y = act(x), element by element.
///
/// Errors: non-finite activation parameters; `y` not the length of `x`.
pub fn activation_forward(act: Activation, x: &[f32], y: &mut [f32]) -> Result<()> {
    act.validate()?;
    check_exact("activation y", x.len(), y.len())?;
    for (y, &x) in y.iter_mut().zip(x) {
        *y = value(act, f64::from(x)) as f32;
    }
    Ok(())
}

/// dx = dy·act'(x), element by element, where `x` is the activation's input.
///
/// Errors: non-finite activation parameters; `dy` or `dx` not the length of `x`.
pub fn activation_backward(act: Activation, x: &[f32], dy: &[f32], dx: &mut [f32]) -> Result<()> {
    act.validate()?;
    check_exact("activation dy", x.len(), dy.len())?;
    check_exact("activation dx", x.len(), dx.len())?;
    for ((dx, &x), &dy) in dx.iter_mut().zip(x).zip(dy) {
        *dx = (f64::from(dy) * derivative(act, f64::from(x))) as f32;
    }
    Ok(())
}

/// y = act(x + bias), with `bias[c]` added to every element of channel c of `shape`
/// (no bias when `None`). The sum is taken in f64, so it is not rounded to f32 before
/// the activation.
///
/// Errors: `shape` overflows; non-finite activation parameters; `x` or `y` not
/// `shape.len()` long; `bias` not `shape.channels` long.
pub fn bias_activation_forward(
    shape: &BiasShape,
    act: Activation,
    x: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
) -> Result<()> {
    shape.validate()?;
    act.validate()?;
    check_exact("bias-activation x", shape.len(), x.len())?;
    if let Some(bias) = bias {
        check_exact("bias-activation bias", shape.channels, bias.len())?;
    }
    check_exact("bias-activation y", shape.len(), y.len())?;
    for o in 0..shape.outer {
        for c in 0..shape.channels {
            let b = bias.map_or(0.0, |bias| f64::from(bias[c]));
            for i in 0..shape.inner {
                let at = shape.index(o, c, i);
                y[at] = value(act, f64::from(x[at]) + b) as f32;
            }
        }
    }
    Ok(())
}

/// Backward of [`bias_activation_forward`]: from the pre-activation `z` = x + bias and
/// the output gradient `dy`, dz = dy·act'(z) (which is also the gradient of x) and,
/// when `db` is given, `db[c]` = Σ dz over the outer and inner positions of channel c,
/// summed in f64 before rounding.
///
/// Errors: `shape` overflows; non-finite activation parameters; `z`, `dy` or `dz` not
/// `shape.len()` long; `db` not `shape.channels` long.
pub fn bias_activation_backward(
    shape: &BiasShape,
    act: Activation,
    z: &[f32],
    dy: &[f32],
    dz: &mut [f32],
    mut db: Option<&mut [f32]>,
) -> Result<()> {
    shape.validate()?;
    act.validate()?;
    check_exact("bias-activation z", shape.len(), z.len())?;
    check_exact("bias-activation dy", shape.len(), dy.len())?;
    check_exact("bias-activation dz", shape.len(), dz.len())?;
    if let Some(db) = db.as_deref() {
        check_exact("bias-activation db", shape.channels, db.len())?;
    }
    for c in 0..shape.channels {
        let mut sum = 0.0f64;
        for o in 0..shape.outer {
            for i in 0..shape.inner {
                let at = shape.index(o, c, i);
                let d = f64::from(dy[at]) * derivative(act, f64::from(z[at]));
                dz[at] = d as f32;
                sum += d;
            }
        }
        if let Some(db) = db.as_deref_mut() {
            db[c] = sum as f32;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::KernelError;
    use crate::layout::{Dims4, Layout};

    const ALL: [Activation; 10] = [
        Activation::Identity,
        Activation::Relu,
        Activation::LeakyRelu { slope: 0.01 },
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Gelu,
        Activation::GeluTanh,
        Activation::Elu { alpha: 1.0 },
        Activation::Elu { alpha: 0.3 },
        Activation::Silu,
    ];

    /// Deterministic values spread over [−scale, scale].
    fn wave(len: usize, seed: f64, scale: f64) -> Vec<f32> {
        (0..len)
            .map(|i| (scale * ((i as f64 + seed) * 1.618_033_988_749).sin()) as f32)
            .collect()
    }

    fn assert_rel(got: f64, expected: f64, rel: f64, what: &str) {
        assert!(
            (got - expected).abs() <= rel * expected.abs(),
            "{what}: got {got:e}, expected {expected:e}"
        );
    }

    #[test]
    fn values_by_hand() {
        // Correctly rounded values (mpmath) of the smooth activations at ±1 and −3.
        let cases = [
            (Activation::Gelu, 1.0, 0.8413447460685429),
            (Activation::Gelu, -3.0, -0.0040496940948902835),
            (Activation::GeluTanh, 1.0, 0.8411919906082767),
            (Activation::Silu, 1.0, 0.7310585786300049),
            (Activation::Elu { alpha: 1.0 }, -1.0, -0.6321205588285577),
        ];
        for (act, x, expected) in cases {
            assert_rel(value(act, x), expected, 1e-14, &format!("{act:?}({x})"));
        }
        assert_eq!(value(Activation::Relu, -2.0), 0.0);
        assert_eq!(value(Activation::LeakyRelu { slope: 0.25 }, -2.0), -0.5);
        assert_eq!(value(Activation::Sigmoid, 0.0), 0.5);
        assert!(value(Activation::Relu, f64::NAN).is_nan());
        // The tails saturate instead of producing NaN.
        assert_eq!(value(Activation::Sigmoid, -1e4), 0.0);
        assert_eq!(value(Activation::Gelu, -1e4), 0.0);
        assert_eq!(value(Activation::Silu, 1e4), 1e4);
    }

    #[test]
    fn derivatives_match_central_differences() {
        let h = 1e-5;
        for act in ALL {
            // Includes the tails; skips x = 0, where ReLU and ELU are not differentiable.
            for k in -600..=600 {
                let x = f64::from(k) * 0.013 + 0.0007;
                let fd = (value(act, x + h) - value(act, x - h)) / (2.0 * h);
                let d = derivative(act, x);
                assert!(
                    (d - fd).abs() <= 1e-8 * (1.0 + d.abs()),
                    "{act:?} at {x}: derivative {d:e}, finite difference {fd:e}"
                );
            }
        }
    }

    #[test]
    fn derivatives_at_the_kinks_follow_pytorch() {
        assert_eq!(derivative(Activation::Relu, 0.0), 0.0);
        assert_eq!(
            derivative(Activation::LeakyRelu { slope: 0.2 }, 0.0),
            0.2f32 as f64
        );
        assert_eq!(derivative(Activation::Elu { alpha: 0.5 }, 0.0), 0.5);
        assert_eq!(derivative(Activation::Elu { alpha: 0.5 }, 1e-300), 1.0);
        // Both tails of the sigmoid-based derivatives stay accurate, not just 0.
        assert!(derivative(Activation::Sigmoid, 40.0) > 0.0);
        assert!(derivative(Activation::Tanh, 20.0) > 0.0);
    }

    #[test]
    fn forward_and_backward_apply_the_scalar_functions() {
        let x = wave(300, 0.5, 6.0);
        let dy = wave(300, 7.0, 1.0);
        let (mut y, mut dx) = (vec![f32::NAN; 300], vec![f32::NAN; 300]);
        for act in ALL {
            activation_forward(act, &x, &mut y).unwrap();
            activation_backward(act, &x, &dy, &mut dx).unwrap();
            for i in 0..x.len() {
                let xi = f64::from(x[i]);
                assert_eq!(y[i], value(act, xi) as f32, "{act:?}");
                assert_eq!(dx[i], (f64::from(dy[i]) * derivative(act, xi)) as f32);
            }
        }
    }

    #[test]
    fn bias_activation_adds_the_channel_bias_then_activates() {
        let shape = BiasShape::new(2, 3, 4);
        let x = wave(24, 1.0, 3.0);
        let bias = [0.5f32, -1.0, 2.0];
        let mut y = vec![f32::NAN; 24];
        let act = Activation::Gelu;
        bias_activation_forward(&shape, act, &x, Some(&bias), &mut y).unwrap();
        for o in 0..2 {
            for (c, &b) in bias.iter().enumerate() {
                for i in 0..4 {
                    let at = (o * 3 + c) * 4 + i;
                    let z = f64::from(x[at]) + f64::from(b);
                    assert_eq!(y[at], value(act, z) as f32);
                }
            }
        }
        let mut no_bias = vec![f32::NAN; 24];
        let mut plain = vec![f32::NAN; 24];
        bias_activation_forward(&shape, act, &x, None, &mut no_bias).unwrap();
        activation_forward(act, &x, &mut plain).unwrap();
        assert_eq!(no_bias, plain);
    }

    #[test]
    fn bias_gradient_sums_dz_per_channel() {
        // A 3 × 2 matrix with a bias per column and the identity: db = column sums of dy.
        let shape = BiasShape::matrix(3, 2);
        let z = [0.0f32; 6];
        let dy = [1.0f32, 10.0, 2.0, 20.0, 3.0, 30.0];
        let mut dz = [f32::NAN; 6];
        let mut db = [f32::NAN; 2];
        bias_activation_backward(
            &shape,
            Activation::Identity,
            &z,
            &dy,
            &mut dz,
            Some(&mut db),
        )
        .unwrap();
        assert_eq!(dz, dy);
        assert_eq!(db, [6.0, 60.0]);

        let shape = BiasShape::new(3, 2, 5);
        let z = wave(30, 2.0, 4.0);
        let dy = wave(30, 3.0, 1.0);
        let act = Activation::Silu;
        let (mut dz, mut dx) = (vec![f32::NAN; 30], vec![f32::NAN; 30]);
        let mut db = [f32::NAN; 2];
        bias_activation_backward(&shape, act, &z, &dy, &mut dz, Some(&mut db)).unwrap();
        activation_backward(act, &z, &dy, &mut dx).unwrap();
        assert_eq!(dz, dx);
        for (c, &db_c) in db.iter().enumerate() {
            let sum: f64 = (0..3)
                .flat_map(|o| (0..5).map(move |i| (o * 2 + c) * 5 + i))
                .map(|at| f64::from(dy[at]) * derivative(act, f64::from(z[at])))
                .sum();
            assert_eq!(db_c, sum as f32);
        }
        let mut dz_only = vec![f32::NAN; 30];
        bias_activation_backward(&shape, act, &z, &dy, &mut dz_only, None).unwrap();
        assert_eq!(dz_only, dz);
    }

    #[test]
    fn nhwc_matches_nchw() {
        let dims = Dims4 {
            n: 2,
            c: 3,
            h: 4,
            w: 5,
        };
        let nchw = BiasShape::image(dims, Layout::Nchw).unwrap();
        let nhwc = BiasShape::image(dims, Layout::Nhwc).unwrap();
        let to_nhwc = |v: &[f32]| {
            let mut out = vec![0.0; v.len()];
            for n in 0..dims.n {
                for c in 0..dims.c {
                    for h in 0..dims.h {
                        for w in 0..dims.w {
                            out[Layout::Nhwc.index(dims, n, c, h, w)] =
                                v[Layout::Nchw.index(dims, n, c, h, w)];
                        }
                    }
                }
            }
            out
        };
        let x = wave(dims.len(), 4.0, 3.0);
        let dy = wave(dims.len(), 5.0, 1.0);
        let bias = [0.25f32, -0.5, 1.0];
        let act = Activation::Elu { alpha: 0.7 };
        let n = dims.len();
        let (mut y1, mut y2) = (vec![0.0; n], vec![0.0; n]);
        bias_activation_forward(&nchw, act, &x, Some(&bias), &mut y1).unwrap();
        bias_activation_forward(&nhwc, act, &to_nhwc(&x), Some(&bias), &mut y2).unwrap();
        assert_eq!(to_nhwc(&y1), y2);
        let (mut dz1, mut dz2) = (vec![0.0; n], vec![0.0; n]);
        let (mut db1, mut db2) = ([0.0f32; 3], [0.0f32; 3]);
        bias_activation_backward(&nchw, act, &x, &dy, &mut dz1, Some(&mut db1)).unwrap();
        let (x2, dy2) = (to_nhwc(&x), to_nhwc(&dy));
        bias_activation_backward(&nhwc, act, &x2, &dy2, &mut dz2, Some(&mut db2)).unwrap();
        assert_eq!(to_nhwc(&dz1), dz2);
        for c in 0..3 {
            // The same terms summed in another order: equal to f64 rounding, then f32.
            assert!(
                (db1[c] - db2[c]).abs() <= 1e-6 * db1[c].abs(),
                "channel {c}"
            );
        }
    }

    #[test]
    fn bad_inputs_are_errors() {
        let act = Activation::Relu;
        let mut out = [0.0f32; 3];
        assert!(activation_forward(act, &[0.0; 4], &mut out).is_err());
        assert!(activation_backward(act, &[0.0; 3], &[0.0; 2], &mut out).is_err());
        assert!(activation_backward(act, &[0.0; 3], &[0.0; 3], &mut [0.0; 4]).is_err());
        let nan_slope = Activation::LeakyRelu { slope: f32::NAN };
        assert!(matches!(
            activation_forward(nan_slope, &[0.0; 3], &mut out),
            Err(KernelError::InvalidParameter { .. })
        ));

        let shape = BiasShape::new(1, 3, 1);
        let x = [0.0f32; 3];
        assert!(bias_activation_forward(&shape, act, &x, Some(&[0.0; 2]), &mut out).is_err());
        assert!(bias_activation_forward(&shape, act, &x[..2], None, &mut out).is_err());
        assert!(bias_activation_forward(&shape, act, &x, None, &mut [0.0; 2]).is_err());
        let mut db = [0.0f32; 4];
        assert!(bias_activation_backward(&shape, act, &x, &x, &mut out, Some(&mut db)).is_err());
        assert!(bias_activation_backward(&shape, act, &x, &x[..1], &mut out, None).is_err());
        let huge = BiasShape::new(usize::MAX, 2, 1);
        assert!(matches!(
            bias_activation_forward(&huge, act, &x, None, &mut out),
            Err(KernelError::SizeOverflow { .. })
        ));
    }
}
