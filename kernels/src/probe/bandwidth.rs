//! Memory bandwidth: streaming read and copy over buffers far larger than the caches.
//!
//! Copy counts the bytes read plus the bytes written, as STREAM does.

use super::ProbeConfig;
use std::sync::Barrier;
use std::time::Instant;

/// Measured bandwidth in GB/s (10⁹ bytes per second).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bandwidth {
    /// Summing a buffer.
    pub read_gbs: f64,
    /// Copying a buffer into another (read + write bytes).
    pub copy_gbs: f64,
}

/// Measures read and copy bandwidth with `threads` threads over buffers of `bytes` bytes
/// each (split evenly among the threads). Pass a size well above the last-level cache
/// to measure DRAM, or one inside it to measure the cache.
pub fn measure_bandwidth(threads: usize, bytes: usize, config: ProbeConfig) -> Bandwidth {
    let threads = threads.max(1);
    let len = (bytes / 4).max(threads * 64);
    let src: Vec<f32> = (0..len).map(|i| (i % 7) as f32).collect();
    // Offset the destination by 64 bytes modulo 4 KiB from the source: copies between
    // buffers at the same offset alias in the load/store unit and run far slower.
    let mut dst_storage = vec![0.0f32; len + 16];
    let dst = &mut dst_storage[16..];
    let chunk = len.div_ceil(threads);
    let reps = config.windows.max(1);
    let barrier = Barrier::new(threads);

    let mut read_best = f64::INFINITY;
    let mut copy_best = f64::INFINITY;
    for _ in 0..reps {
        read_best = read_best.min(timed(threads, &barrier, |t| {
            let part = &src[(t * chunk).min(len)..((t + 1) * chunk).min(len)];
            std::hint::black_box(sum(part));
        }));
        copy_best = copy_best.min({
            let dst_parts: Vec<&mut [f32]> = dst.chunks_mut(chunk).collect();
            timed_parts(&barrier, dst_parts, |t, out| {
                out.copy_from_slice(&src[t * chunk..t * chunk + out.len()]);
                std::hint::black_box(&out[0]);
            })
        });
    }
    let gb = (len * 4) as f64 / 1e9;
    Bandwidth {
        read_gbs: gb / read_best,
        copy_gbs: 2.0 * gb / copy_best,
    }
}

/// Runs `work(thread_index)` on `threads` threads started together; returns the seconds
/// from the common start until the last one finished.
fn timed(threads: usize, barrier: &Barrier, work: impl Fn(usize) + Sync) -> f64 {
    std::thread::scope(|scope| {
        let work = &work;
        let ends: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    work(t);
                    (start, Instant::now())
                })
            })
            .collect();
        span(
            ends.into_iter()
                .map(|h| h.join().expect("probe thread panicked")),
        )
    })
}

/// Like [`timed`], but each thread also gets its own part of an output buffer.
fn timed_parts(
    barrier: &Barrier,
    parts: Vec<&mut [f32]>,
    work: impl Fn(usize, &mut [f32]) + Sync,
) -> f64 {
    std::thread::scope(|scope| {
        let work = &work;
        let ends: Vec<_> = parts
            .into_iter()
            .enumerate()
            .map(|(t, out)| {
                scope.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    work(t, out);
                    (start, Instant::now())
                })
            })
            .collect();
        span(
            ends.into_iter()
                .map(|h| h.join().expect("probe thread panicked")),
        )
    })
}

/// Seconds from the earliest start to the latest end.
fn span(intervals: impl Iterator<Item = (Instant, Instant)>) -> f64 {
    let (mut first, mut last): (Option<Instant>, Option<Instant>) = (None, None);
    for (start, end) in intervals {
        first = Some(first.map_or(start, |f| f.min(start)));
        last = Some(last.map_or(end, |l| l.max(end)));
    }
    match (first, last) {
        (Some(f), Some(l)) => l.duration_since(f).as_secs_f64().max(1e-9),
        _ => 1e-9,
    }
}

/// Sum with eight independent accumulators, so that the adds are not the bottleneck.
fn sum(values: &[f32]) -> f32 {
    use wide::f32x8;
    let mut acc = [f32x8::ZERO; 4];
    let mut blocks = values.chunks_exact(32);
    for block in &mut blocks {
        for (a, lanes) in acc.iter_mut().zip(block.chunks_exact(8)) {
            *a += f32x8::from(<[f32; 8]>::try_from(lanes).expect("8 lanes"));
        }
    }
    let tail: f32 = blocks.remainder().iter().sum();
    acc.iter().map(|a| a.reduce_add()).sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_counts_every_element() {
        let v: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        assert_eq!(sum(&v), 499_500.0);
    }

    #[test]
    fn bandwidth_is_positive_for_odd_thread_counts() {
        for threads in [1, 3] {
            let bw = measure_bandwidth(threads, 1 << 20, ProbeConfig::quick());
            assert!(bw.read_gbs > 0.0 && bw.copy_gbs > 0.0, "{bw:?}");
        }
    }
}
