//! The fused bias + activation kernels and their vector math against the reference:
//! a dense accuracy sweep per ISA path, property tests over random shapes, activations,
//! thread counts and in-place use, bitwise determinism, and bad inputs.
//!
//! Run in release (`cargo test --release -p axonal-kernels --test eltwise`); the
//! measured maxima are printed with `-- --nocapture`.

use axonal_kernels::eltwise::{
    bias_activation_backward_in_place_on, bias_activation_backward_on,
    bias_activation_forward_in_place_on, bias_activation_forward_on, gradient_from_output, math_on,
    Activation, BiasShape, MathFunction, Saved,
};
use axonal_kernels::{math, reference, Isa, KernelError, Parallelism};
use proptest::prelude::*;

/// f32::EPSILON, the unit of the ulp figures.
const EPS: f64 = f32::EPSILON as f64;

/// A documented error bound: |got − exact| ≤ `ulps`·EPS·|exact| + `abs`.
#[derive(Debug, Clone, Copy)]
struct Bound {
    ulps: f64,
    abs: f64,
}

const NORMAL: f64 = f32::MIN_POSITIVE as f64;
/// The smallest subnormal f32, 2⁻¹⁴⁹.
const SUB: f64 = 1.401_298_464_324_817e-45;

const fn bound(ulps: f64, abs: f64) -> Bound {
    Bound { ulps, abs }
}

/// The bounds documented in `eltwise/mod.rs`, per function, for every path.
fn math_bound(f: MathFunction) -> Bound {
    match f {
        MathFunction::Exp => bound(1.0, SUB),
        MathFunction::Tanh => bound(2.5, SUB),
        MathFunction::Sigmoid => bound(2.0, NORMAL),
        MathFunction::Erf => bound(2.0, SUB),
    }
}

/// Bounds of an activation's value (`grad` false) or gradient against the reference.
fn activation_bound(act: Activation, grad: bool) -> Bound {
    match (act, grad) {
        (Activation::Identity | Activation::Relu | Activation::LeakyRelu { .. }, _) => {
            bound(0.0, 0.0)
        }
        (Activation::Sigmoid, false) => bound(2.0, NORMAL),
        (Activation::Sigmoid, true) => bound(3.5, SUB),
        (Activation::Tanh, false) => bound(2.5, SUB),
        (Activation::Tanh, true) => bound(3.0, SUB),
        // Every f32 in [−6.7, 6.7] measured: 6.34 ulp, at −3.605733 (in the sweep).
        (Activation::Gelu, false) => bound(6.5, 1e-10),
        (Activation::Gelu, true) => bound(1.0, 1e-7),
        (Activation::GeluTanh, false) => bound(26.0, 1e-15),
        (Activation::GeluTanh, true) => bound(3.0, 7e-8),
        // The dense sweep (alpha 1) measures 1 ulp; another alpha adds the product's
        // rounding, and the f32 reference its own: 2.0 ulp seen (alpha 0.3, z = −0.3235).
        (Activation::Elu { .. }, false) => bound(2.5, SUB),
        (Activation::Elu { .. }, true) => bound(2.5, SUB),
        (Activation::Silu, false) => bound(2.5, NORMAL),
        (Activation::Silu, true) => bound(2.5, 4e-8),
    }
}

/// Whether `got` is within `bound` of `exact`; the f32 rounding of `exact` decides
/// overflow, and NaN must meet NaN.
fn within(got: f32, exact: f64, bound: Bound) -> bool {
    if exact.is_nan() || got.is_nan() {
        return exact.is_nan() && got.is_nan();
    }
    if (exact as f32).is_infinite() || got.is_infinite() {
        return got == exact as f32;
    }
    (f64::from(got) - exact).abs() <= bound.ulps * EPS * exact.abs() + bound.abs
}

/// The measured maximum of the relative part of a [`Bound`], given its absolute part.
#[derive(Debug, Default, Clone, Copy)]
struct Measured {
    ulps: f64,
    worst_x: f32,
    max_abs: f64,
}

impl Measured {
    fn add(&mut self, x: f32, got: f32, exact: f64, abs: f64) {
        if (exact as f32).is_infinite() {
            return;
        }
        self.max_abs = self.max_abs.max((f64::from(got) - exact).abs());
        let excess = (f64::from(got) - exact).abs() - abs;
        if excess > 0.0 {
            let ulps = excess / (EPS * exact.abs());
            if ulps > self.ulps {
                self.ulps = ulps;
                self.worst_x = x;
            }
        }
    }
}

