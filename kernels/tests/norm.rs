//! The fast batch-norm kernels against the f64 reference: every ISA path, both layouts,
//! random shapes (batch 1 with spatial ≥ 2, spatial 1, odd channel counts, runs and row
//! blocks longer than one summing block), the ReLU-fused variants against ReLU composed
//! with the reference, bitwise determinism across thread counts, data far from zero, and
//! errors instead of panics.

use axonal_kernels::norm::{
    batch_norm_backward, batch_norm_backward_on, batch_norm_forward_inference,
    batch_norm_forward_inference_on, batch_norm_forward_training, batch_norm_forward_training_on,
    batch_norm_relu_backward, batch_norm_relu_backward_on, batch_norm_relu_forward_inference_on,
    batch_norm_relu_forward_training_on, BatchNormDesc,
};
use axonal_kernels::{reference, Isa, KernelError, Layout, Parallelism};
use proptest::prelude::*;

/// Deterministic values uniform in [offset − scale, offset + scale).
fn values(len: usize, seed: u64, offset: f32, scale: f32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let uniform = (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0;
            offset + scale * uniform
        })
        .collect()
}

/// Asserts |got − expected| ≤ rel·|expected| + abs·max|expected| element-wise: the
/// absolute part scales with the tensor, for values that cancel to near zero.
fn assert_close(what: &str, got: &[f32], expected: &[f32], rel: f64, abs: f64) {
    let scale = expected
        .iter()
        .map(|&e| f64::from(e).abs())
        .fold(1e-30f64, f64::max);
    let bounds: Vec<f64> = expected
        .iter()
        .map(|&e| rel * f64::from(e).abs() + abs * scale)
        .collect();
    assert_within(what, got, expected, &bounds);
}

/// Asserts |got[i] − expected[i]| ≤ bound[i].
fn assert_within(what: &str, got: &[f32], expected: &[f32], bound: &[f64]) {
    assert_eq!(got.len(), expected.len(), "{what}: length");
    for (i, (&g, &e)) in got.iter().zip(expected).enumerate() {
        let (g, e) = (f64::from(g), f64::from(e));
        assert!(
            (g - e).abs() <= bound[i],
            "{what}[{i}]: got {g:e}, expected {e:e} (bound {:e})",
            bound[i]
        );
    }
}

/// Error bounds of the backward outputs (dx, dgamma, dbeta), relative to the size of
/// the terms that cancel in them: dx = a·(dy − Σdy/m − x̂·Σdy·x̂/m) with a =
/// gamma·inv_std, so a·max|dy| per channel; Σ|dy| and Σ|dy·x̂| for the sums.
fn backward_bounds(case: &Case, stats: &TrainOut, dy: &[f32], rel: f64) -> [Vec<f64>; 3] {
    let d = &case.desc;
    let max_dy = dy.iter().map(|&v| f64::from(v).abs()).fold(0.0, f64::max);
    let mut dx = vec![0.0; case.x.len()];
    let (mut dgamma, mut dbeta) = (vec![0.0; d.channels], vec![0.0; d.channels]);
    for c in 0..d.channels {
        let inv_std = f64::from(stats.inv_std[c]);
        let a = (f64::from(case.gamma[c]) * inv_std).abs();
        for n in 0..d.batch {
            for s in 0..d.spatial {
                let at = d.index(n, c, s);
                let x_hat = (f64::from(case.x[at]) - f64::from(stats.mean[c])) * inv_std;
                dx[at] = rel * a * max_dy * (1.0 + x_hat.abs());
                dbeta[c] += rel * f64::from(dy[at]).abs();
                dgamma[c] += rel * (f64::from(dy[at]) * x_hat).abs();
            }
        }
    }
    [dx, dgamma, dbeta]
}

const REL: f64 = 2e-5;
const ABS: f64 = 2e-5;

fn relu(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&y| if y > 0.0 { y } else { 0.0 }).collect()
}

/// Everything one training forward writes.
#[derive(Debug, PartialEq)]
struct TrainOut {
    y: Vec<f32>,
    running_mean: Vec<f32>,
    running_var: Vec<f32>,
    mean: Vec<f32>,
    inv_std: Vec<f32>,
}

/// The inputs of one case.
struct Case {
    desc: BatchNormDesc,
    x: Vec<f32>,
    dy: Vec<f32>,
    gamma: Vec<f32>,
    beta: Vec<f32>,
    running_mean: Vec<f32>,
    running_var: Vec<f32>,
}

