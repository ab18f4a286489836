//! Peak f32 FMA throughput: many independent FMA chains, as a GEMM microkernel runs them.
//!
//! A core with two FMA pipes of latency 4 needs at least 8 independent accumulators to
//! keep both pipes busy; we run 12. Each chain computes acc = acc·0.999999 + 1e-6, which
//! stays near 1 (no overflow, no denormals) and cannot be folded away by the compiler.

use super::ProbeConfig;
use crate::arch::Isa;
use std::sync::Barrier;
use std::time::Instant;

/// FMA iterations between two looks at the clock.
const BLOCK: u64 = 1 << 18;
/// Independent accumulator chains per iteration.
const CHAINS: usize = 12;

/// Measured f32 FMA peak in GFLOP/s (one FMA = 2 flops) with `threads` threads running
/// at once, using the fastest path this CPU has.
pub fn measure_fma_peak(threads: usize, config: ProbeConfig) -> f64 {
    let threads = threads.max(1);
    let isa = Isa::detected();
    let barrier = Barrier::new(threads);
    let mut best = 0.0f64;
    for _ in 0..config.windows.max(1) {
        let total: f64 = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        barrier.wait();
                        let start = Instant::now();
                        let mut iterations = 0u64;
                        let mut sink = 0.0f32;
                        while start.elapsed() < config.window {
                            sink += run_block(isa, BLOCK);
                            iterations += BLOCK;
                        }
                        let seconds = start.elapsed().as_secs_f64();
                        std::hint::black_box(sink);
                        iterations as f64 * flops_per_iteration(isa) / seconds
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().expect("probe thread panicked"))
                .sum()
        });
        best = best.max(total);
    }
    best / 1e9
}

fn flops_per_iteration(isa: Isa) -> f64 {
    (CHAINS * isa.f32_lanes() * 2) as f64
}

fn run_block(isa: Isa, iterations: u64) -> f32 {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the guard checked that the CPU has AVX2 and FMA.
        Isa::Avx2 if isa.is_available() => unsafe { avx2_chains(iterations) },
        Isa::Scalar => scalar_chains(iterations),
        // Neon, and Avx2 where it cannot run (never chosen by the callers).
        _ => wide_chains(iterations),
    }
}

/// Starting values (distinct, near 1), multiplier and addend of the chains, hidden from
/// the optimizer so that it can neither merge identical chains nor fold the loop.
fn inputs() -> ([f32; CHAINS], f32, f32) {
    let start = std::array::from_fn(|i| 1.0 + i as f32 * 1e-3);
    std::hint::black_box((start, 0.999_999, 1e-6))
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_chains(iterations: u64) -> f32 {
    use std::arch::x86_64::*;
    let (start, scale, add) = inputs();
    let scale = _mm256_set1_ps(scale);
    let add = _mm256_set1_ps(add);
    let mut acc = start.map(|v| _mm256_set1_ps(v));
    for _ in 0..iterations {
        for a in acc.iter_mut() {
            *a = _mm256_fmadd_ps(*a, scale, add);
        }
    }
    let mut sum = _mm256_setzero_ps();
    for a in acc {
        sum = _mm256_add_ps(sum, a);
    }
    let mut lanes = [0.0f32; 8];
    // SAFETY: `lanes` holds 8 f32, the width of one unaligned 256-bit store.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sum) };
    lanes.iter().sum()
}

fn wide_chains(iterations: u64) -> f32 {
    use wide::f32x4;
    let (start, scale, add) = inputs();
    let scale = f32x4::splat(scale);
    let add = f32x4::splat(add);
    let mut acc = start.map(f32x4::splat);
    for _ in 0..iterations {
        for a in acc.iter_mut() {
            *a = a.mul_add(scale, add);
        }
    }
    acc.iter().map(|a| a.reduce_add()).sum()
}

fn scalar_chains(iterations: u64) -> f32 {
    let (mut acc, scale, add) = inputs();
    for _ in 0..iterations {
        for a in acc.iter_mut() {
            *a = a.mul_add(scale, add);
        }
    }
    acc.iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_keeps_the_chains_bounded() {
        for isa in Isa::available() {
            let v = run_block(isa, 10_000);
            let lanes = flops_per_iteration(isa) / (2.0 * CHAINS as f64);
            let per_lane = v / (CHAINS as f32 * lanes as f32);
            assert!((0.9..=1.1).contains(&per_lane), "{isa}: {per_lane}");
        }
    }

    #[test]
    fn peak_is_positive() {
        assert!(measure_fma_peak(1, ProbeConfig::quick()) > 0.0);
    }
}
