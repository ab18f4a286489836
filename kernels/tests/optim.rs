//! The fast optimizer steps against the f64 reference on every ISA path: every
//! hyper-parameter combination (momentum, dampening, Nesterov, weight decay, L2 vs
//! decoupled, centered RMSprop with momentum, Adagrad's lr_decay and initial value),
//! random sizes (0, 1, 3, 17, … and several work items), steps t = 1..5; bitwise the
//! same for every thread count; errors on bad calls.
//!
//! Each step runs the reference and every path from the same parameter and state (the
//! reference's trajectory), so the comparison measures one step's error. The bound of
//! each output is K·ε (K = 8, ε = f32::EPSILON) times its condition: the sum of the
//! absolute values of the terms that make it (|g| + wd·|p| for the decayed gradient,
//! β·|m| + (1 − β)·|g| for a moment, …), carried through √ and the divisions to the
//! parameter. The kernels round each of a handful of f32 operations once (fused where
//! the path has FMA), so a few ε of each term's magnitude is what they can lose; the
//! conditioning keeps the bound honest where terms cancel (a gradient against its
//! weight decay, a centered variance).

use axonal_kernels::optim::{
    adagrad_step_on, adam_step_on, rmsprop_step_on, sgd_step_on, Adagrad, Adam, RmsProp, Sgd,
    WeightDecay,
};
use axonal_kernels::{reference, Isa, KernelError, Parallelism};
use proptest::prelude::*;

const K: f64 = 8.0;
const EPS: f64 = f32::EPSILON as f64;
const KE: f64 = K * EPS;

fn values(len: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            scale * ((state >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
        })
        .collect()
}

#[derive(Debug, Clone, Copy)]
enum Opt {
    Sgd(Sgd),
    Adam(Adam),
    RmsProp(RmsProp),
    Adagrad(Adagrad),
}

/// A parameter and its three state buffers (unused ones empty).
#[derive(Clone, Debug)]
struct State {
    p: Vec<f32>,
    s: [Vec<f32>; 3],
}

impl Opt {
    /// A fresh state of `len` elements: NaN where the step must not read it at t = 1.
    fn state(&self, len: usize, seed: u64) -> State {
        let nan = || vec![f32::NAN; len];
        let s = match self {
            Opt::Sgd(h) if h.momentum != 0.0 => [nan(), vec![], vec![]],
            Opt::Sgd(_) => [vec![], vec![], vec![]],
            Opt::Adam(_) => [nan(), nan(), vec![]],
            Opt::RmsProp(h) => [
                nan(),
                if h.centered { nan() } else { vec![] },
                if h.momentum > 0.0 { nan() } else { vec![] },
            ],
            Opt::Adagrad(_) => [nan(), vec![], vec![]],
        };
        State {
            p: values(len, seed, 2.0),
            s,
        }
    }

    fn step_reference(&self, t: u64, st: &mut State, g: &[f32]) -> axonal_kernels::Result<()> {
        let [a, b, c] = &mut st.s;
        match self {
            Opt::Sgd(h) => reference::sgd_step(h, t, &mut st.p, g, a),
            Opt::Adam(h) => reference::adam_step(h, t, &mut st.p, g, a, b),
            Opt::RmsProp(h) => reference::rmsprop_step(h, t, &mut st.p, g, a, b, c),
            Opt::Adagrad(h) => reference::adagrad_step(h, t, &mut st.p, g, a),
        }
    }

    fn step_fast(
        &self,
        isa: Isa,
        par: Parallelism,
        t: u64,
        st: &mut State,
        g: &[f32],
    ) -> axonal_kernels::Result<()> {
        let [a, b, c] = &mut st.s;
        match self {
            Opt::Sgd(h) => sgd_step_on(isa, h, t, &mut st.p, g, a, par),
            Opt::Adam(h) => adam_step_on(isa, h, t, &mut st.p, g, a, b, par),
            Opt::RmsProp(h) => rmsprop_step_on(isa, h, t, &mut st.p, g, a, b, c, par),
            Opt::Adagrad(h) => adagrad_step_on(isa, h, t, &mut st.p, g, a, par),
        }
    }