/// Inputs of a sweep over [−limit, limit]: every 1021st f32 bit pattern of each sign,
/// 2²¹ evenly spaced points, and the special values.
fn sweep_inputs(limit: f32) -> Vec<f32> {
    let mut xs = Vec::new();
    let top = limit.to_bits();
    for bits in (0..=top).step_by(1021) {
        let x = f32::from_bits(bits);
        xs.push(x);
        xs.push(-x);
    }
    let steps = 1 << 20;
    for i in -steps..=steps {
        xs.push(limit * i as f32 / steps as f32);
    }
    xs.extend([
        0.0,
        -0.0,
        f32::from_bits(1),
        -f32::from_bits(1),
        1e-40,
        -1e-40,
        f32::MIN_POSITIVE,
        -f32::MIN_POSITIVE,
        1e-30,
        -1e-30,
        1e-7,
        -1e-7,
        88.0,
        -88.0,
        88.72,
        -88.72,
        89.0,
        -89.0,
        103.0,
        -103.0,
        1e30,
        -1e30,
        f32::MAX,
        -f32::MAX,
        f32::INFINITY,
        f32::NEG_INFINITY,
        // GELU's worst input, found by a sweep of every f32 in [−6.7, 6.7].
        -3.605_733,
    ]);
    xs
}

fn math_reference(f: MathFunction, x: f64) -> f64 {
    match f {
        MathFunction::Exp => x.exp(),
        MathFunction::Tanh => x.tanh(),
        MathFunction::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        MathFunction::Erf => math::erf(x),
    }
}

/// The range each function is swept over: past the point where it saturates.
fn math_limit(f: MathFunction) -> f32 {
    match f {
        MathFunction::Exp => 110.0,
        MathFunction::Tanh => 12.0,
        MathFunction::Sigmoid => 110.0,
        MathFunction::Erf => 6.0,
    }
}

