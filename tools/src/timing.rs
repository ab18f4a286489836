//! Timing helpers shared by the benchmarks: repeat until a sample is long enough, take
//! medians, compare peers in interleaved rounds.

use std::time::{Duration, Instant};

/// Seconds per call of `f`, measured over enough calls to fill `min_sample`.
pub fn seconds_per_call(min_sample: Duration, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut calls = 0u32;
    while calls == 0 || start.elapsed() < min_sample {
        f();
        calls += 1;
    }
    start.elapsed().as_secs_f64() / f64::from(calls)
}

/// The median of `samples` (which must not be empty).
pub fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    let mid = samples.len() / 2;
    if samples.len() % 2 == 1 {
        samples[mid]
    } else {
        0.5 * (samples[mid - 1] + samples[mid])
    }
}

/// Runs `rounds` rounds of one sample of each contender in turn (so that a noisy spell
/// hits them alike) and returns each one's median seconds per call.
pub fn interleaved_medians(
    rounds: usize,
    min_sample: Duration,
    contenders: &mut [&mut dyn FnMut()],
) -> Vec<f64> {
    for f in contenders.iter_mut() {
        f(); // warm-up: page faults, pools, packing buffers
    }
    let mut samples = vec![Vec::with_capacity(rounds); contenders.len()];
    for _ in 0..rounds.max(1) {
        for (f, s) in contenders.iter_mut().zip(samples.iter_mut()) {
            s.push(seconds_per_call(min_sample, &mut **f));
        }
    }
    samples.iter_mut().map(|s| median(s)).collect()
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}