    /// The bounds of element i's new parameter and states, given the inputs of the step.
    fn bounds(&self, t: u64, before: &State, g: &[f32], i: usize) -> (f64, [f64; 3]) {
        let p = f64::from(before.p[i]);
        let g = f64::from(g[i]);
        let old = |k: usize| {
            if t == 1 {
                0.0
            } else {
                f64::from(before.s[k].get(i).copied().unwrap_or(0.0))
            }
        };
        let first = t == 1;
        match self {
            Opt::Sgd(h) => {
                let (lr, mu, wd) = (
                    f64::from(h.lr),
                    f64::from(h.momentum),
                    f64::from(h.weight_decay),
                );
                let mg = g.abs() + wd * p.abs();
                let (update, tol_b) = if h.momentum != 0.0 {
                    let mb = if first {
                        mg
                    } else {
                        mu * old(0).abs() + (1.0 - f64::from(h.dampening)).abs() * mg
                    };
                    (if h.nesterov { mg + mu * mb } else { mb }, KE * mb)
                } else {
                    (mg, 0.0)
                };
                (KE * (p.abs() + lr * update), [tol_b, 0.0, 0.0])
            }
            Opt::Adam(h) => {
                let (lr, b1, b2) = (f64::from(h.lr), f64::from(h.beta1), f64::from(h.beta2));
                let (eps, wd) = (f64::from(h.eps), f64::from(h.weight_decay));
                let l2 = h.decay == WeightDecay::L2;
                let (g, mg) = if l2 {
                    (g + wd * p, g.abs() + wd * p.abs())
                } else {
                    (g, g.abs())
                };
                let m = b1 * old(0) + (1.0 - b1) * g;
                let mm = b1 * old(0).abs() + (1.0 - b1) * mg;
                let v = b2 * old(1) + (1.0 - b2) * g * g;
                let mv = b2 * old(1) + (1.0 - b2) * mg * mg;
                let bc1 = 1.0 - b1.powf(t as f64);
                let bc2 = 1.0 - b2.powf(t as f64);
                let sqrt_v = v.sqrt().max(f64::MIN_POSITIVE);
                let denominator = sqrt_v / bc2.sqrt() + eps;
                // √ halves v's relative error; the denominator's own roundings add a few ε.
                // (Written without sqrt_v², which underflows to 0 for a tiny v.)
                let rel_denominator = KE * mv / (2.0 * sqrt_v * bc2.sqrt() * denominator) + KE;
                let step = lr / bc1;
                let tol_update = step * (KE * mm + m.abs() * rel_denominator) / denominator;
                let update = step * m.abs() / denominator;
                (
                    KE * (p.abs() + update) + tol_update,
                    [KE * mm, KE * mv, 0.0],
                )
            }
            Opt::RmsProp(h) => {
                let (lr, a, mu) = (f64::from(h.lr), f64::from(h.alpha), f64::from(h.momentum));
                let (eps, wd) = (f64::from(h.eps), f64::from(h.weight_decay));
                let gd = g + wd * p;
                let mg = g.abs() + wd * p.abs();
                let sq = a * old(0) + (1.0 - a) * gd * gd;
                let msq = a * old(0) + (1.0 - a) * mg * mg;
                let (avg, tol_avg, tol_mean) = if h.centered {
                    let mean = a * old(1) + (1.0 - a) * gd;
                    let mmean = a * old(1).abs() + (1.0 - a) * mg;
                    let root = (sq - mean * mean).max(0.0).sqrt().max(f64::MIN_POSITIVE);
                    let avg = root + eps;
                    (
                        avg,
                        KE * (msq + mmean * mmean) / (2.0 * root) + KE * avg,
                        KE * mmean,
                    )
                } else {
                    let root = sq.sqrt().max(f64::MIN_POSITIVE);
                    let avg = root + eps;
                    (avg, KE * msq / (2.0 * root) + KE * avg, 0.0)
                };
                let u = gd / avg;
                let tol_u = (KE * mg + gd.abs() * tol_avg / avg) / avg;
                let (update, tol_update) = if h.momentum > 0.0 {
                    let b = mu * old(2) + u;
                    (b.abs(), KE * (mu * old(2).abs() + u.abs()) + tol_u)
                } else {
                    (u.abs(), tol_u)
                };
                (
                    KE * (p.abs() + lr * update) + lr * tol_update,
                    [KE * msq, tol_mean, tol_update],
                )
            }
            Opt::Adagrad(h) => {
                let clr = f64::from(h.lr) / (1.0 + (t - 1) as f64 * f64::from(h.lr_decay));
                let (eps, wd) = (f64::from(h.eps), f64::from(h.weight_decay));
                let gd = g + wd * p;
                let mg = g.abs() + wd * p.abs();
                let previous = if first {
                    f64::from(h.initial_accumulator_value)
                } else {
                    old(0)
                };
                let s = previous + gd * gd;
                let ms = previous + mg * mg;
                let root = s.sqrt().max(f64::MIN_POSITIVE);
                let denominator = root + eps;
                let tol_denominator = KE * ms / (2.0 * root) + KE * denominator;
                let update = clr * gd.abs() / denominator;
                let tol_update =
                    clr * (KE * mg + gd.abs() * tol_denominator / denominator) / denominator;
                (KE * (p.abs() + update) + tol_update, [KE * ms, 0.0, 0.0])
            }
        }
    }
}

