//! Element-wise kernels: bias and activation, forward and backward.
//!
//! The fused kernels compute, for a tensor seen as `outer × channels × inner`
//! ([`BiasShape`]) with one bias value per channel,
//!
//! - forward: z = x + bias (rounded to f32, as PyTorch adds it), y = act(z);
//! - backward: dz = dy·act′(z) — the gradient of x too — and db\[c\] = Σ dz over
//!   channel c, accumulated on the fly in the same pass.
//!
//! Each reads its inputs and writes its outputs once; tensors larger than the last-level
//! cache are written with streaming stores on AVX2. Threads take fixed blocks of the
//! tensor (whole channel runs, or whole rows when the runs are short): results,
//! db included, are bitwise the same for every [`Parallelism`].
//!
//! # What the backward reads
//!
//! [`Saved::Input`] (x and the bias, from which z is recomputed bit for bit) works for
//! every activation. [`Saved::Output`] (y) works where y determines the gradient, as in
//! PyTorch's own backward: identity, ReLU, LeakyReLU with slope ≥ 0 (dz = dy where
//! y > 0), sigmoid (y·(1 − y)), tanh (1 − y²) and ELU with alpha ≥ 0 (y + alpha where
//! y ≤ 0). GELU (both forms) and SiLU need z; asking them for y is an error. A
//! forward run in place keeps only y, so it suits the second group.
//!
//! # Accuracy
//!
//! exp, expm1, tanh, sigmoid and erf are evaluated in f32 with polynomials (`vmath.rs`),
//! the same algorithm on every path; results differ between paths only through FMA
//! (AVX2 fuses, the scalar path and `wide` on x86_64 do not). The errors below are
//! measured by `kernels/tests/eltwise.rs` on every path — every 1021st f32 bit pattern of
//! each sign up to the saturation range, 2²¹ + 1 evenly spaced points, and ±0,
//! subnormals, ±88, ±104, ±1e30, ±f32::MAX, ±∞ — against f64 (the math functions) or
//! against the reference kernels (the activations, f64 rounded once to f32). A bound
//! "r ulp + a" means |error| ≤ r·f32::EPSILON·|exact| + a; the tests assert the
//! bounds, the measured column is the maximum over the paths.
//!
//! | function | measured | bound |
//! |---|---|---|
//! | exp | 0.79 ulp | 1 ulp + 2⁻¹⁴⁹ |
//! | tanh | 1.89 ulp | 2.5 ulp + 2⁻¹⁴⁹ |
//! | sigmoid | 1.24 ulp | 2 ulp + 2⁻¹²⁶ |
//! | erf | 1.49 ulp | 2 ulp + 2⁻¹⁴⁹ |
//! | sigmoid activation / gradient | 1.45 / 2.91 ulp | 2 ulp + 2⁻¹²⁶ / 3.5 ulp + 2⁻¹⁴⁹ |
//! | tanh activation / gradient | 1.99 / 2.63 ulp | 2.5 / 3 ulp + 2⁻¹⁴⁹ |
//! | GELU (erf) / gradient | 6.34 ulp + 1e-10 / 0.19 ulp + 1e-7 | 6.5 ulp + 1e-10 / 1 ulp + 1e-7 |
//! | GELU (tanh) / gradient | 24.5 ulp + 1e-15 / 1.41 ulp + 7e-8 | 26 ulp + 1e-15 / 3 ulp + 7e-8 |
//! | ELU / gradient | 1.00 / 1.00 ulp (alpha 1; 2.0 with alpha 0.3) | 2.5 ulp + 2⁻¹⁴⁹ |
//! | SiLU / gradient | 2.00 ulp / 1.66 ulp + 4e-8 | 2.5 ulp + 2⁻¹²⁶ / 2.5 ulp + 4e-8 |
//!
//! Where the absolute parts come from: 2⁻¹⁴⁹ and 2⁻¹²⁶ cover subnormal results (sigmoid
//! and SiLU return 0 below about −88.7, where the exact value is subnormal). GELU's Φ is
//! returned as 0 below 1e-11 (x < −6.7); GELU's measured figure is over every f32 in
//! [−6.7, 6.7], on every path (worst at x = −3.605733, in the lower tail, where the
//! exponent of erfc's e^(−a²) carries an f32 rounding of a² ≈ 6.5). The GELU and SiLU gradients have a zero
//! (x ≈ −0.75 and −1.28) where their two f32 terms, each of magnitude ~0.2 and accurate
//! to an ulp, cancel; the sweep covers every f32 within 0.05 of those zeros. The tanh form of GELU is compared with PyTorch's formula
//! ½x(1 + tanh u), which itself cancels in f64 in the lower tail; its relative error
//! there (and GELU's, x below −2) grows with the exponent |2u| or x²/2, whose f32
//! rounding the tail magnifies. ReLU, LeakyReLU and identity are exact; the gradients
//! from y are within 3 ulp of PyTorch's formulas evaluated in f64 on the same y.

