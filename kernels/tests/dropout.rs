//! Dropout: mask statistics (keep fraction, independence of neighbours and of
//! consecutive steps), the same mask and outputs on every ISA path and thread count,
//! the stored mask against [`Dropout::keeps`], forward/backward consistency (stored and
//! regenerated mask), p = 0 and p = 1, and errors on bad calls. All comparisons are
//! bitwise: y = x·scale or x·0, exact on every path.

use axonal_kernels::dropout::{
    dropout_backward_masked_on, dropout_backward_on, dropout_forward, dropout_forward_on,
    mask_words, Dropout,
};
use axonal_kernels::{Isa, KernelError, Parallelism};
use proptest::prelude::*;

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

fn bit(mask: &[u32], k: usize) -> bool {
    (mask[k / 32] >> (k % 32)) & 1 == 1
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// Runs forward, both backwards, on every path and thread count, and checks them
/// against the definition.
fn check_case(len: usize, d: Dropout, seed: u64) -> Result<(), TestCaseError> {
    let x = values(len, seed);
    let dy = values(len, seed ^ 0x77);
    let scale = d.scale();
    let expected_mask: Vec<bool> = (0..len as u64).map(|i| d.keeps(i)).collect();
    let expect = |v: &[f32]| -> Vec<f32> {
        v.iter()
            .zip(&expected_mask)
            .map(|(&v, &k)| v * if k { scale } else { 0.0 })
            .collect()
    };
    let (expected_y, expected_dx) = (expect(&x), expect(&dy));
    for isa in Isa::available() {
        for par in [
            Parallelism::Sequential,
            Parallelism::Threads(2),
            Parallelism::Threads(3),
        ] {
            let mut y = vec![f32::NAN; len];
            let mut mask = vec![u32::MAX; mask_words(len)];
            dropout_forward_on(isa, &d, &x, &mut y, Some(&mut mask), par).unwrap();
            prop_assert!(same_bits(&y, &expected_y), "{} {:?} y", isa, par);
            for (k, &keep) in expected_mask.iter().enumerate() {
                prop_assert_eq!(bit(&mask, k), keep, "{} {:?} mask bit {}", isa, par, k);
            }
            // Bits past the end are 0.
            if !len.is_multiple_of(32) {
                prop_assert_eq!(mask[len / 32] >> (len % 32), 0);
            }
            let mut y2 = vec![f32::NAN; len];
            dropout_forward_on(isa, &d, &x, &mut y2, None, par).unwrap();
            prop_assert!(same_bits(&y2, &y), "{} without the mask", isa);

            let mut dx = vec![f32::NAN; len];
            dropout_backward_masked_on(isa, d.p, &mask, &dy, &mut dx, par).unwrap();
            prop_assert!(
                same_bits(&dx, &expected_dx),
                "{} {:?} dx from mask",
                isa,
                par
            );
            let mut dx2 = vec![f32::NAN; len];
            dropout_backward_on(isa, &d, &dy, &mut dx2, par).unwrap();
            prop_assert!(
                same_bits(&dx2, &expected_dx),
                "{} {:?} dx regenerated",
                isa,
                par
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn every_path_and_thread_count_follow_the_definition(
        len in prop_oneof![
            2 => prop::sample::select(vec![0usize, 1, 3, 7, 8, 17, 31, 32, 33, 63, 65]),
            3 => 0usize..3000,
            1 => 65_000usize..140_000,
        ],
        p in prop_oneof![
            1 => Just(0.0f32),
            1 => Just(1.0f32),
            4 => 0.0f32..1.0,
        ],
        seed in any::<u64>(),
        step in 0u64..1000,
    ) {
        check_case(len, Dropout::new(p, seed, step), seed)?;
    }
}

/// Keep fraction, neighbour and step independence on 2²⁰ elements: each within 5σ.
#[test]
fn mask_statistics() {
    let n = 1usize << 20;
    let x = vec![1.0f32; n];
    for p in [0.1f32, 0.5, 0.9] {
        let q = 1.0 - f64::from(p);
        let masks: Vec<Vec<u32>> = (0..2)
            .map(|step| {
                let mut y = vec![0.0; n];
                let mut mask = vec![0; mask_words(n)];
                let d = Dropout::new(p, 42, step);
                dropout_forward(&d, &x, &mut y, Some(&mut mask), Parallelism::Threads(2)).unwrap();
                mask
            })
            .collect();
        let nf = n as f64;
        let within = |what: &str, count: usize, prob: f64, trials: f64| {
            let sigma = (trials * prob * (1.0 - prob)).sqrt();
            let dev = (count as f64 - trials * prob).abs();
            assert!(
                dev <= 5.0 * sigma,
                "p = {p}, {what}: {count} of {trials}, expected {} ± {sigma:.0}",
                trials * prob
            );
        };
        let kept: usize = masks[0].iter().map(|w| w.count_ones() as usize).sum();
        within("kept", kept, q, nf);
        // Both of two neighbours kept: q² if the bits are independent.
        let pairs = (0..n - 1)
            .filter(|&k| bit(&masks[0], k) && bit(&masks[0], k + 1))
            .count();
        within("neighbours kept", pairs, q * q, nf - 1.0);
        // Kept at step 0 and step 1.
        let both: usize = masks[0]
            .iter()
            .zip(&masks[1])
            .map(|(a, b)| (a & b).count_ones() as usize)
            .sum();
        within("kept at both steps", both, q * q, nf);
    }
}

#[test]
fn seeds_and_steps_change_the_mask() {
    let n = 4096;
    let x = vec![1.0f32; n];
    let mask_of = |d: Dropout| {
        let mut y = vec![0.0; n];
        let mut mask = vec![0; mask_words(n)];
        dropout_forward(&d, &x, &mut y, Some(&mut mask), Parallelism::Sequential).unwrap();
        mask
    };
    let base = mask_of(Dropout::new(0.5, 1, 1));
    assert_ne!(base, mask_of(Dropout::new(0.5, 2, 1)));
    assert_ne!(base, mask_of(Dropout::new(0.5, 1, 2)));
    assert_eq!(base, mask_of(Dropout::new(0.5, 1, 1)));
}

#[test]
fn extremes_of_p() {
    let x = [1.5f32, -2.0, f32::NAN, 0.0, -0.0, f32::INFINITY];
    let mut y = [0.0f32; 6];
    dropout_forward(
        &Dropout::new(0.0, 3, 4),
        &x,
        &mut y,
        None,
        Parallelism::Sequential,
    )
    .unwrap();
    assert!(same_bits(&y, &x), "p = 0 is the identity");
    dropout_forward(
        &Dropout::new(1.0, 3, 4),
        &x,
        &mut y,
        None,
        Parallelism::Sequential,
    )
    .unwrap();
    // x·0, as PyTorch's p = 1: zeros for finite x.
    assert_eq!(y[..2], [0.0, -0.0]);
    assert!(y[2].is_nan() && y[5].is_nan());
}

#[test]
fn bad_inputs_are_errors() {
    let seq = Parallelism::Sequential;
    for isa in Isa::available() {
        let x = [0.0f32; 40];
        let mut y = [0.0f32; 40];
        for p in [-0.1f32, 1.5, f32::NAN, f32::INFINITY] {
            assert!(matches!(
                dropout_forward_on(isa, &Dropout::new(p, 0, 0), &x, &mut y, None, seq),
                Err(KernelError::InvalidParameter { .. })
            ));
            assert!(dropout_backward_on(isa, &Dropout::new(p, 0, 0), &x, &mut y, seq).is_err());
            assert!(dropout_backward_masked_on(isa, p, &[0, 0], &x, &mut y, seq).is_err());
        }
        let d = Dropout::new(0.5, 0, 0);
        assert!(dropout_forward_on(isa, &d, &x, &mut y[..39], None, seq).is_err());
        assert!(dropout_forward_on(isa, &d, &x, &mut y, Some(&mut [0; 1]), seq).is_err());
        assert!(dropout_forward_on(isa, &d, &x, &mut y, Some(&mut [0; 3]), seq).is_err());
        assert!(dropout_forward_on(isa, &d, &x, &mut y, None, Parallelism::Threads(0)).is_err());
        assert!(dropout_backward_on(isa, &d, &x, &mut y[..1], seq).is_err());
        assert!(dropout_backward_masked_on(isa, 0.5, &[0], &x, &mut y, seq).is_err());
        assert!(dropout_backward_masked_on(isa, 0.5, &[0, 0], &x, &mut y[..3], seq).is_err());
        assert!(dropout_forward_on(isa, &d, &[], &mut [], Some(&mut []), seq).is_ok());
    }
}