impl Case {
    fn new(desc: BatchNormDesc, seed: u64, offset: f32) -> Case {
        let c = desc.channels;
        Case {
            desc,
            x: values(desc.len(), seed, offset, 2.0),
            dy: values(desc.len(), seed + 1, 0.0, 1.0),
            gamma: values(c, seed + 2, 0.5, 1.0),
            beta: values(c, seed + 3, 0.0, 1.0),
            running_mean: values(c, seed + 4, 0.0, 1.0),
            running_var: values(c, seed + 5, 1.5, 1.0),
        }
    }

    /// The training forward: the reference (`isa` None) or a fast path.
    fn train(&self, isa: Option<Isa>, fused_relu: bool, par: Parallelism) -> TrainOut {
        let c = self.desc.channels;
        let mut out = TrainOut {
            y: vec![f32::NAN; self.x.len()],
            running_mean: self.running_mean.clone(),
            running_var: self.running_var.clone(),
            mean: vec![f32::NAN; c],
            inv_std: vec![f32::NAN; c],
        };
        let (d, x, g, b) = (&self.desc, &self.x, &self.gamma, &self.beta);
        let (rm, rv) = (&mut out.running_mean, &mut out.running_var);
        let (y, m, s) = (&mut out.y, &mut out.mean, &mut out.inv_std);
        match (isa, fused_relu) {
            (None, _) => reference::batch_norm_forward_training(d, x, g, b, 0.1, rm, rv, y, m, s),
            (Some(isa), false) => {
                batch_norm_forward_training_on(isa, d, x, g, b, 0.1, rm, rv, y, m, s, par)
            }
            (Some(isa), true) => {
                batch_norm_relu_forward_training_on(isa, d, x, g, b, 0.1, rm, rv, y, m, s, par)
            }
        }
        .unwrap();
        if isa.is_none() && fused_relu {
            out.y = relu(&out.y);
        }
        out
    }

    fn infer(&self, isa: Option<Isa>, fused_relu: bool, par: Parallelism) -> Vec<f32> {
        let mut y = vec![f32::NAN; self.x.len()];
        let (d, x, g, b) = (&self.desc, &self.x, &self.gamma, &self.beta);
        let (rm, rv) = (&self.running_mean, &self.running_var);
        match (isa, fused_relu) {
            (None, _) => reference::batch_norm_forward_inference(d, x, g, b, rm, rv, &mut y),
            (Some(isa), false) => {
                batch_norm_forward_inference_on(isa, d, x, g, b, rm, rv, &mut y, par)
            }
            (Some(isa), true) => {
                batch_norm_relu_forward_inference_on(isa, d, x, g, b, rm, rv, &mut y, par)
            }
        }
        .unwrap();
        if isa.is_none() && fused_relu {
            y = relu(&y);
        }
        y
    }

    /// (dx, dgamma, dbeta) from the saved statistics; with `relu_y`, the ReLU-fused
    /// backward (fast) or dy masked by it before the reference backward.
    fn backward(
        &self,
        isa: Option<Isa>,
        stats: &TrainOut,
        relu_y: Option<&[f32]>,
        par: Parallelism,
    ) -> [Vec<f32>; 3] {
        let c = self.desc.channels;
        let mut dx = vec![f32::NAN; self.x.len()];
        let (mut dgamma, mut dbeta) = (vec![f32::NAN; c], vec![f32::NAN; c]);
        let (d, x, g) = (&self.desc, &self.x, &self.gamma);
        let (m, s) = (&stats.mean, &stats.inv_std);
        match (isa, relu_y) {
            (None, None) => reference::batch_norm_backward(
                d,
                x,
                &self.dy,
                g,
                m,
                s,
                &mut dx,
                &mut dgamma,
                &mut dbeta,
            ),
            (None, Some(y)) => {
                let masked: Vec<f32> = self
                    .dy
                    .iter()
                    .zip(y)
                    .map(|(&dy, &y)| if y > 0.0 { dy } else { 0.0 })
                    .collect();
                reference::batch_norm_backward(
                    d,
                    x,
                    &masked,
                    g,
                    m,
                    s,
                    &mut dx,
                    &mut dgamma,
                    &mut dbeta,
                )
            }
            (Some(isa), None) => batch_norm_backward_on(
                isa,
                d,
                x,
                &self.dy,
                g,
                m,
                s,
                &mut dx,
                &mut dgamma,
                &mut dbeta,
                par,
            ),
            (Some(isa), Some(y)) => batch_norm_relu_backward_on(
                isa,
                d,
                x,
                y,
                &self.dy,
                g,
                m,
                s,
                &mut dx,
                &mut dgamma,
                &mut dbeta,
                par,
            ),
        }
        .unwrap();
        [dx, dgamma, dbeta]
    }
}