#[test]
fn vector_math_is_within_its_documented_error_on_every_path() {
    let mut failures = Vec::new();
    for f in MathFunction::ALL {
        let xs = sweep_inputs(math_limit(f));
        let want: Vec<f64> = xs
            .iter()
            .map(|&x| math_reference(f, f64::from(x)))
            .collect();
        for isa in Isa::available() {
            let mut got = vec![f32::NAN; xs.len()];
            math_on(isa, f, &xs, &mut got).unwrap();
            let bound = math_bound(f);
            let mut measured = Measured::default();
            for ((&x, &g), &w) in xs.iter().zip(&got).zip(&want) {
                assert!(!g.is_nan() || x.is_nan(), "{f:?} {isa}: NaN at {x:e}");
                if !within(g, w, bound) {
                    failures.push(format!("{f:?} {isa} at {x:e}: got {g:e}, want {w:e}"));
                }
                if x.is_finite() {
                    measured.add(x, g, w, bound.abs);
                }
            }
            println!(
                "{f:?} {isa}: max {:.2} ulp + {:.1e} (worst at {:e}), max abs {:.2e}",
                measured.ulps, bound.abs, measured.worst_x, measured.max_abs
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
}

/// Every f32 within 0.05 of the zeros of the GELU and SiLU gradients (x ≈ −0.75 and
/// −1.28), where two f32 terms cancel and the absolute error bound is decided.
fn near_gradient_zeros() -> Vec<f32> {
    let mut xs = Vec::new();
    for centre in [-0.7518f32, -1.2785] {
        let (lo, hi) = (centre - 0.05, centre + 0.05);
        // Negative floats: the bit pattern grows with the magnitude.
        xs.extend((hi.to_bits()..=lo.to_bits()).map(f32::from_bits));
    }
    xs
}

/// The smooth activations of the sweep and the range each is swept over.
const SMOOTH: [(Activation, f32); 6] = [
    (Activation::Sigmoid, 110.0),
    (Activation::Tanh, 12.0),
    (Activation::Gelu, 20.0),
    (Activation::GeluTanh, 20.0),
    (Activation::Elu { alpha: 1.0 }, 110.0),
    (Activation::Silu, 110.0),
];

#[test]
fn activations_and_gradients_are_within_their_documented_error_on_every_path() {
    let mut failures = Vec::new();
    for (act, limit) in SMOOTH {
        let mut xs: Vec<f32> = sweep_inputs(limit)
            .into_iter()
            .filter(|x| x.is_finite())
            .collect();
        xs.extend(near_gradient_zeros());
        let n = xs.len();
        let shape = BiasShape::new(1, 1, n);
        let ones = vec![1.0f32; n];
        let mut want_y = vec![0.0f32; n];
        let mut want_d = vec![0.0f32; n];
        reference::activation_forward(act, &xs, &mut want_y).unwrap();
        reference::activation_backward(act, &xs, &ones, &mut want_d).unwrap();
        for isa in Isa::available() {
            let seq = Parallelism::Sequential;
            let mut y = vec![f32::NAN; n];
            bias_activation_forward_on(isa, &shape, act, &xs, None, &mut y, seq).unwrap();
            let mut d = vec![f32::NAN; n];
            let saved = Saved::Input { x: &xs, bias: None };
            bias_activation_backward_on(isa, &shape, act, saved, &ones, &mut d, None, seq).unwrap();
            for (grad, got, want) in [(false, &y, &want_y), (true, &d, &want_d)] {
                let bound = activation_bound(act, grad);
                let mut measured = Measured::default();
                for ((&x, &g), &w) in xs.iter().zip(got.iter()).zip(want.iter()) {
                    let w = f64::from(w);
                    assert!(!g.is_nan(), "{act:?} grad={grad} {isa}: NaN at {x:e}");
                    if !within(g, w, bound) {
                        failures.push(format!(
                            "{act:?} grad={grad} {isa} at {x:e}: got {g:e}, want {w:e}"
                        ));
                    }
                    measured.add(x, g, w, bound.abs);
                }
                println!(
                    "{} {} {isa}: max {:.2} ulp + {:.1e} (worst at {:e}), max abs {:.2e}",
                    act.name(),
                    if grad { "gradient" } else { "value" },
                    measured.ulps,
                    bound.abs,
                    measured.worst_x,
                    measured.max_abs,
                );
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
}

// ---------------------------------------------------------------------------------------
// The fused kernels on random shapes.

/// A deterministic stream of values in [-1, 1).
fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn activation() -> impl Strategy<Value = Activation> {
    prop_oneof![
        Just(Activation::Identity),
        Just(Activation::Relu),
        Just(Activation::LeakyRelu { slope: 0.01 }),
        Just(Activation::LeakyRelu { slope: -0.3 }),
        Just(Activation::Sigmoid),
        Just(Activation::Tanh),
        Just(Activation::Gelu),
        Just(Activation::GeluTanh),
        Just(Activation::Elu { alpha: 1.0 }),
        Just(Activation::Elu { alpha: 0.3 }),
        Just(Activation::Elu { alpha: -0.5 }),
        Just(Activation::Silu),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    shape: BiasShape,
    act: Activation,
    bias: bool,
    db: bool,
    /// Inputs are uniform in [−scale, scale].
    scale: f32,
    /// Every `kinks`-th input is −bias (so z = 0) or −0.
    kinks: usize,
    threads: usize,
    seed: u64,
}

/// NCHW-like (inner = H·W, often ≥ 16: the run regime) and NHWC-like (inner = 1 or
/// small: the row regime) shapes, tiny and odd, with at most 20 000 elements.
fn case() -> impl Strategy<Value = Case> {
    let inner = prop_oneof![Just(1usize), 0usize..70, 2usize..16];
    (
        (0usize..70, 0usize..70, inner),
        activation(),
        (any::<bool>(), any::<bool>()),
        prop_oneof![Just(1.0f32), Just(4.0), Just(12.0)],
        prop_oneof![Just(usize::MAX), 3usize..9],
        2usize..5,
        any::<u64>(),
    )
        .prop_map(
            |((outer, channels, inner), act, (bias, db), scale, kinks, threads, seed)| {
                let per_outer = (channels * inner).max(1);
                let outer = outer.min(20_000 / per_outer);
                Case {
                    shape: BiasShape::new(outer, channels, inner),
                    act,
                    bias,
                    db,
                    scale,
                    kinks,
                    threads,
                    seed,
                }
            },
        )
}

/// The inputs of a case and the pre-activation z = x + bias in f32.
struct Inputs {
    x: Vec<f32>,
    bias: Option<Vec<f32>>,
    dy: Vec<f32>,
    z: Vec<f32>,
}

impl Case {
    fn inputs(&self) -> Inputs {
        let s = self.shape;
        let bias = self.bias.then(|| values(s.channels, self.seed ^ 2));
        let mut x: Vec<f32> = values(s.len(), self.seed ^ 1)
            .into_iter()
            .map(|v| v * self.scale)
            .collect();
        let mut z = vec![0.0f32; s.len()];
        for o in 0..s.outer {
            for c in 0..s.channels {
                let b = bias.as_ref().map(|b| b[c]);
                for i in 0..s.inner {
                    let at = s.index(o, c, i);
                    if at.is_multiple_of(self.kinks) {
                        x[at] = b.map_or(-0.0, |b| -b);
                    }
                    z[at] = b.map_or(x[at], |b| x[at] + b);
                }
            }
        }
        Inputs {
            x,
            bias,
            dy: values(s.len(), self.seed ^ 3),
            z,
        }
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|v| v.to_bits()).collect()
}

/// The expected bias gradient (f64 sums of `dz`) and its tolerance: the per-element
/// tolerances plus the f32 accumulation of the kernel, at most `terms`·EPS·Σ|dz|.
fn db_expected(shape: &BiasShape, dz: &[f32], tolerance: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let mut want = vec![0.0f64; shape.channels];
    let mut tol = vec![0.0f64; shape.channels];
    let mut magnitude = vec![0.0f64; shape.channels];
    for o in 0..shape.outer {
        for c in 0..shape.channels {
            for i in 0..shape.inner {
                let at = shape.index(o, c, i);
                want[c] += f64::from(dz[at]);
                tol[c] += tolerance[at];
                magnitude[c] += f64::from(dz[at]).abs();
            }
        }
    }
    let terms = (shape.outer * shape.inner) as f64;
    for c in 0..shape.channels {
        tol[c] += (terms + 2.0) * EPS * magnitude[c] + 1e-30;
    }
    (want, tol)
}

fn check_db(what: &str, got: &[f32], want: &[f64], tol: &[f64]) -> Result<(), TestCaseError> {
    for (c, ((&g, &w), &t)) in got.iter().zip(want).zip(tol).enumerate() {
        prop_assert!(
            (f64::from(g) - w).abs() <= t,
            "{what}: db[{c}] = {g:e}, want {w:e} ± {t:e}"
        );
    }
    Ok(())
}

/// dz·/dy from y, in f64, for the activations whose gradient reads y.
fn gradient_from_y(act: Activation, y: f64) -> f64 {
    match act {
        Activation::Identity => 1.0,
        Activation::Relu => {
            if y > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        Activation::LeakyRelu { slope } => {
            if y > 0.0 {
                1.0
            } else {
                f64::from(slope)
            }
        }
        Activation::Sigmoid => y * (1.0 - y),
        Activation::Tanh => (1.0 - y) * (1.0 + y),
        Activation::Elu { alpha } => {
            if y > 0.0 {
                1.0
            } else {
                y + f64::from(alpha)
            }
        }
        other => panic!("{other:?} has no gradient from y"),
    }
}

fn check_case(case: &Case, isa: Isa) -> Result<(), TestCaseError> {
    let shape = case.shape;
    let act = case.act;
    let n = shape.len();
    let Inputs { x, bias, dy, z } = case.inputs();
    let bias = bias.as_deref();
    let pars = [Parallelism::Sequential, Parallelism::Threads(case.threads)];

    // Forward, against the reference applied to z.
    let mut want_y = vec![0.0f32; n];
    reference::activation_forward(act, &z, &mut want_y).unwrap();
    let value_bound = activation_bound(act, false);
    let mut ys = Vec::new();
    for par in pars {
        let mut y = vec![f32::NAN; n];
        bias_activation_forward_on(isa, &shape, act, &x, bias, &mut y, par).unwrap();
        let mut in_place = x.clone();
        bias_activation_forward_in_place_on(isa, &shape, act, &mut in_place, bias, par).unwrap();
        prop_assert_eq!(
            bits(&in_place),
            bits(&y),
            "{} {:?}: in place differs",
            isa,
            par
        );
        ys.push(y);
    }
    prop_assert_eq!(bits(&ys[0]), bits(&ys[1]), "{}: threads change y", isa);
    let y = &ys[0];
    for (at, (&g, &w)) in y.iter().zip(&want_y).enumerate() {
        prop_assert!(
            within(g, f64::from(w), value_bound),
            "{} forward at {} (z = {:e}): got {:e}, want {:e}",
            isa,
            at,
            z[at],
            g,
            w
        );
    }

    // Backward from x and the bias, against the reference gradient at z.
    let mut want_dz = vec![0.0f32; n];
    reference::activation_backward(act, &z, &dy, &mut want_dz).unwrap();
    let g = activation_bound(act, true);
    let grad_bound = bound(g.ulps + 1.0, g.abs);
    let tolerance: Vec<f64> = want_dz
        .iter()
        .map(|&w| grad_bound.ulps * EPS * f64::from(w).abs() + grad_bound.abs)
        .collect();
    let (want_db, db_tol) = db_expected(&shape, &want_dz, &tolerance);
    let saved = Saved::Input { x: &x, bias };
    let mut results = Vec::new();
    for par in pars {
        let mut dz = vec![f32::NAN; n];
        let mut db = vec![f32::NAN; shape.channels];
        let db_arg = case.db.then_some(&mut db[..]);
        bias_activation_backward_on(isa, &shape, act, saved, &dy, &mut dz, db_arg, par).unwrap();
        let mut in_place = dy.clone();
        let mut db_in_place = vec![f32::NAN; shape.channels];
        let db_arg = case.db.then_some(&mut db_in_place[..]);
        bias_activation_backward_in_place_on(isa, &shape, act, saved, &mut in_place, db_arg, par)
            .unwrap();
        prop_assert_eq!(
            bits(&in_place),
            bits(&dz),
            "{} {:?}: in-place dz differs",
            isa,
            par
        );
        prop_assert_eq!(
            bits(&db_in_place),
            bits(&db),
            "{} {:?}: in-place db differs",
            isa,
            par
        );
        results.push((dz, db));
    }
    prop_assert_eq!(
        bits(&results[0].0),
        bits(&results[1].0),
        "{}: threads change dz",
        isa
    );
    prop_assert_eq!(
        bits(&results[0].1),
        bits(&results[1].1),
        "{}: threads change db",
        isa
    );
    let (dz, db) = &results[0];
    for (at, (&got, &w)) in dz.iter().zip(&want_dz).enumerate() {
        prop_assert!(
            within(got, f64::from(w), grad_bound),
            "{} backward at {} (z = {:e}, dy = {:e}): got {:e}, want {:e}",
            isa,
            at,
            z[at],
            dy[at],
            got,
            w
        );
    }
    if case.db {
        check_db(&format!("{isa} from x"), db, &want_db, &db_tol)?;
    } else {
        prop_assert!(
            db.iter().all(|v| v.is_nan()),
            "db written without being asked"
        );
    }

    // Backward from y, against the f64 formula on the same y.
    if gradient_from_output(act) {
        let y_bound = bound(3.0, SUB);
        let want: Vec<f64> = y
            .iter()
            .zip(&dy)
            .map(|(&y, &d)| f64::from(d) * gradient_from_y(act, f64::from(y)))
            .collect();
        let tolerance: Vec<f64> = want
            .iter()
            .map(|w| y_bound.ulps * EPS * w.abs() + y_bound.abs)
            .collect();
        let want32: Vec<f32> = want.iter().map(|&w| w as f32).collect();
        let (want_db, db_tol) = db_expected(&shape, &want32, &tolerance);
        let mut runs = Vec::new();
        for par in pars {
            let mut dz = vec![f32::NAN; n];
            let mut db = vec![f32::NAN; shape.channels];
            let saved = Saved::Output(y);
            bias_activation_backward_on(isa, &shape, act, saved, &dy, &mut dz, Some(&mut db), par)
                .unwrap();
            runs.push((dz, db));
        }
        prop_assert_eq!(
            bits(&runs[0].0),
            bits(&runs[1].0),
            "{}: threads change dz from y",
            isa
        );
        prop_assert_eq!(
            bits(&runs[0].1),
            bits(&runs[1].1),
            "{}: threads change db from y",
            isa
        );
        for (at, (&got, &w)) in runs[0].0.iter().zip(&want).enumerate() {
            prop_assert!(
                within(got, w, y_bound),
                "{} backward from y at {} (y = {:e}): got {:e}, want {:e}",
                isa,
                at,
                y[at],
                got,
                w
            );
        }
        check_db(&format!("{isa} from y"), &runs[0].1, &want_db, &db_tol)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_isa_matches_the_reference(case in case()) {
        for isa in Isa::available() {
            check_case(&case, isa)?;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Determinism, streaming, PyTorch's conventions, bad inputs.

/// Forward output, dz and db of a case on `isa` with `par`, as bits.
fn run_bits(
    isa: Isa,
    shape: &BiasShape,
    act: Activation,
    inputs: &Inputs,
    par: Parallelism,
) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
    let bias = inputs.bias.as_deref();
    let mut y = vec![0.0f32; shape.len()];
    bias_activation_forward_on(isa, shape, act, &inputs.x, bias, &mut y, par).unwrap();
    let mut dz = vec![0.0f32; shape.len()];
    let mut db = vec![0.0f32; shape.channels];
    let saved = Saved::Input { x: &inputs.x, bias };
    bias_activation_backward_on(
        isa,
        shape,
        act,
        saved,
        &inputs.dy,
        &mut dz,
        Some(&mut db),
        par,
    )
    .unwrap();
    (bits(&y), bits(&dz), bits(&db))
}

#[test]
fn results_are_bitwise_identical_for_every_thread_count() {
    // Many items in each regime: long runs cut into pieces, grouped runs, NHWC rows,
    // short odd rows repeated into patterns.
    let shapes = [
        BiasShape::new(2, 3, 100_003),
        BiasShape::new(8, 64, 3_001),
        BiasShape::new(30_000, 48, 1),
        BiasShape::new(3_001, 37, 5),
    ];
    for shape in shapes {
        let case = Case {
            shape,
            act: Activation::Gelu,
            bias: true,
            db: true,
            scale: 3.0,
            kinks: usize::MAX,
            threads: 1,
            seed: 7,
        };
        let inputs = case.inputs();
        for isa in Isa::available() {
            let one = run_bits(isa, &shape, case.act, &inputs, Parallelism::Sequential);
            for threads in [1, 2, 3, 7] {
                let par = Parallelism::Threads(threads);
                assert!(
                    one == run_bits(isa, &shape, case.act, &inputs, par),
                    "{isa} {shape:?} {threads} threads"
                );
            }
        }
    }
}

/// `len` values starting `offset` floats into a fresh buffer, so that the slice's
/// alignment differs from one call to the next.
fn shifted(values: &[f32], offset: usize) -> Vec<f32> {
    let mut buffer = vec![0.0f32; offset];
    buffer.extend_from_slice(values);
    buffer
}

#[test]
fn tensors_beyond_the_cache_stream_and_keep_results_independent_of_alignment() {
    // Larger than the last-level cache, so that the outputs are streamed. NCHW with odd
    // channel runs (every run starts at another alignment) and NHWC with 61 channels
    // (the bias pattern straddles vectors), each at four alignments of the buffers.
    let l3 = axonal_kernels::arch::CacheSizes::detect().l3_or_default();
    let floats = l3 / 4 + l3 / 16;
    let inner = 10_007;
    let runs = floats.div_ceil(2 * inner);
    let shapes = [
        BiasShape::new(2, runs, inner),
        BiasShape::new(floats.div_ceil(61), 61, 1),
    ];
    let act = Activation::Relu;
    let isa = Isa::detected();
    let par = Parallelism::Threads(2);
    for shape in shapes {
        let n = shape.len();
        assert!(n * 4 > l3);
        let x: Vec<f32> = values(n, 1).iter().map(|v| 3.0 * v).collect();
        let bias = values(shape.channels, 2);
        let dy = values(n, 3);
        let channel = |at: usize| (at / shape.inner) % shape.channels;
        let mut first: Option<(Vec<u32>, Vec<u32>, Vec<u32>)> = None;
        for offset in [0, 1, 3, 6] {
            let xs = shifted(&x, offset);
            let mut ys = vec![0.0f32; n + offset];
            let y = &mut ys[offset..];
            bias_activation_forward_on(isa, &shape, act, &xs[offset..], Some(&bias), y, par)
                .unwrap();
            for (at, &v) in y.iter().enumerate() {
                let z = xs[offset + at] + bias[channel(at)];
                let want = if z < 0.0 { 0.0f32 } else { z };
                assert_eq!(v.to_bits(), want.to_bits(), "{shape:?} y at {at}");
            }
            let y = y.to_vec();
            let mut dzs = shifted(&dy, offset);
            let mut db = vec![0.0f32; shape.channels];
            let saved = Saved::Output(&y);
            let dz = &mut dzs[offset..];
            bias_activation_backward_in_place_on(isa, &shape, act, saved, dz, Some(&mut db), par)
                .unwrap();
            let mut want_db = vec![0.0f64; shape.channels];
            let mut magnitude = vec![0.0f64; shape.channels];
            for (at, &v) in dz.iter().enumerate() {
                let want = if y[at] > 0.0 { dy[at] } else { 0.0 };
                assert_eq!(v.to_bits(), want.to_bits(), "{shape:?} dz at {at}");
                want_db[channel(at)] += f64::from(want);
                magnitude[channel(at)] += f64::from(want).abs();
            }
            let terms = (n / shape.channels) as f64;
            for c in 0..shape.channels {
                let tolerance = terms * EPS * magnitude[c];
                assert!(
                    (f64::from(db[c]) - want_db[c]).abs() <= tolerance,
                    "{shape:?} db[{c}] = {}, want {}",
                    db[c],
                    want_db[c]
                );
            }
            let run = (bits(&y), bits(dz), bits(&db));
            match &first {
                None => first = Some(run),
                Some(first) => assert!(*first == run, "{shape:?}: offset {offset} changes results"),
            }
        }
    }
}

#[test]
fn kinks_signed_zeros_and_nan_follow_pytorch() {
    let shape = BiasShape::new(1, 1, 1);
    let seq = Parallelism::Sequential;
    for isa in Isa::available() {
        let forward = |act, x: f32| {
            let mut y = [f32::NAN];
            bias_activation_forward_on(isa, &shape, act, &[x], None, &mut y, seq).unwrap();
            y[0]
        };
        let gradient = |act, z: f32| {
            let mut dz = [f32::NAN];
            let saved = Saved::Input {
                x: &[z],
                bias: None,
            };
            bias_activation_backward_on(isa, &shape, act, saved, &[1.0], &mut dz, None, seq)
                .unwrap();
            dz[0]
        };
        let leaky = Activation::LeakyRelu { slope: 0.2 };
        let elu = Activation::Elu { alpha: 0.5 };
        assert_eq!(gradient(Activation::Relu, 0.0), 0.0, "{isa}");
        assert_eq!(gradient(leaky, 0.0), 0.2, "{isa}");
        assert_eq!(gradient(elu, 0.0), 0.5, "{isa}");
        assert_eq!(gradient(elu, 1e-30), 1.0, "{isa}");
        for act in [
            Activation::Identity,
            Activation::Relu,
            leaky,
            Activation::Tanh,
            Activation::Gelu,
            Activation::GeluTanh,
            elu,
            Activation::Silu,
        ] {
            let y = forward(act, -0.0);
            assert!(
                y == 0.0 && y.is_sign_negative(),
                "{isa} {act:?}(-0) = {y:e}"
            );
            assert!(forward(act, f32::NAN).is_nan(), "{isa} {act:?}(NaN)");
        }
        assert!(forward(Activation::Sigmoid, f32::NAN).is_nan(), "{isa}");
    }
}

#[test]
fn large_inputs_saturate_without_nan() {
    let seq = Parallelism::Sequential;
    let xs = [
        -f32::MAX,
        -1e30,
        -1e4,
        -104.0,
        -88.8,
        -88.0,
        88.0,
        88.8,
        104.0,
        1e4,
        1e30,
        f32::MAX,
    ];
    let shape = BiasShape::new(1, 1, xs.len());
    let elu = Activation::Elu { alpha: 0.5 };
    for isa in Isa::available() {
        for (act, _) in SMOOTH {
            let act = if act == (Activation::Elu { alpha: 1.0 }) {
                elu
            } else {
                act
            };
            let mut y = vec![f32::NAN; xs.len()];
            bias_activation_forward_on(isa, &shape, act, &xs, None, &mut y, seq).unwrap();
            let mut dz = vec![f32::NAN; xs.len()];
            let saved = Saved::Input { x: &xs, bias: None };
            let ones = vec![1.0f32; xs.len()];
            bias_activation_backward_on(isa, &shape, act, saved, &ones, &mut dz, None, seq)
                .unwrap();
            for (i, &x) in xs.iter().enumerate() {
                assert!(!y[i].is_nan() && !dz[i].is_nan(), "{isa} {act:?} at {x:e}");
                assert!(dz[i].is_finite(), "{isa} {act:?}' at {x:e} = {:e}", dz[i]);
            }
            let (lo, hi) = (y[1], y[10]);
            let (want_lo, want_hi) = match act {
                Activation::Sigmoid => (0.0, 1.0),
                Activation::Tanh => (-1.0, 1.0),
                Activation::Elu { alpha } => (-alpha, 1e30),
                _ => (0.0, 1e30),
            };
            assert_eq!((lo, hi), (want_lo, want_hi), "{isa} {act:?} at ±1e30");
            let (dlo, dhi) = (dz[1], dz[10]);
            let want_dhi = if matches!(act, Activation::Sigmoid | Activation::Tanh) {
                0.0
            } else {
                1.0
            };
            assert_eq!((dlo, dhi), (0.0, want_dhi), "{isa} {act:?}' at ±1e30");
        }
        for f in MathFunction::ALL {
            let mut y = vec![f32::NAN; xs.len()];
            math_on(isa, f, &xs, &mut y).unwrap();
            assert!(y.iter().all(|v| !v.is_nan()), "{isa} {f:?}: {y:?}");
        }
    }
}

#[test]
fn activate_slice_is_the_in_place_forward() {
    let x: Vec<f32> = values(1_003, 5).iter().map(|v| 6.0 * v).collect();
    let shape = BiasShape::new(1, 1, x.len());
    for isa in Isa::available() {
        for (act, _) in SMOOTH {
            let mut sliced = x.clone();
            axonal_kernels::eltwise::activate_slice_on(isa, act, &mut sliced).unwrap();
            let mut fused = x.clone();
            let seq = Parallelism::Sequential;
            bias_activation_forward_in_place_on(isa, &shape, act, &mut fused, None, seq).unwrap();
            assert_eq!(bits(&sliced), bits(&fused), "{isa} {act:?}");
        }
    }
}

#[test]
fn bad_inputs_are_errors() {
    let isa = Isa::detected();
    let seq = Parallelism::Sequential;
    let shape = BiasShape::new(2, 3, 4);
    let x = vec![0.5f32; 24];
    let bias = [0.0f32; 3];
    let mut y = vec![0.0f32; 24];
    let relu = Activation::Relu;
    let fwd = |x: &[f32], bias: Option<&[f32]>, y: &mut [f32], act, par| {
        bias_activation_forward_on(isa, &shape, act, x, bias, y, par)
    };
    assert!(matches!(
        fwd(&x[..23], None, &mut y, relu, seq),
        Err(KernelError::ShapeMismatch { .. })
    ));
    assert!(matches!(
        fwd(&x, None, &mut y[..23], relu, seq),
        Err(KernelError::ShapeMismatch { .. })
    ));
    assert!(matches!(
        fwd(&x, Some(&bias[..2]), &mut y, relu, seq),
        Err(KernelError::ShapeMismatch { .. })
    ));
    assert!(fwd(&[0.5; 25], None, &mut y, relu, seq).is_err());
    assert!(fwd(&x, None, &mut y, relu, Parallelism::Threads(0)).is_err());
    let nan_slope = Activation::LeakyRelu { slope: f32::NAN };
    let inf_alpha = Activation::Elu {
        alpha: f32::INFINITY,
    };
    for act in [nan_slope, inf_alpha] {
        assert!(matches!(
            fwd(&x, None, &mut y, act, seq),
            Err(KernelError::InvalidParameter { .. })
        ));
    }
    let huge = BiasShape::new(usize::MAX, 2, 1);
    assert!(matches!(
        bias_activation_forward_on(isa, &huge, relu, &x, None, &mut y, seq),
        Err(KernelError::SizeOverflow { .. })
    ));
    let mut xy = x.clone();
    assert!(
        bias_activation_forward_in_place_on(isa, &shape, relu, &mut xy[..5], None, seq).is_err()
    );

    let dy = vec![1.0f32; 24];
    let mut dz = vec![0.0f32; 24];
    let mut db = [0.0f32; 3];
    let bwd = |saved, dy: &[f32], dz: &mut [f32], db: Option<&mut [f32]>, act| {
        bias_activation_backward_on(isa, &shape, act, saved, dy, dz, db, seq)
    };
    let input = Saved::Input { x: &x, bias: None };
    assert!(bwd(input, &dy[..3], &mut dz, None, relu).is_err());
    assert!(bwd(input, &dy, &mut dz[..3], None, relu).is_err());
    assert!(bwd(input, &dy, &mut dz, Some(&mut db[..2]), relu).is_err());
    assert!(bwd(
        Saved::Input {
            x: &x[..3],
            bias: None
        },
        &dy,
        &mut dz,
        None,
        relu
    )
    .is_err());
    assert!(bwd(
        Saved::Input {
            x: &x,
            bias: Some(&bias[..1])
        },
        &dy,
        &mut dz,
        None,
        relu
    )
    .is_err());
    assert!(bwd(Saved::Output(&x[..3]), &dy, &mut dz, None, relu).is_err());
    for act in [
        Activation::Gelu,
        Activation::GeluTanh,
        Activation::Silu,
        Activation::LeakyRelu { slope: -0.1 },
        Activation::Elu { alpha: -1.0 },
    ] {
        assert!(!gradient_from_output(act));
        assert!(matches!(
            bwd(Saved::Output(&x), &dy, &mut dz, None, act),
            Err(KernelError::InvalidParameter { .. })
        ));
    }
    let mut inplace = dy.clone();
    assert!(bias_activation_backward_in_place_on(
        isa,
        &shape,
        relu,
        input,
        &mut inplace[..4],
        None,
        seq
    )
    .is_err());

    assert!(math_on(isa, MathFunction::Exp, &x, &mut y[..3]).is_err());
    for isa in [Isa::Scalar, Isa::Neon, Isa::Avx2] {
        if !isa.is_available() {
            assert!(matches!(
                fwd(&x, None, &mut y, relu, seq).and(bias_activation_forward_on(
                    isa, &shape, relu, &x, None, &mut y, seq
                )),
                Err(KernelError::UnsupportedIsa { .. })
            ));
        }
    }
}

#[test]
fn empty_tensors_write_a_zero_bias_gradient() {
    for shape in [BiasShape::new(0, 3, 5), BiasShape::new(4, 3, 0)] {
        for isa in Isa::available() {
            let mut db = [f32::NAN; 3];
            let saved = Saved::Input {
                x: &[],
                bias: Some(&[1.0, 2.0, 3.0]),
            };
            let seq = Parallelism::Sequential;
            bias_activation_backward_on(
                isa,
                &shape,
                Activation::Tanh,
                saved,
                &[],
                &mut [],
                Some(&mut db),
                seq,
            )
            .unwrap();
            assert_eq!(db, [0.0; 3]);
        }
    }
}