mod act;
mod activation;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
mod bias;
pub(crate) mod dispatch;
mod driver;
mod kernel;
pub(crate) mod lanes;
mod neon;
mod scalar;
pub(crate) mod vmath;

pub use activation::Activation;
#[cfg(target_arch = "x86_64")]
pub(crate) use avx2::V8;
pub use bias::BiasShape;
pub use scalar::activate;

use crate::arch::Isa;
use crate::error::{check_exact, KernelError, Result};
use crate::parallel::Parallelism;
use driver::BackwardInput;

/// What the backward of a bias + activation reads besides dy (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Saved<'a> {
    /// The forward's input x and bias: z = x + bias is recomputed as the forward did.
    Input {
        x: &'a [f32],
        bias: Option<&'a [f32]>,
    },
    /// The forward's output y (not for GELU, GELU-tanh and SiLU, and not for
    /// LeakyReLU or ELU with a negative parameter).
    Output(&'a [f32]),
}

/// The vector-math functions, exposed for tests and for other kernels' callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MathFunction {
    Exp,
    Tanh,
    Sigmoid,
    Erf,
}

impl MathFunction {
    /// Every function.
    pub const ALL: [MathFunction; 4] = [
        MathFunction::Exp,
        MathFunction::Tanh,
        MathFunction::Sigmoid,
        MathFunction::Erf,
    ];
}

/// Whether the backward of `act` can read y instead of z.
pub fn gradient_from_output(act: Activation) -> bool {
    match act {
        Activation::Identity | Activation::Relu | Activation::Sigmoid | Activation::Tanh => true,
        Activation::LeakyRelu { slope } => slope >= 0.0,
        Activation::Elu { alpha } => alpha >= 0.0,
        Activation::Gelu | Activation::GeluTanh | Activation::Silu => false,
    }
}

/// The checks every fused call shares.
fn check_call(isa: Isa, shape: &BiasShape, act: Activation, par: Parallelism) -> Result<()> {
    isa.check_available()?;
    shape.validate()?;
    act.validate()?;
    par.validate()
}

fn check_bias(shape: &BiasShape, bias: Option<&[f32]>) -> Result<()> {
    match bias {
        Some(bias) => check_exact("bias-activation bias", shape.channels, bias.len()),
        None => Ok(()),
    }
}

/// y = act(x + bias) on the process's ISA path ([`Isa::selected`]).
///
/// `bias` holds one value per channel of `shape` (none: y = act(x)).
///
/// Errors: `x` or `y` not `shape.len()` long, `bias` not `shape.channels` long,
/// non-finite activation parameters, an overflowing shape, `Threads(0)`.
///
/// ```
/// use axonal_kernels::eltwise::{bias_activation_forward, Activation, BiasShape};
/// use axonal_kernels::Parallelism;
/// let shape = BiasShape::matrix(2, 3); // a bias per column
/// let x = [1.0, -2.0, 0.5, -1.0, 3.0, 0.0];
/// let mut y = [0.0; 6];
/// bias_activation_forward(&shape, Activation::Relu, &x, Some(&[0.5, 0.5, -1.0]), &mut y, Parallelism::Sequential)?;
/// assert_eq!(y, [1.5, 0.0, 0.0, 0.0, 3.5, 0.0]);
/// # Ok::<(), axonal_kernels::KernelError>(())
/// ```
pub fn bias_activation_forward(
    shape: &BiasShape,
    act: Activation,
    x: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    par: Parallelism,
) -> Result<()> {
    bias_activation_forward_on(Isa::selected()?, shape, act, x, bias, y, par)
}

/// [`bias_activation_forward`] on an explicit ISA path (an error if this CPU cannot run it).
pub fn bias_activation_forward_on(
    isa: Isa,
    shape: &BiasShape,
    act: Activation,
    x: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    par: Parallelism,
) -> Result<()> {
    check_call(isa, shape, act, par)?;
    check_exact("bias-activation x", shape.len(), x.len())?;
    check_bias(shape, bias)?;
    check_exact("bias-activation y", shape.len(), y.len())?;
    driver::forward(isa, shape, act, Some(x), bias, y, par);
    Ok(())
}

/// xy ← act(xy + bias), in place, on the process's ISA path. Errors as
/// [`bias_activation_forward`].
pub fn bias_activation_forward_in_place(
    shape: &BiasShape,
    act: Activation,
    xy: &mut [f32],
    bias: Option<&[f32]>,
    par: Parallelism,
) -> Result<()> {
    bias_activation_forward_in_place_on(Isa::selected()?, shape, act, xy, bias, par)
}

/// [`bias_activation_forward_in_place`] on an explicit ISA path.
pub fn bias_activation_forward_in_place_on(
    isa: Isa,
    shape: &BiasShape,
    act: Activation,
    xy: &mut [f32],
    bias: Option<&[f32]>,
    par: Parallelism,
) -> Result<()> {
    check_call(isa, shape, act, par)?;
    check_exact("bias-activation x", shape.len(), xy.len())?;
    check_bias(shape, bias)?;
    driver::forward(isa, shape, act, None, bias, xy, par);
    Ok(())
}