/// Compares every output of every fast path with the reference on one case.
fn check_against_reference(case: &Case) {
    let par = Parallelism::Threads(2);
    let expected = case.train(None, false, par);
    let expected_relu = case.train(None, true, par);
    let expected_eval = case.infer(None, false, par);
    let expected_eval_relu = case.infer(None, true, par);
    let expected_grads = case.backward(None, &expected, None, par);
    for isa in Isa::available() {
        let what = |t: &str| format!("{:?} {isa} {t}", case.desc);
        let got = case.train(Some(isa), false, par);
        assert_close(&what("y"), &got.y, &expected.y, REL, ABS);
        assert_close(&what("mean"), &got.mean, &expected.mean, REL, ABS);
        assert_close(&what("inv_std"), &got.inv_std, &expected.inv_std, REL, 0.0);
        assert_close(
            &what("running_mean"),
            &got.running_mean,
            &expected.running_mean,
            REL,
            ABS,
        );
        assert_close(
            &what("running_var"),
            &got.running_var,
            &expected.running_var,
            REL,
            0.0,
        );
        let got_relu = case.train(Some(isa), true, par);
        assert_close(&what("relu y"), &got_relu.y, &expected_relu.y, REL, ABS);
        assert_eq!(got_relu.mean, got.mean, "{}", what("relu mean"));
        assert_eq!(
            got_relu.running_var,
            got.running_var,
            "{}",
            what("relu running_var")
        );

        let y = case.infer(Some(isa), false, par);
        assert_close(&what("inference y"), &y, &expected_eval, REL, ABS);
        let y = case.infer(Some(isa), true, par);
        assert_close(&what("inference relu y"), &y, &expected_eval_relu, REL, ABS);

        // The backward from the reference's saved statistics, so that only it is tested.
        let got = case.backward(Some(isa), &expected, None, par);
        let bounds = backward_bounds(case, &expected, &case.dy, 1e-5);
        for (i, name) in ["dx", "dgamma", "dbeta"].iter().enumerate() {
            assert_within(&what(name), &got[i], &expected_grads[i], &bounds[i]);
        }
        // The fused backward masks with the fast forward's own ReLU output.
        let relu_y = &got_relu.y;
        let masked: Vec<f32> = case
            .dy
            .iter()
            .zip(relu_y)
            .map(|(&dy, &y)| if y > 0.0 { dy } else { 0.0 })
            .collect();
        let bounds = backward_bounds(case, &expected, &masked, 1e-5);
        let expected_relu_grads = case.backward(None, &expected, Some(relu_y), par);
        let got = case.backward(Some(isa), &expected, Some(relu_y), par);
        for (i, name) in ["relu dx", "relu dgamma", "relu dbeta"].iter().enumerate() {
            assert_within(&what(name), &got[i], &expected_relu_grads[i], &bounds[i]);
        }
    }
}

fn layout() -> impl Strategy<Value = Layout> {
    prop_oneof![Just(Layout::Nchw), Just(Layout::Nhwc)]
}

