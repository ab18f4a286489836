//! Probes of the machine's limits: f32 FMA throughput and memory bandwidth.
//!
//! These are the denominators of every "fraction of peak" figure that the benchmarks
//! and `axonal info` / `axonal profile` print. Each probe runs several short timed
//! windows and keeps the best: noise from other processes only ever lowers a window,
//! so the best window is the closest to the hardware's ceiling.

mod bandwidth;
mod fma_peak;

pub use bandwidth::{measure_bandwidth, Bandwidth};
pub use fma_peak::measure_fma_peak;

use std::time::Duration;

/// How long and how often a probe measures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbeConfig {
    /// Length of one timed window.
    pub window: Duration,
    /// Number of windows; the best one is reported.
    pub windows: usize,
}

impl ProbeConfig {
    /// Seven windows of 100 ms: about a second per figure, stable to a few percent.
    pub fn standard() -> Self {
        ProbeConfig {
            window: Duration::from_millis(100),
            windows: 7,
        }
    }

    /// Three windows of 20 ms, for tests and quick looks.
    pub fn quick() -> Self {
        ProbeConfig {
            window: Duration::from_millis(20),
            windows: 3,
        }
    }
}

/// Number of hardware threads the OS lets this process use (at least 1).
pub fn available_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
