//! The fast losses against the f64 reference on every ISA path: random shapes (tiny,
//! odd, larger than a work item), random logits and soft targets; the loss bitwise the
//! same for every thread count; the forward-only loss bitwise the fused one; bad calls
//! are errors.
//!
//! Tolerances (ε = f32::EPSILON), from what the kernels do in f32:
//! - cross-entropy loss: ε·(2·classes + 2·spread + 16) + 2ε·|loss|, with spread the range
//!   of a row's logits. Σ e^(z − max) is summed in f32 lanes (≈ classes·ε relative, an
//!   absolute error of ln Σ), each e^(z − max) carries the rounding of z − max, which
//!   exp turns into a relative error up to spread·ε/2, and the vector exp adds ≤ 1 ulp.
//! - its gradient: ε·(classes + spread + 16)·(|expected| + 1/batch): the same relative
//!   error of each probability, on the scale of the row's gradient (1/batch).
//! - BCE: loss 16ε·mean(|max(x,0)| + |x·t| + ln 2) (each term a few ulp of its parts,
//!   blocks of 64 summed in f32); gradient 4ε·(|σ(x)| + |t|)/n (σ to 1.5 ulp, then
//!   the subtraction and the scale).
//! - MSE: loss 64ε·loss (each square ≤ 2 ulp, up to 64 of them summed in one f32 lane);
//!   gradient 2 ulp (p − t, the scale 2/n and the product, each rounded once).

use axonal_kernels::loss::{
    bce_with_logits_on, mse_on, softmax_cross_entropy, softmax_cross_entropy_loss_on,
    softmax_cross_entropy_on, softmax_on,
};
use axonal_kernels::{reference, Isa, KernelError, Parallelism};
use proptest::prelude::*;

const EPS: f64 = f32::EPSILON as f64;

/// A deterministic stream of uniform values in [−scale, scale).
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

fn labels(batch: usize, classes: usize, seed: u64) -> Vec<u32> {
    (0..batch)
        .map(|r| ((seed as usize).wrapping_mul(31).wrapping_add(r * 7919) % classes) as u32)
        .collect()
}

fn check_close(what: &str, got: f32, expected: f32, tol: f64) -> Result<(), TestCaseError> {
    let err = (f64::from(got) - f64::from(expected)).abs();
    prop_assert!(
        err <= tol,
        "{what}: got {got:e}, expected {expected:e}, error {err:e} > {tol:e}"
    );
    Ok(())
}

const THREADS: [Parallelism; 3] = [
    Parallelism::Sequential,
    Parallelism::Threads(2),
    Parallelism::Threads(5),
];