fn check_step(
    opt: &Opt,
    t: u64,
    before: &State,
    g: &[f32],
    expected: &State,
    isa: Isa,
) -> Result<(), TestCaseError> {
    let mut got = before.clone();
    opt.step_fast(isa, Parallelism::Sequential, t, &mut got, g)
        .unwrap();
    for i in 0..g.len() {
        let (tol_p, tol_s) = opt.bounds(t, before, g, i);
        let err = (f64::from(got.p[i]) - f64::from(expected.p[i])).abs();
        prop_assert!(
            err <= tol_p,
            "{isa} {opt:?} t={t} p[{i}]: got {:e}, expected {:e}, error {err:e} > {tol_p:e}",
            got.p[i],
            expected.p[i]
        );
        for (k, ((got_s, expected_s), tol)) in got.s.iter().zip(&expected.s).zip(tol_s).enumerate()
        {
            if expected_s.is_empty() {
                prop_assert!(got_s.is_empty());
                continue;
            }
            let (a, b) = (got_s[i], expected_s[i]);
            let err = (f64::from(a) - f64::from(b)).abs();
            prop_assert!(
                err <= tol,
                "{isa} {opt:?} t={t} state{k}[{i}]: got {a:e}, expected {b:e}, error {err:e} > {tol:e}"
            );
        }
    }
    Ok(())
}

fn check_optimizer(opt: Opt, len: usize, grad_scale: f32, seed: u64) -> Result<(), TestCaseError> {
    let grads: Vec<Vec<f32>> = (0..5)
        .map(|k| values(len, seed ^ ((k + 1) * 0x1234_5678), grad_scale))
        .collect();
    // One step at a time from the reference's trajectory.
    let mut st = opt.state(len, seed);
    for (t, g) in (1..=5).zip(&grads) {
        let mut expected = st.clone();
        opt.step_reference(t, &mut expected, g).unwrap();
        for isa in Isa::available() {
            check_step(&opt, t, &st, g, &expected, isa)?;
        }
        st = expected;
    }
    // Whole trajectories, bitwise the same for every thread count.
    for isa in Isa::available() {
        let run = |par| {
            let mut st = opt.state(len, seed);
            for (t, g) in (1..=5).zip(&grads) {
                opt.step_fast(isa, par, t, &mut st, g).unwrap();
            }
            st
        };
        let base = run(Parallelism::Sequential);
        for par in [Parallelism::Threads(2), Parallelism::Threads(3)] {
            let other = run(par);
            let same =
                |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
            prop_assert!(same(&base.p, &other.p), "{isa} {par:?} p");
            for k in 0..3 {
                prop_assert!(same(&base.s[k], &other.s[k]), "{isa} {par:?} state{k}");
            }
        }
    }
    Ok(())
}