/// Checks `saved` against the shape and the activation and turns it into the driver's form.
fn backward_input<'a>(
    shape: &BiasShape,
    act: Activation,
    saved: Saved<'a>,
) -> Result<BackwardInput<'a>> {
    match saved {
        Saved::Input { x, bias } => {
            check_exact("bias-activation saved x", shape.len(), x.len())?;
            check_bias(shape, bias)?;
            Ok(BackwardInput {
                saved: x,
                bias,
                from_y: false,
            })
        }
        Saved::Output(y) => {
            if !gradient_from_output(act) {
                return Err(KernelError::invalid(
                    "bias-activation saved",
                    format!(
                        "the gradient of {} cannot be computed from its output; pass Saved::Input",
                        act.name()
                    ),
                ));
            }
            check_exact("bias-activation saved y", shape.len(), y.len())?;
            Ok(BackwardInput {
                saved: y,
                bias: None,
                from_y: true,
            })
        }
    }
}

fn check_db(shape: &BiasShape, db: Option<&[f32]>) -> Result<()> {
    match db {
        Some(db) => check_exact("bias-activation db", shape.channels, db.len()),
        None => Ok(()),
    }
}

/// Backward of [`bias_activation_forward`] on the process's ISA path: dz = dy·act′(z)
/// (z from `saved`, see [`Saved`]) and, when `db` is given, db\[c\] = Σ dz over channel c.
/// dz is also the gradient of x. Both outputs are overwritten.
///
/// Errors: `saved`, `dy` or `dz` not `shape.len()` long, a bias or `db` not
/// `shape.channels` long, [`Saved::Output`] for an activation that needs z, non-finite
/// activation parameters, an overflowing shape, `Threads(0)`.
#[allow(clippy::too_many_arguments)]
pub fn bias_activation_backward(
    shape: &BiasShape,
    act: Activation,
    saved: Saved<'_>,
    dy: &[f32],
    dz: &mut [f32],
    db: Option<&mut [f32]>,
    par: Parallelism,
) -> Result<()> {
    bias_activation_backward_on(Isa::selected()?, shape, act, saved, dy, dz, db, par)
}

/// [`bias_activation_backward`] on an explicit ISA path.
#[allow(clippy::too_many_arguments)]
pub fn bias_activation_backward_on(
    isa: Isa,
    shape: &BiasShape,
    act: Activation,
    saved: Saved<'_>,
    dy: &[f32],
    dz: &mut [f32],
    db: Option<&mut [f32]>,
    par: Parallelism,
) -> Result<()> {
    check_call(isa, shape, act, par)?;
    let input = backward_input(shape, act, saved)?;
    check_exact("bias-activation dy", shape.len(), dy.len())?;
    check_exact("bias-activation dz", shape.len(), dz.len())?;
    check_db(shape, db.as_deref())?;
    driver::backward(isa, shape, act, input, Some(dy), dz, db, par);
    Ok(())
}

/// [`bias_activation_backward`] with dz overwriting dy, on the process's ISA path.
pub fn bias_activation_backward_in_place(
    shape: &BiasShape,
    act: Activation,
    saved: Saved<'_>,
    dy_dz: &mut [f32],
    db: Option<&mut [f32]>,
    par: Parallelism,
) -> Result<()> {
    bias_activation_backward_in_place_on(Isa::selected()?, shape, act, saved, dy_dz, db, par)
}

/// [`bias_activation_backward_in_place`] on an explicit ISA path.
pub fn bias_activation_backward_in_place_on(
    isa: Isa,
    shape: &BiasShape,
    act: Activation,
    saved: Saved<'_>,
    dy_dz: &mut [f32],
    db: Option<&mut [f32]>,
    par: Parallelism,
) -> Result<()> {
    check_call(isa, shape, act, par)?;
    let input = backward_input(shape, act, saved)?;
    check_exact("bias-activation dy", shape.len(), dy_dz.len())?;
    check_db(shape, db.as_deref())?;
    driver::backward(isa, shape, act, input, None, dy_dz, db, par);
    Ok(())
}

/// values ← act(values) on the calling thread, with the vectorized activations of
/// `isa`: for epilogues that apply an activation to a stored row (GEMM's tile store).
///
/// Errors: `isa` not available, non-finite activation parameters.
pub fn activate_slice_on(isa: Isa, act: Activation, values: &mut [f32]) -> Result<()> {
    isa.check_available()?;
    act.validate()?;
    driver::activate_slice(isa, act, values);
    Ok(())
}

/// y = f(x) for a vector-math function, on `isa`, on the calling thread.
///
/// Errors: `isa` not available; `y` not the length of `x`.
pub fn math_on(isa: Isa, function: MathFunction, x: &[f32], y: &mut [f32]) -> Result<()> {
    isa.check_available()?;
    check_exact("math y", x.len(), y.len())?;
    driver::math(isa, function, x, y);
    Ok(())
}