fn check_cross_entropy(
    batch: usize,
    classes: usize,
    scale: f32,
    seed: u64,
) -> Result<(), TestCaseError> {
    let logits = values(batch * classes, seed, scale);
    let labels = labels(batch, classes, seed);
    let mut expected_d = vec![f32::NAN; logits.len()];
    let expected =
        reference::softmax_cross_entropy(batch, classes, &logits, &labels, &mut expected_d)
            .unwrap();
    // The widest row range of the logits.
    let spread = logits
        .chunks(classes)
        .map(|row| {
            let (lo, hi) = row
                .iter()
                .fold((f32::MAX, f32::MIN), |(lo, hi), &z| (lo.min(z), hi.max(z)));
            f64::from(hi - lo)
        })
        .fold(0.0, f64::max);
    let c = classes as f64;
    for isa in Isa::available() {
        let mut d = vec![f32::NAN; logits.len()];
        let loss = softmax_cross_entropy_on(
            isa,
            batch,
            classes,
            &logits,
            &labels,
            &mut d,
            Parallelism::Sequential,
        )
        .unwrap();
        let tol = EPS * (2.0 * c + 2.0 * spread + 16.0) + 2.0 * EPS * f64::from(expected).abs();
        check_close(
            &format!("{isa} loss {batch}x{classes}"),
            loss,
            expected,
            tol,
        )?;
        for (i, (&g, &e)) in d.iter().zip(&expected_d).enumerate() {
            let tol = EPS * (c + spread + 16.0) * (f64::from(e).abs() + 1.0 / batch as f64);
            check_close(&format!("{isa} dlogits[{i}] {batch}x{classes}"), g, e, tol)?;
        }
        for par in THREADS {
            let mut d_par = vec![f32::NAN; logits.len()];
            let loss_par =
                softmax_cross_entropy_on(isa, batch, classes, &logits, &labels, &mut d_par, par)
                    .unwrap();
            prop_assert_eq!(loss_par.to_bits(), loss.to_bits(), "{} {:?}", isa, par);
            prop_assert!(d_par
                .iter()
                .zip(&d)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
            let forward =
                softmax_cross_entropy_loss_on(isa, batch, classes, &logits, &labels, par).unwrap();
            prop_assert_eq!(forward.to_bits(), loss.to_bits(), "{} forward only", isa);
        }
        // The probabilities: the gradient plus the one-hot, times the batch.
        let mut probs = vec![f32::NAN; logits.len()];
        softmax_on(
            isa,
            batch,
            classes,
            &logits,
            &mut probs,
            Parallelism::Threads(3),
        )
        .unwrap();
        for (i, (&p, &e)) in probs.iter().zip(&expected_d).enumerate() {
            let onehot = if labels[i / classes] as usize == i % classes {
                1.0
            } else {
                0.0
            };
            let exact = f64::from(e) * batch as f64 + onehot;
            let tol = EPS * (c + spread + 16.0) * (exact.abs() + 1.0) + 1e-7;
            check_close(&format!("{isa} softmax[{i}]"), p, exact as f32, tol)?;
        }
    }
    Ok(())
}

fn check_bce(len: usize, scale: f32, seed: u64) -> Result<(), TestCaseError> {
    let x = values(len, seed, scale);
    // Soft targets in [−0.25, 1.25]: PyTorch takes any real number.
    let t: Vec<f32> = values(len, seed ^ 0x55, 0.75)
        .iter()
        .map(|v| v + 0.5)
        .collect();
    let mut expected_d = vec![f32::NAN; len];
    let expected = reference::bce_with_logits(&x, &t, &mut expected_d).unwrap();
    let n = len as f64;
    let magnitude: f64 = x
        .iter()
        .zip(&t)
        .map(|(&x, &t)| f64::from(x.max(0.0)) + f64::from(x * t).abs() + 2f64.ln())
        .sum::<f64>()
        / n;
    for isa in Isa::available() {
        let mut d = vec![f32::NAN; len];
        let loss = bce_with_logits_on(isa, &x, &t, &mut d, Parallelism::Sequential).unwrap();
        check_close(
            &format!("{isa} bce loss n={len}"),
            loss,
            expected,
            16.0 * EPS * magnitude,
        )?;
        for (i, (&g, &e)) in d.iter().zip(&expected_d).enumerate() {
            let sigmoid = 1.0 / (1.0 + (-f64::from(x[i])).exp());
            let tol = 4.0 * EPS * (sigmoid + f64::from(t[i]).abs()) / n;
            check_close(&format!("{isa} bce d[{i}]"), g, e, tol)?;
        }
        for par in THREADS {
            let mut d_par = vec![f32::NAN; len];
            let loss_par = bce_with_logits_on(isa, &x, &t, &mut d_par, par).unwrap();
            prop_assert_eq!(loss_par.to_bits(), loss.to_bits());
            prop_assert!(d_par
                .iter()
                .zip(&d)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
        }
    }
    Ok(())
}

fn check_mse(len: usize, seed: u64) -> Result<(), TestCaseError> {
    let p = values(len, seed, 3.0);
    let t = values(len, seed ^ 0xAA, 3.0);
    let mut expected_d = vec![f32::NAN; len];
    let expected = reference::mse(&p, &t, &mut expected_d).unwrap();
    for isa in Isa::available() {
        let mut d = vec![f32::NAN; len];
        let loss = mse_on(isa, &p, &t, &mut d, Parallelism::Sequential).unwrap();
        check_close(
            &format!("{isa} mse loss n={len}"),
            loss,
            expected,
            64.0 * EPS * f64::from(expected),
        )?;
        for (i, (&g, &e)) in d.iter().zip(&expected_d).enumerate() {
            check_close(
                &format!("{isa} mse d[{i}]"),
                g,
                e,
                2.0 * EPS * f64::from(e).abs(),
            )?;
        }
        for par in THREADS {
            let mut d_par = vec![f32::NAN; len];
            let loss_par = mse_on(isa, &p, &t, &mut d_par, par).unwrap();
            prop_assert_eq!(loss_par.to_bits(), loss.to_bits());
            prop_assert!(d_par
                .iter()
                .zip(&d)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
        }
    }
    Ok(())
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        2 => prop::sample::select(vec![1usize, 2, 3, 7, 8, 9, 17, 31, 33]),
        3 => 1usize..300,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn cross_entropy_matches_reference(
        batch in size(),
        classes in prop_oneof![4 => size(), 1 => Just(1000usize)],
        scale in prop::sample::select(vec![0.5f32, 4.0, 30.0, 100.0]),
        seed in any::<u64>(),
    ) {
        check_cross_entropy(batch.min(64), classes, scale, seed)?;
    }

    #[test]
    fn bce_matches_reference(
        len in prop_oneof![3 => size(), 1 => 300usize..3000],
        scale in prop::sample::select(vec![0.5f32, 5.0, 40.0, 120.0]),
        seed in any::<u64>(),
    ) {
        check_bce(len, scale, seed)?;
    }

    #[test]
    fn mse_matches_reference(len in prop_oneof![3 => size(), 1 => 300usize..3000], seed in any::<u64>()) {
        check_mse(len, seed)?;
    }
}

/// Sizes spanning several work items, so that the thread counts really split them.
#[test]
fn large_inputs_are_split_and_still_match() {
    check_cross_entropy(40, 1000, 8.0, 7).unwrap();
    check_bce(70_001, 6.0, 8).unwrap();
    check_mse(70_001, 9).unwrap();
}

#[test]
fn extreme_logits_stay_finite() {
    let mut d = [f32::NAN; 4];
    let loss = softmax_cross_entropy(
        2,
        2,
        &[1000.0, 0.0, -1000.0, 0.0],
        &[1, 0],
        &mut d,
        Parallelism::Sequential,
    )
    .unwrap();
    assert_eq!(loss, 1000.0);
    assert_eq!(d, [0.5, -0.5, -0.5, 0.5]);
    for isa in Isa::available() {
        let mut d = [f32::NAN; 3];
        let loss = bce_with_logits_on(
            isa,
            &[200.0, -200.0, -200.0],
            &[1.0, 1.0, 0.0],
            &mut d,
            Parallelism::Sequential,
        )
        .unwrap();
        assert_eq!(loss, (200.0f64 / 3.0) as f32, "{isa}");
        assert_eq!(d, [0.0, (-1.0f64 / 3.0) as f32, 0.0], "{isa}");
    }
}

#[test]
fn bad_inputs_are_errors() {
    let seq = Parallelism::Sequential;
    for isa in Isa::available() {
        let mut d = [0.0f32; 6];
        assert!(matches!(
            softmax_cross_entropy_on(isa, 2, 3, &[0.0; 6], &[0, 3], &mut d, seq),
            Err(KernelError::InvalidParameter { .. })
        ));
        assert!(softmax_cross_entropy_on(isa, 2, 3, &[0.0; 6], &[0], &mut d, seq).is_err());
        assert!(softmax_cross_entropy_on(isa, 2, 3, &[0.0; 5], &[0, 1], &mut d, seq).is_err());
        assert!(softmax_cross_entropy_on(isa, 2, 3, &[0.0; 6], &[0, 1], &mut d[..5], seq).is_err());
        assert!(softmax_cross_entropy_on(isa, 0, 3, &[], &[], &mut [], seq).is_err());
        assert!(softmax_cross_entropy_on(isa, 1, 0, &[], &[0], &mut [], seq).is_err());
        assert!(matches!(
            softmax_cross_entropy_on(isa, usize::MAX, 2, &[], &[], &mut [], seq),
            Err(KernelError::SizeOverflow { .. })
        ));
        assert!(softmax_cross_entropy_loss_on(isa, 2, 3, &[0.0; 6], &[0, 5], seq).is_err());
        assert!(softmax_cross_entropy_on(
            isa,
            2,
            3,
            &[0.0; 6],
            &[0, 1],
            &mut d,
            Parallelism::Threads(0)
        )
        .is_err());
        assert!(softmax_on(isa, 2, 3, &[0.0; 6], &mut d[..4], seq).is_err());
        assert!(softmax_on(isa, 0, 3, &[], &mut [], seq).is_ok());

        assert!(bce_with_logits_on(isa, &[0.0; 3], &[0.0; 2], &mut [0.0; 3], seq).is_err());
        assert!(bce_with_logits_on(isa, &[0.0; 3], &[0.0; 3], &mut [0.0; 4], seq).is_err());
        assert!(bce_with_logits_on(isa, &[], &[], &mut [], seq).is_err());
        assert!(mse_on(isa, &[0.0; 3], &[0.0; 4], &mut [0.0; 3], seq).is_err());
        assert!(mse_on(isa, &[0.0; 3], &[0.0; 3], &mut [0.0; 2], seq).is_err());
        assert!(mse_on(isa, &[], &[], &mut [], seq).is_err());
    }
}