fn sizes() -> impl Strategy<Value = usize> {
    prop_oneof![
        3 => prop::sample::select(vec![0usize, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33]),
        3 => 0usize..500,
        1 => 16_000usize..40_000,
    ]
}

fn grad_scale() -> impl Strategy<Value = f32> {
    prop::sample::select(vec![1e-3f32, 1.0, 30.0])
}

fn sgd() -> impl Strategy<Value = Opt> {
    (
        prop::sample::select(vec![1e-3f32, 0.1, 1.0]),
        prop::sample::select(vec![0.0f32, 0.5, 0.9]),
        prop::sample::select(vec![0.0f32, 0.1, 0.5]),
        prop::sample::select(vec![0.0f32, 1e-4, 0.1]),
        any::<bool>(),
    )
        .prop_map(|(lr, momentum, dampening, weight_decay, nesterov)| {
            let (momentum, dampening) = if nesterov {
                (if momentum == 0.0 { 0.9 } else { momentum }, 0.0)
            } else {
                (momentum, dampening)
            };
            Opt::Sgd(Sgd {
                lr,
                momentum,
                dampening,
                weight_decay,
                nesterov,
            })
        })
}

fn adam() -> impl Strategy<Value = Opt> {
    (
        prop::sample::select(vec![1e-3f32, 0.1]),
        prop::sample::select(vec![(0.9f32, 0.999f32), (0.5, 0.75), (0.0, 0.99)]),
        prop::sample::select(vec![1e-8f32, 1e-3]),
        prop::sample::select(vec![0.0f32, 0.01, 0.5]),
        any::<bool>(),
    )
        .prop_map(|(lr, (beta1, beta2), eps, weight_decay, decoupled)| {
            Opt::Adam(Adam {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
                decay: if decoupled {
                    WeightDecay::Decoupled
                } else {
                    WeightDecay::L2
                },
            })
        })
}

fn rmsprop() -> impl Strategy<Value = Opt> {
    (
        prop::sample::select(vec![1e-3f32, 0.01]),
        prop::sample::select(vec![0.99f32, 0.9, 0.5]),
        prop::sample::select(vec![1e-8f32, 1e-3]),
        prop::sample::select(vec![0.0f32, 0.01]),
        prop::sample::select(vec![0.0f32, 0.9]),
        any::<bool>(),
    )
        .prop_map(|(lr, alpha, eps, weight_decay, momentum, centered)| {
            Opt::RmsProp(RmsProp {
                lr,
                alpha,
                eps,
                weight_decay,
                momentum,
                centered,
            })
        })
}