/// Shapes with at least 2 values per channel: tiny ones, batch 1 with spatial ≥ 2,
/// spatial 1 (BatchNorm1d), odd channel counts around the 4- and 8-lane vectors.
fn descriptor() -> impl Strategy<Value = BatchNormDesc> {
    let channels = prop::sample::select(vec![1usize, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17, 33]);
    let shape = prop_oneof![
        (1usize..=1, 2usize..=40),
        (2usize..=6, 1usize..=1),
        (2usize..=4, 1usize..=30),
    ];
    (shape, channels, layout()).prop_map(|((batch, spatial), channels, layout)| {
        BatchNormDesc::new(batch, channels, spatial).layout(layout)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn fast_matches_reference(
        desc in descriptor(),
        seed in 0u64..1000,
        offset in prop::sample::select(vec![0.0f32, 3.0, -50.0]),
    ) {
        check_against_reference(&Case::new(desc, seed, offset));
    }
}

#[test]
fn long_runs_and_many_row_blocks_match_reference() {
    // NCHW runs longer than one 4096-value block; NHWC with several row blocks and a
    // partial last one; a wide NHWC row.
    for desc in [
        BatchNormDesc::new(2, 3, 5000),
        BatchNormDesc::new(3, 7, 1900).layout(Layout::Nhwc),
        BatchNormDesc::new(2, 70, 150).layout(Layout::Nhwc),
        BatchNormDesc::new(300, 9, 1),
    ] {
        check_against_reference(&Case::new(desc, 7, 1.0));
    }
}

#[test]
fn every_thread_count_gives_identical_bits() {
    for desc in [
        BatchNormDesc::new(2, 3, 5000),
        BatchNormDesc::new(4, 5, 169),
        BatchNormDesc::new(3, 7, 1900).layout(Layout::Nhwc),
        BatchNormDesc::new(4, 64, 169).layout(Layout::Nhwc),
        BatchNormDesc::new(5000, 3, 1),
    ] {
        let case = Case::new(desc, 11, 0.5);
        for isa in Isa::available() {
            let run = |par| {
                let stats = case.train(Some(isa), false, par);
                let relu_stats = case.train(Some(isa), true, par);
                let eval = case.infer(Some(isa), false, par);
                let eval_relu = case.infer(Some(isa), true, par);
                let grads = case.backward(Some(isa), &stats, None, par);
                let relu_grads = case.backward(Some(isa), &stats, Some(&relu_stats.y), par);
                (stats, relu_stats, eval, eval_relu, grads, relu_grads)
            };
            let one = run(Parallelism::Sequential);
            for threads in [1, 2, 3] {
                assert!(
                    one == run(Parallelism::Threads(threads)),
                    "{desc:?} {isa}: {threads} threads differ from one"
                );
            }
        }
    }
}

#[test]
fn data_far_from_zero_normalizes_accurately() {
    // Mean 1e4, std about 1: a one-pass E[x²] − E[x]² in f32 would return noise.
    for layout in [Layout::Nchw, Layout::Nhwc] {
        let desc = BatchNormDesc::new(8, 5, 169).layout(layout);
        let x = values(desc.len(), 3, 1e4, 1.7);
        let c = desc.channels;
        // Exact statistics in f64, two-pass.
        let m = desc.count_per_channel() as f64;
        let offsets = |ch: usize| {
            (0..desc.batch).flat_map(move |n| (0..desc.spatial).map(move |s| desc.index(n, ch, s)))
        };
        for isa in Isa::available() {
            let (mut rm, mut rv) = (vec![0.0; c], vec![1.0; c]);
            let (mut mean, mut inv_std) = (vec![0.0; c], vec![0.0; c]);
            let mut y = vec![f32::NAN; desc.len()];
            batch_norm_forward_training_on(
                isa,
                &desc,
                &x,
                &vec![1.0; c],
                &vec![0.0; c],
                0.1,
                &mut rm,
                &mut rv,
                &mut y,
                &mut mean,
                &mut inv_std,
                Parallelism::Sequential,
            )
            .unwrap();
            for ch in 0..c {
                let exact_mean = offsets(ch).map(|at| f64::from(x[at])).sum::<f64>() / m;
                let ssd: f64 = offsets(ch)
                    .map(|at| (f64::from(x[at]) - exact_mean).powi(2))
                    .sum();
                let exact_inv_std = 1.0 / (ssd / m + f64::from(desc.eps)).sqrt();
                let what = format!("{layout:?} {isa} channel {ch}");
                assert!(
                    (f64::from(mean[ch]) - exact_mean).abs() <= 1e-3,
                    "{what}: mean {} vs {exact_mean}",
                    mean[ch]
                );
                let rel = (f64::from(inv_std[ch]) - exact_inv_std).abs() / exact_inv_std;
                assert!(rel <= 2e-6, "{what}: inv_std relative error {rel:e}");
                let unbiased = ssd / (m - 1.0);
                let rel = (f64::from(rv[ch]) - (0.9 + 0.1 * unbiased)).abs();
                assert!(rel <= 2e-6, "{what}: running_var error {rel:e}");
                for at in offsets(ch) {
                    let exact = (f64::from(x[at]) - exact_mean) * exact_inv_std;
                    let err = (f64::from(y[at]) - exact).abs();
                    assert!(
                        err <= 4e-6 * (1.0 + exact.abs()),
                        "{what}: y[{at}] error {err:e}"
                    );
                }
            }
        }
    }
}

#[test]
fn empty_batches() {
    let desc = BatchNormDesc::new(0, 3, 4);
    let p = [1.0f32; 3];
    let mut y: [f32; 0] = [];
    batch_norm_forward_inference(&desc, &[], &p, &p, &p, &p, &mut y, Parallelism::Sequential)
        .unwrap();
    let (mut dgamma, mut dbeta) = ([f32::NAN; 3], [f32::NAN; 3]);
    batch_norm_backward(
        &desc,
        &[],
        &[],
        &p,
        &p,
        &p,
        &mut [],
        &mut dgamma,
        &mut dbeta,
        Parallelism::Threads(2),
    )
    .unwrap();
    assert_eq!((dgamma, dbeta), ([0.0; 3], [0.0; 3]));
}

#[test]
fn bad_calls_are_errors() {
    let desc = BatchNormDesc::new(2, 2, 2);
    let x = [0.5f32; 8];
    let two = [1.0f32; 2];
    let seq = Parallelism::Sequential;
    let mut y = [0.0f32; 8];
    let mut per_channel = [[0.0f32; 2]; 4];
    let [rm, rv, mean, inv_std] = &mut per_channel;
    let mut train = |desc: &BatchNormDesc, x: &[f32], gamma: &[f32], momentum: f32, par| {
        batch_norm_forward_training(
            desc, x, gamma, &two, momentum, rm, rv, &mut y, mean, inv_std, par,
        )
    };
    assert!(train(&desc, &x, &two, 0.1, seq).is_ok());
    assert!(train(&desc, &x[..7], &two, 0.1, seq).is_err());
    assert!(train(&desc, &x, &[1.0; 3], 0.1, seq).is_err());
    assert!(train(&desc, &x, &two, f32::NAN, seq).is_err());
    assert!(train(&desc.eps(0.0), &x, &two, 0.1, seq).is_err());
    assert!(train(&desc.eps(f32::INFINITY), &x, &two, 0.1, seq).is_err());
    assert!(train(&BatchNormDesc::new(2, 0, 2), &[], &[], 0.1, seq).is_err());
    assert!(train(&desc, &x, &two, 0.1, Parallelism::Threads(0)).is_err());
    assert!(train(&BatchNormDesc::new(usize::MAX, 2, 2), &x, &two, 0.1, seq).is_err());
    // One value per channel cannot train, in either layout.
    for layout in [Layout::Nchw, Layout::Nhwc] {
        let one = BatchNormDesc::new(1, 2, 1).layout(layout);
        let mut out = [[0.0f32; 2]; 5];
        let [rm, rv, y, mean, inv_std] = &mut out;
        let err = batch_norm_forward_training(
            &one,
            &x[..2],
            &two,
            &two,
            0.1,
            rm,
            rv,
            y,
            mean,
            inv_std,
            seq,
        );
        assert!(
            matches!(err, Err(KernelError::InvalidParameter { .. })),
            "{err:?}"
        );
    }

    let mut y = [0.0f32; 8];
    let infer = |x: &[f32], rv: &[f32], y: &mut [f32]| {
        batch_norm_forward_inference(&desc, x, &two, &two, &two, rv, y, seq)
    };
    assert!(infer(&x, &two, &mut y).is_ok());
    assert!(infer(&x, &[1.0], &mut y).is_err());
    assert!(infer(&x, &two, &mut [0.0; 9]).is_err());
    assert!(infer(&x[1..], &two, &mut y).is_err());

    let (mut dx, mut dgamma, mut dbeta) = ([0.0f32; 8], [0.0f32; 2], [0.0f32; 2]);
    let ok = batch_norm_backward(
        &desc,
        &x,
        &x,
        &two,
        &two,
        &two,
        &mut dx,
        &mut dgamma,
        &mut dbeta,
        seq,
    );
    assert!(ok.is_ok());
    let short_dy = batch_norm_backward(
        &desc,
        &x,
        &x[..4],
        &two,
        &two,
        &two,
        &mut dx,
        &mut dgamma,
        &mut dbeta,
        seq,
    );
    assert!(short_dy.is_err());
    let short_dgamma = batch_norm_backward(
        &desc,
        &x,
        &x,
        &two,
        &two,
        &two,
        &mut dx,
        &mut [0.0; 1],
        &mut dbeta,
        seq,
    );
    assert!(short_dgamma.is_err());
    let short_y = batch_norm_relu_backward(
        &desc,
        &x,
        &x[..7],
        &x,
        &two,
        &two,
        &two,
        &mut dx,
        &mut dgamma,
        &mut dbeta,
        seq,
    );
    assert!(short_y.is_err());
    let ok = batch_norm_relu_backward(
        &desc,
        &x,
        &x,
        &x,
        &two,
        &two,
        &two,
        &mut dx,
        &mut dgamma,
        &mut dbeta,
        seq,
    );
    assert!(ok.is_ok());
}