fn adagrad() -> impl Strategy<Value = Opt> {
    (
        prop::sample::select(vec![0.01f32, 0.5]),
        prop::sample::select(vec![0.0f32, 0.1]),
        prop::sample::select(vec![0.0f32, 0.01]),
        prop::sample::select(vec![0.0f32, 0.1]),
        prop::sample::select(vec![1e-10f32, 1e-3]),
    )
        .prop_map(
            |(lr, lr_decay, weight_decay, initial_accumulator_value, eps)| {
                Opt::Adagrad(Adagrad {
                    lr,
                    lr_decay,
                    weight_decay,
                    initial_accumulator_value,
                    eps,
                })
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn sgd_matches_reference(opt in sgd(), len in sizes(), scale in grad_scale(), seed in any::<u64>()) {
        check_optimizer(opt, len, scale, seed)?;
    }

    #[test]
    fn adam_matches_reference(opt in adam(), len in sizes(), scale in grad_scale(), seed in any::<u64>()) {
        check_optimizer(opt, len, scale, seed)?;
    }

    #[test]
    fn rmsprop_matches_reference(opt in rmsprop(), len in sizes(), scale in grad_scale(), seed in any::<u64>()) {
        check_optimizer(opt, len, scale, seed)?;
    }

    #[test]
    fn adagrad_matches_reference(opt in adagrad(), len in sizes(), scale in grad_scale(), seed in any::<u64>()) {
        check_optimizer(opt, len, scale, seed)?;
    }
}

#[test]
fn bad_inputs_are_errors() {
    let seq = Parallelism::Sequential;
    for isa in Isa::available() {
        let mut p = [0.0f32; 3];
        let g = [0.0f32; 3];
        let mut s = [[0.0f32; 3]; 3];
        let [a, b, c] = &mut s;

        assert!(sgd_step_on(isa, &Sgd::new(0.1), 0, &mut p, &g, &mut [], seq).is_err());
        assert!(sgd_step_on(isa, &Sgd::new(0.1), 1, &mut p, &g[..2], &mut [], seq).is_err());
        assert!(sgd_step_on(isa, &Sgd::new(-0.1), 1, &mut p, &g, &mut [], seq).is_err());
        assert!(sgd_step_on(isa, &Sgd::new(f32::NAN), 1, &mut p, &g, &mut [], seq).is_err());
        assert!(sgd_step_on(isa, &Sgd::new(0.1), 1, &mut p, &g, &mut a[..2], seq).is_err());
        let momentum = Sgd {
            momentum: 0.9,
            ..Sgd::new(0.1)
        };
        assert!(sgd_step_on(isa, &momentum, 1, &mut p, &g, &mut [], seq).is_err());
        let nesterov = Sgd {
            nesterov: true,
            ..Sgd::new(0.1)
        };
        assert!(sgd_step_on(isa, &nesterov, 1, &mut p, &g, a, seq).is_err());
        assert!(matches!(
            sgd_step_on(
                isa,
                &Sgd::new(0.1),
                1,
                &mut p,
                &g,
                &mut [],
                Parallelism::Threads(0)
            ),
            Err(KernelError::InvalidParameter { .. })
        ));

        let adam = Adam::new(0.1);
        assert!(adam_step_on(isa, &adam, 0, &mut p, &g, a, b, seq).is_err());
        assert!(adam_step_on(isa, &adam, 1, &mut p, &g, &mut a[..2], b, seq).is_err());
        assert!(adam_step_on(isa, &adam, 1, &mut p, &g, a, &mut [], seq).is_err());
        let bad_beta = Adam { beta2: 1.0, ..adam };
        assert!(adam_step_on(isa, &bad_beta, 1, &mut p, &g, a, b, seq).is_err());

        let rms = RmsProp::new(0.1);
        assert!(rmsprop_step_on(isa, &rms, 0, &mut p, &g, a, &mut [], &mut [], seq).is_err());
        assert!(rmsprop_step_on(isa, &rms, 1, &mut p, &g, &mut [], &mut [], &mut [], seq).is_err());
        let centered = RmsProp {
            centered: true,
            ..rms
        };
        assert!(rmsprop_step_on(isa, &centered, 1, &mut p, &g, a, &mut [], &mut [], seq).is_err());
        let with_momentum = RmsProp {
            momentum: 0.5,
            ..rms
        };
        assert!(rmsprop_step_on(isa, &with_momentum, 1, &mut p, &g, a, b, &mut [], seq).is_err());
        assert!(rmsprop_step_on(isa, &with_momentum, 1, &mut p, &g, a, b, c, seq).is_ok());

        let adagrad = Adagrad::new(0.1);
        assert!(adagrad_step_on(isa, &adagrad, 0, &mut p, &g, a, seq).is_err());
        assert!(adagrad_step_on(isa, &adagrad, 1, &mut p, &g, &mut a[..1], seq).is_err());
        let bad_eps = Adagrad {
            eps: f32::NAN,
            ..adagrad
        };
        assert!(adagrad_step_on(isa, &bad_eps, 1, &mut p, &g, a, seq).is_err());
    }
}
